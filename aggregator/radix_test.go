package aggregator

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSortUint32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	var tmp []uint32
	for _, n := range []int{0, 1, 255, 256, 257, 1000, 70_000} {
		for _, spread := range []uint32{1, 2047, 1 << 22, 1<<32 - 1} {
			vals := make([]uint32, n)
			for i := range vals {
				vals[i] = r.Uint32() % spread
				if spread == 1<<32-1 && i%7 == 0 {
					vals[i] = 1<<32 - 1
				}
			}
			want := slices.Clone(vals)
			slices.Sort(want)
			tmp = sortUint32(vals, tmp)
			if !slices.Equal(vals, want) {
				t.Fatalf("n=%d spread=%d: not sorted", n, spread)
			}
		}
	}
}
