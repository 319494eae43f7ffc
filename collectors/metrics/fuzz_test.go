package metrics

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// FuzzKmsg checks ParseKmsg against re-formatting: a record that parses
// formats back to a record that parses the same, and the reader never
// fails on any input (seed corpus in testdata/fuzz/FuzzKmsg).
func FuzzKmsg(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		kr := NewKmsgReader(bytes.NewReader(data))
		for i := 0; ; i++ {
			rec, err := kr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if i > len(data) {
				t.Fatal("more records than bytes")
			}
			flags := "-"
			if rec.Cont {
				flags = "c"
			}
			line := fmt.Sprintf("%d,%d,%d,%s;%s", uint64(rec.Facility)<<3|uint64(rec.Level), rec.Seq, rec.Usec, flags, rec.Message)
			again, err := ParseKmsg([]byte(line))
			if err != nil || again != rec {
				t.Fatalf("%q: re-parsed %+v (%v), want %+v", line, again, err, rec)
			}
		}
	})
}
