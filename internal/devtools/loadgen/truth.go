package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/tpflow/tpflow/internal/atomicfile"
)

// Truth accumulates the exact statistics of the calls produced, per key.
// It keeps every latency, 4 bytes a call. Truth is not safe for concurrent
// use.
type Truth struct {
	keys []Key
	lat  [][]uint32
	errs []uint64
}

// NewTruth returns an empty Truth over keys; Add takes indexes into keys.
func NewTruth(keys []Key) *Truth {
	return &Truth{keys: keys, lat: make([][]uint32, len(keys)), errs: make([]uint64, len(keys))}
}

// Add records one call of key index k.
func (t *Truth) Add(k int, latencyUs uint32, ok bool) {
	t.lat[k] = append(t.lat[k], latencyUs)
	if !ok {
		t.errs[k]++
	}
}

// Count returns the number of calls recorded.
func (t *Truth) Count() uint64 {
	var n uint64
	for _, l := range t.lat {
		n += uint64(len(l))
	}
	return n
}

// Record is one key's truth, a line of the truth file.
type Record struct {
	System string  `json:"system"`
	App    string  `json:"app"`
	Group  string  `json:"group"`
	IDC    string  `json:"idc"`
	Method string  `json:"method"`
	Count  uint64  `json:"count"`
	Errors uint64  `json:"errors"`
	P50    float64 `json:"p50_us"`
	P90    float64 `json:"p90_us"`
	P99    float64 `json:"p99_us"`
	P999   float64 `json:"p999_us"`
}

// NearestRank returns the ⌈q·n⌉-th smallest of sorted (1-based), the
// nearest-rank percentile; NaN for an empty slice.
func NearestRank(sorted []uint32, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	r := int(math.Ceil(q * float64(n)))
	r = min(max(r, 1), n)
	return float64(sorted[r-1])
}

// Records returns the truth of every key with at least one call, in key
// order. It sorts the recorded latencies in place.
func (t *Truth) Records() []Record {
	var out []Record
	for i, l := range t.lat {
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		k := t.keys[i]
		out = append(out, Record{
			System: k.System, App: k.App, Group: k.Group, IDC: k.IDC, Method: k.Method,
			Count: uint64(len(l)), Errors: t.errs[i],
			P50: NearestRank(l, 0.50), P90: NearestRank(l, 0.90),
			P99: NearestRank(l, 0.99), P999: NearestRank(l, 0.999),
		})
	}
	return out
}

// WriteJSONL writes Records as JSON Lines.
func (t *Truth) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, r := range t.Records() {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("cannot write truth: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write truth: %w", err)
	}
	return nil
}

// WriteFile writes the truth to path as JSON Lines, atomically.
func (t *Truth) WriteFile(path string) error {
	if err := atomicfile.WriteFunc(path, 0o644, t.WriteJSONL); err != nil {
		return fmt.Errorf("cannot write truth: %w", err)
	}
	return nil
}

// ReadFile reads a truth file written by WriteFile.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read truth: %w", err)
	}
	defer f.Close()
	var out []Record
	dec := json.NewDecoder(f)
	for dec.More() {
		var r Record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("cannot read truth %s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, nil
}
