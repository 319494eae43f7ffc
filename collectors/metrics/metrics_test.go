package metrics

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCgroupV2(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := CgroupReader{Root: "testdata/cgroupv2", Now: func() time.Time { return t0 }}
	s, err := r.ReadV2("kubepods.slice/kubepods-burstable.slice/cri-containerd-abc.scope")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupStats{At: t0,
		CPUUsageNanos: 8123456000, CPUUserNanos: 6e9, CPUSystemNanos: 2123456000,
		Periods: 1200, Throttled: 37, ThrottledNanos: 1850000000, CPULimitCores: 1.5,
		MemoryUsage: 268435456, MemoryWorkingSet: 268435456 - 67108864, MemoryRSS: 150994944, MemoryCache: 104857600, MemoryLimit: 536870912,
		IOReadBytes: 1048576 + 524288, IOWriteBytes: 4194304, IOReadOps: 384, IOWriteOps: 1024, Pids: 42}
	if !cgEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	// The second container: unlimited memory, no pids.current, malformed lines.
	s2, err := r.ReadV2("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-def.scope")
	if err != nil {
		t.Fatal(err)
	}
	if s2.MemoryLimit != 0 || s2.CPULimitCores != 0 || s2.MemoryWorkingSet != 0 || s2.CPUUsageNanos != 1e6 || s2.IOReadBytes != 10 || s2.Pids != 0 {
		t.Errorf("second container: %+v", s2)
	}
	if !slices.Equal(s2.Missing, []string{"pids.current"}) || s2.Malformed != 4 {
		t.Errorf("second container: missing %v malformed %d, want [pids.current] and 4", s2.Missing, s2.Malformed)
	}
	if _, err := r.ReadV2("no/such/cgroup"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cgroup: %v", err)
	}
	// ".." cannot leave the root.
	if _, err := r.ReadV2("../../../../../../etc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("escaping path: %v", err)
	}

	// CPU cores over an interval.
	later := s
	later.At = t0.Add(10 * time.Second)
	later.CPUUsageNanos += 15e9
	if c, ok := CPUCores(s, later); !ok || math.Abs(c-1.5) > 1e-9 {
		t.Errorf("CPUCores = %v %v, want 1.5", c, ok)
	}
	if _, ok := CPUCores(later, s); ok {
		t.Error("CPUCores accepted a negative interval")
	}
	reset := later
	reset.CPUUsageNanos = 0
	if _, ok := CPUCores(s, reset); ok {
		t.Error("CPUCores accepted a counter reset")
	}
	samples := later.Samples(&s)
	if v := find(samples, "container_cpu_usage_cores"); math.Abs(v-1.5) > 1e-9 {
		t.Errorf("container_cpu_usage_cores = %v", v)
	}
	if v := find(samples, "container_memory_working_set_bytes"); v != float64(201326592) {
		t.Errorf("working set sample = %v", v)
	}
}

func find(s []Sample, name string) float64 {
	for _, x := range s {
		if x.Name == name {
			return x.Value
		}
	}
	return math.NaN()
}

func cgEqual(a, b CgroupStats) bool {
	a.Missing, b.Missing = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestCgroupV1(t *testing.T) {
	r := CgroupReader{Root: "testdata/cgroupv1"}
	s, err := r.ReadV1("kubepods/burstable/pod1234/abc")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupStats{At: s.At,
		CPUUsageNanos: 8123456789, CPUUserNanos: 6e9, CPUSystemNanos: 2.12e9,
		Periods: 1200, Throttled: 37, ThrottledNanos: 1850000000, CPULimitCores: 2,
		MemoryUsage: 268435456, MemoryWorkingSet: 268435456 - 67108864, MemoryRSS: 150994944, MemoryCache: 104857600, MemoryLimit: 536870912,
		IOReadBytes: 1048576 + 524288, IOWriteBytes: 4194304, IOReadOps: 384, IOWriteOps: 1024, Pids: 42}
	if !cgEqual(s, want) || len(s.Missing) != 0 || s.Malformed != 0 {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	s2, err := r.ReadV1("kubepods/besteffort/pod99/def")
	if err != nil {
		t.Fatal(err)
	}
	if s2.MemoryLimit != 0 || s2.CPULimitCores != 0 || s2.MemoryRSS != 4096 || s2.CPUUsageNanos != 5e6 {
		t.Errorf("second container: %+v", s2)
	}
	wantMissing := []string{"cpuacct/cpuacct.stat", "blkio/blkio.throttle.io_service_bytes", "blkio/blkio.throttle.io_serviced", "pids/pids.current"}
	if !slices.Equal(s2.Missing, wantMissing) || s2.Malformed != 2 {
		t.Errorf("missing %v malformed %d, want %v and 2", s2.Missing, s2.Malformed, wantMissing)
	}
	if _, err := r.ReadV1("no/such"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cgroup: %v", err)
	}
}

func TestNode(t *testing.T) {
	r := NodeReader{Proc: "testdata/proc"}
	st, err := r.ReadStat()
	if err != nil {
		t.Fatal(err)
	}
	if st.NumCPU != 2 || st.CPU.User != 3868.31 || st.CPU.Idle != 4871.69 || st.ContextSw != 98765432 || st.ProcsRunning != 3 || st.ProcsBlocked != 1 || st.Malformed != 0 {
		t.Errorf("stat: %+v", st)
	}
	later := st
	later.CPU.User += 10 // 10 s busy
	later.CPU.Idle += 10 // 10 s idle
	if b, ok := CPUBusy(st, later); !ok || math.Abs(b-0.5) > 1e-9 {
		t.Errorf("CPUBusy = %v %v", b, ok)
	}
	if v := find(later.Samples(&st), "node_cpu_usage_cores"); math.Abs(v-1) > 1e-9 {
		t.Errorf("node_cpu_usage_cores = %v", v)
	}
	mi, err := r.ReadMemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if mi.Bytes["MemTotal"] != 8048576*1024 || mi.Bytes["MemAvailable"] != 4096000*1024 || mi.Bytes["HugePages_Total"] != 0 || mi.Malformed != 0 {
		t.Errorf("meminfo: %+v", mi)
	}
	if v := find(mi.Samples(), "node_memory_available_bytes"); v != 4096000*1024 {
		t.Errorf("available sample %v", v)
	}
	la, err := r.ReadLoadAvg()
	if err != nil {
		t.Fatal(err)
	}
	if la != (LoadAvg{1.85, 1.13, 1.57, 3, 112}) {
		t.Errorf("loadavg: %+v", la)
	}
	ds, err := r.ReadDiskStats()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Disks) != 3 || ds.Disks[0].Device != "sda" || ds.Disks[0].ReadBytes != 1843200*512 || ds.Disks[0].Writes != 48000 || ds.Disks[0].IOTimeMs != 31000 || ds.Disks[1].Device != "sda1" {
		t.Errorf("diskstats: %+v", ds)
	}
	nd, err := r.ReadNetDev()
	if err != nil {
		t.Fatal(err)
	}
	want := NetDev{Interface: "eth0", RxBytes: 9876543210, RxPackets: 7654321, RxErrors: 2, RxDropped: 5, TxBytes: 1234567890, TxPackets: 2345678, TxErrors: 1, TxDropped: 3}
	if len(nd.Interfaces) != 2 || nd.Interfaces[1] != want || nd.Malformed != 0 {
		t.Errorf("net/dev: %+v", nd)
	}
	if len(nd.Samples()) != 16 || len(ds.Samples()) != 18 {
		t.Errorf("samples: %d net, %d disk", len(nd.Samples()), len(ds.Samples()))
	}
}

func TestNodeMalformed(t *testing.T) {
	r := NodeReader{Proc: "testdata/proc-malformed"}
	st, err := r.ReadStat()
	if err != nil || st.Malformed != 1 || st.ProcsRunning != 2 || st.NumCPU != 1 {
		t.Errorf("stat: %+v %v", st, err)
	}
	mi, err := r.ReadMemInfo()
	if err != nil || mi.Malformed != 3 || mi.Bytes["MemAvailable"] != 512*1024 {
		t.Errorf("meminfo: %+v %v", mi, err)
	}
	if _, err := r.ReadLoadAvg(); err == nil || !strings.Contains(err.Error(), "2 fields") {
		t.Errorf("loadavg: %v", err)
	}
	ds, err := r.ReadDiskStats()
	if err != nil || ds.Malformed != 2 || len(ds.Disks) != 1 || ds.Disks[0].Device != "sdb" {
		t.Errorf("diskstats: %+v %v", ds, err)
	}
	nd, err := r.ReadNetDev()
	if err != nil || nd.Malformed != 3 || len(nd.Interfaces) != 1 || nd.Interfaces[0].TxBytes != 200 {
		t.Errorf("net/dev: %+v %v", nd, err)
	}
	if _, err := (NodeReader{Proc: "testdata/none"}).ReadStat(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing proc: %v", err)
	}
}

func TestKmsg(t *testing.T) {
	f, err := os.Open("testdata/kmsg.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kr := NewKmsgReader(f)
	filter := NewKernelErrorFilter()
	var recs []KmsgRecord
	tags := map[uint64][]KernelErrorClass{}
	for {
		rec, err := kr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		if c := filter.Classes(rec.Message); c != nil {
			tags[rec.Seq] = c
		}
	}
	if len(recs) != 16 || kr.Malformed != 2 {
		t.Fatalf("%d records, %d malformed; want 16 and 2", len(recs), kr.Malformed)
	}
	if r := recs[1]; r.Level != 3 || r.Facility != 0 || r.Seq != 2 || r.Usec != 1234567 || r.Message != "ata1.00: failed command: READ FPDMA QUEUED" {
		t.Errorf("record: %+v", r)
	}
	if r := recs[12]; r.Level != 6 || r.Facility != 1 || r.Seq != 13 {
		t.Errorf("user facility record: %+v", r)
	}
	if !recs[11].Cont || recs[15].Message != "last record without newline" {
		t.Errorf("flags or last record: %+v %+v", recs[11], recs[15])
	}
	wantTags := map[uint64][]KernelErrorClass{
		3:  {ClassCRC},
		4:  {ClassIO},
		5:  {ClassIO},
		6:  {ClassEXT4},
		7:  {ClassEXT4},
		8:  {ClassMemory},
		9:  {ClassMemory},
		10: {ClassMemory},
		11: {ClassCRC},
	}
	for seq, want := range wantTags {
		if !slices.Equal(tags[seq], want) {
			t.Errorf("seq %d: classes %v, want %v", seq, tags[seq], want)
		}
	}
	for seq := range tags {
		if _, ok := wantTags[seq]; !ok {
			t.Errorf("seq %d tagged %v, want none", seq, tags[seq])
		}
	}
	if filter.Counts[ClassIO] != 2 || filter.Counts[ClassCRC] != 2 || filter.Counts[ClassEXT4] != 2 || filter.Counts[ClassMemory] != 3 {
		t.Errorf("counts %v", filter.Counts)
	}
	if len(filter.Samples()) != 4 {
		t.Errorf("samples %v", filter.Samples())
	}
	// A line over the buffer size is skipped and counted.
	long := "6,1,1,-;" + strings.Repeat("x", 70<<10) + "\n6,2,2,-;after\n"
	kr = NewKmsgReader(strings.NewReader(long))
	rec, err := kr.Next()
	if err != nil || rec.Message != "after" || kr.Malformed != 1 {
		t.Errorf("long line: %+v %v malformed %d", rec, err, kr.Malformed)
	}
	for _, bad := range []string{"", "1024,1,1,-;m", "no semicolon", "6,1;x", "x,1,1,-;m", "6,1,z,-;m", "\x00\xff;"} {
		if _, err := ParseKmsg([]byte(bad)); err == nil {
			t.Errorf("ParseKmsg(%q) succeeded", bad)
		}
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.CgroupRoot = "sys"
	c.CgroupVersion = "v3"
	c.ProcRoot = ""
	c.Kmsg = "kmsg"
	c.FileSystems = []string{"/", "data"}
	c.Interval = 0
	err := c.Validate()
	for _, want := range []string{"cgroup_root: must be an absolute path", `cgroup_version: unknown version "v3"`, "proc_root:", "kmsg:", "file_systems[1]:", "interval: must be at least 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	for root, want := range map[string]string{"testdata/cgroupv1": CgroupV1, "testdata/cgroupv2-root": CgroupV2} {
		if got, err := DetectCgroupVersion(root); got != want || err != nil {
			t.Errorf("DetectCgroupVersion(%s) = %q %v, want %q", root, got, err, want)
		}
	}
	if _, err := DetectCgroupVersion("testdata/proc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DetectCgroupVersion(proc) = %v", err)
	}
}

func TestQuotaCores(t *testing.T) {
	for _, c := range []struct {
		q, p string
		want float64
	}{
		{"150000", "100000", 1.5}, {"50000", "100000", 0.5}, {"-1", "100000", 0},
		{"0", "100000", 0}, {"100000", "0", 0}, {"x", "100000", 0}, {"100000", "", 0},
	} {
		if got := quotaCores(c.q, c.p); got != c.want {
			t.Errorf("quotaCores(%q, %q) = %v, want %v", c.q, c.p, got, c.want)
		}
	}
}
