package metrics

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// FuzzProcFiles writes the input as each /proc file the node reader parses
// (stat, meminfo, loadavg, diskstats, net/dev) and as the cgroup v1 and v2
// files of one container, and reads them: no input panics, and a reading
// either succeeds or fails with an error, never both half-way.
func FuzzProcFiles(f *testing.F) {
	for _, p := range []string{"testdata/proc/stat", "testdata/proc/meminfo", "testdata/proc/diskstats", "testdata/proc/net/dev", "testdata/proc/loadavg"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("cpu 1 2 3\nbtime x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, p := range []string{"stat", "meminfo", "loadavg", "diskstats", "net/dev"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := NodeReader{Proc: dir}
		if st, err := r.ReadStat(); err == nil {
			st.Samples(&st)
		}
		if m, err := r.ReadMemInfo(); err == nil {
			m.Samples()
		}
		if l, err := r.ReadLoadAvg(); err == nil {
			l.Samples()
		}
		if d, err := r.ReadDiskStats(); err == nil {
			d.Samples()
		}
		if n, err := r.ReadNetDev(); err == nil {
			n.Samples()
		}
		cg := filepath.Join(dir, "cg")
		for _, p := range []string{"c/cpu.stat", "c/memory.current", "c/memory.stat", "c/memory.max", "c/io.stat", "c/pids.current",
			"cpuacct/c/cpuacct.usage", "cpuacct/c/cpuacct.stat", "memory/c/memory.usage_in_bytes", "memory/c/memory.stat",
			"memory/c/memory.limit_in_bytes", "blkio/c/blkio.throttle.io_service_bytes", "blkio/c/blkio.throttle.io_serviced", "pids/c/pids.current", "cpu/c/cpu.stat"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(cg, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cg, p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cr := CgroupReader{Root: cg}
		if s, err := cr.ReadV2("c"); err == nil {
			s.Samples(&s)
		}
		if s, err := cr.ReadV1("c"); err == nil {
			s.Samples(&s)
		}
	})
}
