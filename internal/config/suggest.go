package config

import (
	"math"
	"sort"
	"strings"
)

// Suggest returns the candidate closest to key by edit distance, if it is
// close enough to be a likely typo, else "".
func Suggest(key string, candidates []string) string {
	candidates = append([]string(nil), candidates...)
	sort.Strings(candidates) // deterministic among equals
	best, bestD := "", math.MaxInt
	lk := strings.ToLower(key)
	for _, c := range candidates {
		// Among equally close candidates, one of the key's length wins:
		// "aggregater" is aggregator mistyped more likely than aggregate
		// with a letter added.
		d := editDistance(lk, c)
		if d < bestD || d == bestD && lenDiff(c, key) < lenDiff(best, key) {
			best, bestD = c, d
		}
	}
	if bestD <= max(1, (len(key)+1)/3) {
		return best
	}
	return ""
}

func lenDiff(a, b string) int { return max(len(a)-len(b), len(b)-len(a)) }

// editDistance is the Levenshtein distance between a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
