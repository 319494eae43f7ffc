package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

// TestThisMachine reads this machine's /proc, cgroups and root file system
// and checks that the values are plausible.
func TestThisMachine(t *testing.T) {
	r := NodeReader{Proc: "/proc"}
	st, err := r.ReadStat()
	if err != nil {
		t.Fatal(err)
	}
	if st.NumCPU < 1 || st.CPU.Total() <= 0 || st.Malformed != 0 {
		t.Errorf("stat: %+v", st)
	}
	// A rate needs an interval: sample every 100 ms (shorter intervals are
	// dominated by the kernel's accounting granularity) until the CPU
	// counters advanced.
	var st2 ProcStat
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		if st2, err = r.ReadStat(); err != nil {
			t.Fatal(err)
		}
		if st2.CPU.Total() > st.CPU.Total() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/proc/stat CPU times did not advance in 10 s: %+v", st2.CPU)
		}
	}
	if b, ok := CPUBusy(st, st2); !ok || b < 0 || b > 1 {
		t.Errorf("CPU busy ratio %v (ok %v)", b, ok)
	}
	mi, err := r.ReadMemInfo()
	if err != nil {
		t.Fatal(err)
	}
	total, avail := mi.Bytes["MemTotal"], mi.Bytes["MemAvailable"]
	if total < 256<<20 || avail == 0 || avail > total || mi.Malformed != 0 {
		t.Errorf("meminfo: total %d available %d malformed %d", total, avail, mi.Malformed)
	}
	la, err := r.ReadLoadAvg()
	if err != nil || la.Load1 < 0 || la.Total < 1 {
		t.Errorf("loadavg: %+v %v", la, err)
	}
	ds, err := r.ReadDiskStats()
	if err != nil || ds.Malformed != 0 {
		t.Errorf("diskstats: %+v %v", ds, err)
	}
	nd, err := r.ReadNetDev()
	if err != nil || nd.Malformed != 0 || len(nd.Interfaces) == 0 {
		t.Errorf("net/dev: %+v %v", nd, err)
	}
	fsu, err := ReadFSUsage("/")
	if err != nil || fsu.SizeBytes == 0 || fsu.AvailBytes > fsu.SizeBytes || fsu.FreeBytes > fsu.SizeBytes {
		t.Errorf("statfs /: %+v %v", fsu, err)
	}

	cg := CgroupReader{Root: "/sys/fs/cgroup"}
	switch {
	case exists("/sys/fs/cgroup/cpuacct/cpuacct.usage"):
		// v1: controllers may place this process in different cgroups;
		// read CPU from its cpuacct cgroup and memory from its memory one.
		cpuPath, memPath := ownCgroupV1(t, "cpuacct"), ownCgroupV1(t, "memory")
		s, err := cg.ReadV1(cpuPath)
		if err != nil {
			t.Fatal(err)
		}
		if s.CPUUsageNanos == 0 || s.CPUUserNanos == 0 || s.Malformed != 0 {
			t.Errorf("cgroup v1 %s: %+v", cpuPath, s)
		}
		// Sampled as /proc/stat above, until this cgroup's usage advanced.
		var s2 CgroupStats
		for deadline := time.Now().Add(10 * time.Second); ; {
			time.Sleep(100 * time.Millisecond)
			if s2, err = cg.ReadV1(cpuPath); err != nil {
				t.Fatal(err)
			}
			if s2.CPUUsageNanos > s.CPUUsageNanos {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cgroup v1 %s: CPU usage did not advance in 10 s: %+v", cpuPath, s2)
			}
		}
		if c, ok := CPUCores(s, s2); !ok || c < 0 || c > float64(st.NumCPU)*1.1 {
			t.Errorf("cgroup v1 cores %v %v", c, ok)
		}
		m, err := cg.ReadV1(memPath)
		if err != nil {
			t.Fatal(err)
		}
		if m.MemoryUsage == 0 || m.MemoryWorkingSet > m.MemoryUsage || m.MemoryUsage > total*2 || m.Malformed != 0 {
			t.Errorf("cgroup v1 %s: %+v", memPath, m)
		}
		t.Logf("cgroup v1: %s usage %d ns; %s memory %d, working set %d, limit %d", cpuPath, s.CPUUsageNanos, memPath, m.MemoryUsage, m.MemoryWorkingSet, m.MemoryLimit)
		if exists("/sys/fs/cgroup/unified/cpu.stat") {
			u := CgroupReader{Root: "/sys/fs/cgroup/unified"}
			s, err := u.ReadV2("/")
			if err != nil {
				t.Fatal(err)
			}
			if s.CPUUsageNanos == 0 || s.Malformed != 0 {
				t.Errorf("cgroup v2 (unified hierarchy): %+v", s)
			}
			t.Logf("cgroup v2 at /sys/fs/cgroup/unified: usage %d ns, missing %v", s.CPUUsageNanos, s.Missing)
		}
	case exists("/sys/fs/cgroup/cgroup.controllers"):
		s, err := cg.ReadV2("/")
		if err != nil {
			t.Fatal(err)
		}
		if s.CPUUsageNanos == 0 || s.Malformed != 0 {
			t.Errorf("cgroup v2: %+v", s)
		}
	default:
		t.Error("no cgroup v1 cpuacct nor cgroup v2 hierarchy under /sys/fs/cgroup")
	}

}

// TestThisMachineKmsg reads this machine's /dev/kmsg to its last record and
// checks that every record parses, in sequence order. Without a readable
// /dev/kmsg (a container without it, an unprivileged user) it skips, and
// fails with CI set: a CI machine must let the kernel log reader be tested.
func TestThisMachineKmsg(t *testing.T) {
	// Non-blocking, so that reading stops at the last record.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		testkit.Missing(t, fmt.Sprintf("cannot open /dev/kmsg: %v; the kernel log reader is not checked on this machine", err))
	}
	defer syscall.Close(fd)
	// Plain read(2): an *os.File would wait in the poller instead of
	// returning EAGAIN at the last record.
	kr := NewKmsgReader(rawFD(fd))
	filter := NewKernelErrorFilter()
	n := 0
	var lastSeq uint64
	for {
		rec, err := kr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && rec.Seq <= lastSeq {
			t.Errorf("sequence went from %d to %d", lastSeq, rec.Seq)
		}
		lastSeq = rec.Seq
		filter.Classes(rec.Message)
		n++
	}
	if n == 0 || kr.Malformed != 0 {
		t.Errorf("/dev/kmsg: %d records, %d malformed", n, kr.Malformed)
	}
	t.Logf("/dev/kmsg: %d records, kernel errors %v", n, filter.Counts)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ownCgroupV1 returns this process's cgroup path for a v1 controller.
func ownCgroupV1(t *testing.T, controller string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ","+controller+",") {
			return parts[2]
		}
	}
	return "/"
}

type rawFD int

func (fd rawFD) Read(p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if n < 0 {
		n = 0
	}
	return n, err
}
