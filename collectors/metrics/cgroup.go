package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CgroupStats is one reading of a container's cgroup. Counters are
// cumulative since the cgroup was created; CPUCores needs two readings.
type CgroupStats struct {
	At time.Time // when the reading was taken

	CPUUsageNanos  uint64 // total CPU time
	CPUUserNanos   uint64
	CPUSystemNanos uint64
	Periods        uint64 // CFS enforcement periods
	Throttled      uint64 // periods in which the cgroup was throttled
	ThrottledNanos uint64 // time spent throttled
	// CPULimitCores is the CFS quota over its period (v1 cpu.cfs_quota_us /
	// cpu.cfs_period_us, v2 cpu.max); 0 when unlimited or not readable.
	CPULimitCores float64

	MemoryUsage      uint64 // bytes charged, page cache included
	MemoryWorkingSet uint64 // usage minus inactive file cache (what the OOM killer sees, as kubelet computes it)
	MemoryRSS        uint64 // anonymous memory
	MemoryCache      uint64 // file cache
	MemoryLimit      uint64 // 0 when unlimited

	IOReadBytes  uint64 // summed over devices
	IOWriteBytes uint64
	IOReadOps    uint64 // operations (v1: blkio.throttle.io_serviced)
	IOWriteOps   uint64

	Pids uint64

	// Missing lists the files that were absent (a controller not enabled
	// for the cgroup); their fields are zero.
	Missing []string
	// Malformed counts lines that were skipped.
	Malformed int
}

// unlimitedV1 is the smallest memory.limit_in_bytes value treated as "no
// limit": v1 reports PAGE_COUNTER_MAX rounded to pages (9223372036854771712
// with 4 KiB pages).
const unlimitedV1 = 1 << 62

// CgroupReader reads cgroup statistics under Root (normally /sys/fs/cgroup;
// a testdata tree in tests).
type CgroupReader struct {
	Root string
	Now  func() time.Time // clock for CgroupStats.At; time.Now when nil
}

func (r CgroupReader) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// ReadV2 reads the cgroup v2 directory path (relative to Root, for example
// "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope").
func (r CgroupReader) ReadV2(path string) (CgroupStats, error) {
	dir := join(r.Root, path)
	if _, err := os.Stat(dir); err != nil {
		return CgroupStats{}, fmt.Errorf("cannot read cgroup %s: %w", dir, err)
	}
	s := CgroupStats{At: r.now()}
	missing := func(file string, err error) error {
		if isNotExist(err) {
			s.Missing = append(s.Missing, file)
			return nil
		}
		return err
	}
	n, err := readKV(join(dir, "cpu.stat"), func(k string, v uint64) {
		switch k {
		case "usage_usec":
			s.CPUUsageNanos = v * 1000
		case "user_usec":
			s.CPUUserNanos = v * 1000
		case "system_usec":
			s.CPUSystemNanos = v * 1000
		case "nr_periods":
			s.Periods = v
		case "nr_throttled":
			s.Throttled = v
		case "throttled_usec":
			s.ThrottledNanos = v * 1000
		}
	})
	s.Malformed += n
	if err := missing("cpu.stat", err); err != nil {
		return s, err
	}
	s.CPULimitCores = cpuMaxV2(join(dir, "cpu.max"))
	if v, _, err := readUint(join(dir, "memory.current")); err == nil {
		s.MemoryUsage = v
	} else if err := missing("memory.current", err); err != nil {
		return s, err
	}
	var inactiveFile uint64
	n, err = readKV(join(dir, "memory.stat"), func(k string, v uint64) {
		switch k {
		case "anon":
			s.MemoryRSS = v
		case "file":
			s.MemoryCache = v
		case "inactive_file":
			inactiveFile = v
		}
	})
	s.Malformed += n
	if err := missing("memory.stat", err); err != nil {
		return s, err
	}
	s.MemoryWorkingSet = workingSet(s.MemoryUsage, inactiveFile)
	if v, max, err := readUint(join(dir, "memory.max")); err == nil {
		if !max {
			s.MemoryLimit = v
		}
	} else if err := missing("memory.max", err); err != nil {
		return s, err
	}
	if err := r.ioStatV2(join(dir, "io.stat"), &s); err != nil {
		if err := missing("io.stat", err); err != nil {
			return s, err
		}
	}
	if v, _, err := readUint(join(dir, "pids.current")); err == nil {
		s.Pids = v
	} else if err := missing("pids.current", err); err != nil {
		return s, err
	}
	return s, nil
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

// ioStatV2 sums io.stat lines "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func (r CgroupReader) ioStatV2(path string, s *CgroupStats) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || !strings.Contains(f[0], ":") {
			s.Malformed++
			continue
		}
		for _, kv := range f[1:] {
			k, vs, ok := strings.Cut(kv, "=")
			v, err := strconv.ParseUint(vs, 10, 64)
			if !ok || err != nil {
				s.Malformed++
				break
			}
			switch k {
			case "rbytes":
				s.IOReadBytes += v
			case "wbytes":
				s.IOWriteBytes += v
			case "rios":
				s.IOReadOps += v
			case "wios":
				s.IOWriteOps += v
			}
		}
	}
	return nil
}

// ReadV1 reads the cgroup v1 hierarchy: path (for example
// "kubepods/burstable/pod1/abc") under each controller directory of Root
// (cpu, cpuacct, memory, blkio, pids).
func (r CgroupReader) ReadV1(path string) (CgroupStats, error) {
	s := CgroupStats{At: r.now()}
	found := 0
	missing := func(file string, err error) error {
		if isNotExist(err) {
			s.Missing = append(s.Missing, file)
			return nil
		}
		found++
		return err
	}
	if v, _, err := readUint(join(r.Root, "cpuacct", path, "cpuacct.usage")); err == nil {
		s.CPUUsageNanos = v
		found++
	} else if err := missing("cpuacct/cpuacct.usage", err); err != nil {
		return s, err
	}
	// cpuacct.stat is in USER_HZ ticks.
	n, err := readKV(join(r.Root, "cpuacct", path, "cpuacct.stat"), func(k string, v uint64) {
		switch k {
		case "user":
			s.CPUUserNanos = v * 1e7
		case "system":
			s.CPUSystemNanos = v * 1e7
		}
	})
	s.Malformed += n
	if err == nil {
		found++
	} else if err := missing("cpuacct/cpuacct.stat", err); err != nil {
		return s, err
	}
	n, err = readKV(join(r.Root, "cpu", path, "cpu.stat"), func(k string, v uint64) {
		switch k {
		case "nr_periods":
			s.Periods = v
		case "nr_throttled":
			s.Throttled = v
		case "throttled_time":
			s.ThrottledNanos = v
		}
	})
	s.Malformed += n
	if err == nil {
		found++
	} else if err := missing("cpu/cpu.stat", err); err != nil {
		return s, err
	}
	s.CPULimitCores = cpuQuotaV1(join(r.Root, "cpu", path))
	if v, _, err := readUint(join(r.Root, "memory", path, "memory.usage_in_bytes")); err == nil {
		s.MemoryUsage = v
		found++
	} else if err := missing("memory/memory.usage_in_bytes", err); err != nil {
		return s, err
	}
	// memory.stat has local and hierarchical (total_) values; a container
	// is a leaf, but prefer total_ when present as cadvisor does.
	var inactiveFile, totalInactiveFile, rss, totalRSS, cache, totalCache uint64
	var haveTotal bool
	n, err = readKV(join(r.Root, "memory", path, "memory.stat"), func(k string, v uint64) {
		switch k {
		case "inactive_file":
			inactiveFile = v
		case "total_inactive_file":
			totalInactiveFile, haveTotal = v, true
		case "rss":
			rss = v
		case "total_rss":
			totalRSS = v
		case "cache":
			cache = v
		case "total_cache":
			totalCache = v
		}
	})
	s.Malformed += n
	if err == nil {
		found++
	} else if err := missing("memory/memory.stat", err); err != nil {
		return s, err
	}
	if haveTotal {
		inactiveFile, rss, cache = totalInactiveFile, totalRSS, totalCache
	}
	s.MemoryRSS, s.MemoryCache = rss, cache
	s.MemoryWorkingSet = workingSet(s.MemoryUsage, inactiveFile)
	if v, _, err := readUint(join(r.Root, "memory", path, "memory.limit_in_bytes")); err == nil {
		if v < unlimitedV1 {
			s.MemoryLimit = v
		}
		found++
	} else if err := missing("memory/memory.limit_in_bytes", err); err != nil {
		return s, err
	}
	if err := blkioV1(join(r.Root, "blkio", path, "blkio.throttle.io_service_bytes"), &s); err == nil {
		found++
	} else if err := missing("blkio/blkio.throttle.io_service_bytes", err); err != nil {
		return s, err
	}
	if err := blkioOpsV1(join(r.Root, "blkio", path, "blkio.throttle.io_serviced"), &s); err != nil {
		if err := missing("blkio/blkio.throttle.io_serviced", err); err != nil {
			return s, err
		}
	}
	if v, _, err := readUint(join(r.Root, "pids", path, "pids.current")); err == nil {
		s.Pids = v
		found++
	} else if err := missing("pids/pids.current", err); err != nil {
		return s, err
	}
	if found == 0 {
		return s, fmt.Errorf("cannot read cgroup v1 %s under %s: no controller has it: %w", path, r.Root, ErrNotFound)
	}
	return s, nil
}

// blkioV1 sums "8:0 Read 123" / "8:0 Write 45" lines; "Total" lines are
// skipped.
func blkioV1(path string, s *CgroupStats) error {
	return blkioLines(path, s, &s.IOReadBytes, &s.IOWriteBytes)
}

func blkioOpsV1(path string, s *CgroupStats) error {
	return blkioLines(path, s, &s.IOReadOps, &s.IOWriteOps)
}

func blkioLines(path string, s *CgroupStats, read, write *uint64) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case len(f) == 2 && f[0] == "Total":
		case len(f) == 3 && strings.Contains(f[0], ":"):
			v, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				s.Malformed++
				continue
			}
			switch f[1] {
			case "Read":
				*read += v
			case "Write":
				*write += v
			}
		default:
			s.Malformed++
		}
	}
	return nil
}

// CPUCores returns the average number of cores used between two readings
// of the same cgroup. ok is false when the interval is not positive or the
// counter went backwards (the cgroup was recreated).
func CPUCores(prev, cur CgroupStats) (cores float64, ok bool) {
	dt := cur.At.Sub(prev.At)
	if dt <= 0 || cur.CPUUsageNanos < prev.CPUUsageNanos {
		return 0, false
	}
	return float64(cur.CPUUsageNanos-prev.CPUUsageNanos) / float64(dt.Nanoseconds()), true
}

// Samples returns the container samples of s. With a previous reading,
// container_cpu_usage_cores is included.
func (s CgroupStats) Samples(prev *CgroupStats) []Sample {
	out := []Sample{
		{Name: "container_cpu_usage_seconds_total", Value: float64(s.CPUUsageNanos) / 1e9, Kind: Counter},
		{Name: "container_cpu_user_seconds_total", Value: float64(s.CPUUserNanos) / 1e9, Kind: Counter},
		{Name: "container_cpu_system_seconds_total", Value: float64(s.CPUSystemNanos) / 1e9, Kind: Counter},
		{Name: "container_cpu_cfs_periods_total", Value: float64(s.Periods), Kind: Counter},
		{Name: "container_cpu_cfs_throttled_periods_total", Value: float64(s.Throttled), Kind: Counter},
		{Name: "container_cpu_cfs_throttled_seconds_total", Value: float64(s.ThrottledNanos) / 1e9, Kind: Counter},
		{Name: "container_cpu_limit_cores", Value: s.CPULimitCores, Kind: Gauge},
		{Name: "container_memory_usage_bytes", Value: float64(s.MemoryUsage), Kind: Gauge},
		{Name: "container_memory_working_set_bytes", Value: float64(s.MemoryWorkingSet), Kind: Gauge},
		{Name: "container_memory_rss_bytes", Value: float64(s.MemoryRSS), Kind: Gauge},
		{Name: "container_memory_cache_bytes", Value: float64(s.MemoryCache), Kind: Gauge},
		{Name: "container_memory_limit_bytes", Value: float64(s.MemoryLimit), Kind: Gauge},
		{Name: "container_fs_reads_bytes_total", Value: float64(s.IOReadBytes), Kind: Counter},
		{Name: "container_fs_writes_bytes_total", Value: float64(s.IOWriteBytes), Kind: Counter},
		{Name: "container_fs_reads_total", Value: float64(s.IOReadOps), Kind: Counter},
		{Name: "container_fs_writes_total", Value: float64(s.IOWriteOps), Kind: Counter},
		{Name: "container_processes", Value: float64(s.Pids), Kind: Gauge},
	}
	if prev != nil {
		if c, ok := CPUCores(*prev, s); ok {
			out = append(out, Sample{Name: "container_cpu_usage_cores", Value: c, Kind: Gauge})
		}
	}
	return out
}

// cpuMaxV2 reads a v2 cpu.max ("max 100000" or "150000 100000") as cores.
// A missing or unreadable file means no limit known: the CPU controller
// may not be enabled for the cgroup, which the other files already report.
func cpuMaxV2(path string) float64 {
	b, err := readFile(path)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	return quotaCores(f[0], f[1])
}

// cpuQuotaV1 reads cpu.cfs_quota_us (-1 = unlimited) over
// cpu.cfs_period_us in the v1 cpu controller directory dir.
func cpuQuotaV1(dir string) float64 {
	q, err := readFile(join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0
	}
	p, err := readFile(join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0
	}
	return quotaCores(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

// quotaCores is quota/period in cores, 0 for a negative, zero or
// malformed value.
func quotaCores(quota, period string) float64 {
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return float64(q) / float64(p)
}
