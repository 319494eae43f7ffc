package aggregator

import "slices"

// sortUint32 sorts vals, using tmp (grown as needed and returned) as scratch.
// Above a few hundred values an LSD radix sort over 11-bit digits beats
// pdqsort several times over (latency buffers are the dominant sort of the
// engine); digits whose values are all equal are skipped.
func sortUint32(vals, tmp []uint32) []uint32 {
	if len(vals) < 256 {
		slices.Sort(vals)
		return tmp
	}
	if cap(tmp) < len(vals) {
		tmp = make([]uint32, len(vals))
	}
	tmp = tmp[:len(vals)]
	var counts [3][2048]uint32
	for _, v := range vals {
		counts[0][v&2047]++
		counts[1][(v>>11)&2047]++
		counts[2][v>>22]++
	}
	src, dst := vals, tmp
	n := uint32(len(vals))
	for pass := 0; pass < 3; pass++ {
		c := &counts[pass]
		shift := uint(pass * 11)
		if c[(src[0]>>shift)&2047] == n {
			continue // every value has the same digit
		}
		var sum uint32
		for i := range c {
			x := c[i]
			c[i] = sum
			sum += x
		}
		for _, v := range src {
			d := (v >> shift) & 2047
			dst[c[d]] = v
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &vals[0] {
		copy(vals, src)
	}
	return tmp
}
