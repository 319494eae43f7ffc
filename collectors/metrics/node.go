package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// userHZ is the unit of /proc/stat CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

// CPUTimes are cumulative CPU times in seconds.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal float64
}

// Total returns the sum of all times.
func (t CPUTimes) Total() float64 {
	return t.User + t.Nice + t.System + t.Idle + t.IOWait + t.IRQ + t.SoftIRQ + t.Steal
}

// ProcStat is a reading of /proc/stat.
type ProcStat struct {
	CPU          CPUTimes // all CPUs together
	NumCPU       int      // cpuN lines
	ContextSw    uint64
	ProcsRunning uint64
	ProcsBlocked uint64
	Malformed    int
}

// NodeReader reads node statistics from Proc (normally /proc).
type NodeReader struct {
	Proc string
}

// ReadStat reads Proc/stat.
func (r NodeReader) ReadStat() (ProcStat, error) {
	var s ProcStat
	b, err := readFile(join(r.Proc, "stat"))
	if err != nil {
		return s, err
	}
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			if len(f) < 5 {
				s.Malformed++
				continue
			}
			var v [8]float64
			bad := false
			for i := 0; i < 8 && i+1 < len(f); i++ {
				n, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					bad = true
					break
				}
				v[i] = float64(n) / userHZ
			}
			if bad {
				s.Malformed++
				continue
			}
			s.CPU = CPUTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
			seen = true
		case strings.HasPrefix(f[0], "cpu"):
			s.NumCPU++
		case len(f) == 2 && (f[0] == "ctxt" || f[0] == "procs_running" || f[0] == "procs_blocked"):
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				s.Malformed++
				continue
			}
			switch f[0] {
			case "ctxt":
				s.ContextSw = n
			case "procs_running":
				s.ProcsRunning = n
			default:
				s.ProcsBlocked = n
			}
		}
	}
	if !seen {
		return s, fmt.Errorf("cannot read %s: no aggregate cpu line", join(r.Proc, "stat"))
	}
	return s, nil
}

// CPUBusy returns the fraction (0..1) of CPU time that was not idle or
// waiting for I/O between two readings; multiply by NumCPU for cores.
func CPUBusy(prev, cur ProcStat) (float64, bool) {
	dt := cur.CPU.Total() - prev.CPU.Total()
	if dt <= 0 {
		return 0, false
	}
	idle := (cur.CPU.Idle + cur.CPU.IOWait) - (prev.CPU.Idle + prev.CPU.IOWait)
	busy := 1 - idle/dt
	if busy < 0 {
		busy = 0
	}
	return busy, true
}

// MemInfo holds /proc/meminfo values in bytes, keyed by field name
// (MemTotal, MemAvailable, Cached, ...).
type MemInfo struct {
	Bytes     map[string]uint64
	Malformed int
}

// ReadMemInfo reads Proc/meminfo.
func (r NodeReader) ReadMemInfo() (MemInfo, error) {
	m := MemInfo{Bytes: map[string]uint64{}}
	b, err := readFile(join(r.Proc, "meminfo"))
	if err != nil {
		return m, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			m.Malformed++
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			m.Malformed++
			continue
		}
		if len(f) == 2 {
			v *= 1024
		}
		m.Bytes[strings.TrimSpace(k)] = v
	}
	if _, ok := m.Bytes["MemTotal"]; !ok {
		return m, fmt.Errorf("cannot read %s: no MemTotal", join(r.Proc, "meminfo"))
	}
	return m, nil
}

// LoadAvg is /proc/loadavg.
type LoadAvg struct {
	Load1, Load5, Load15 float64
	Running, Total       uint64 // scheduling entities
}

// ReadLoadAvg reads Proc/loadavg.
func (r NodeReader) ReadLoadAvg() (LoadAvg, error) {
	var l LoadAvg
	path := join(r.Proc, "loadavg")
	b, err := readFile(path)
	if err != nil {
		return l, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return l, fmt.Errorf("cannot parse %s: %d fields", path, len(f))
	}
	var errs [5]error
	l.Load1, errs[0] = strconv.ParseFloat(f[0], 64)
	l.Load5, errs[1] = strconv.ParseFloat(f[1], 64)
	l.Load15, errs[2] = strconv.ParseFloat(f[2], 64)
	run, tot, ok := strings.Cut(f[3], "/")
	if !ok {
		return l, fmt.Errorf("cannot parse %s: no running/total field", path)
	}
	l.Running, errs[3] = strconv.ParseUint(run, 10, 64)
	l.Total, errs[4] = strconv.ParseUint(tot, 10, 64)
	for _, e := range errs {
		if e != nil {
			return l, fmt.Errorf("cannot parse %s: %w", path, e)
		}
	}
	return l, nil
}

// DiskStat is one /proc/diskstats line.
type DiskStat struct {
	Device                     string
	Reads, Writes              uint64 // completed operations
	ReadBytes, WriteBytes      uint64 // sectors × 512
	ReadTimeMs, WriteTimeMs    uint64
	IOTimeMs, WeightedIOTimeMs uint64
	InFlight                   uint64
}

// DiskStats is a reading of /proc/diskstats.
type DiskStats struct {
	Disks     []DiskStat
	Malformed int
}

// ReadDiskStats reads Proc/diskstats. Loop, ram and zram devices with no
// I/O at all are left out.
func (r NodeReader) ReadDiskStats() (DiskStats, error) {
	var d DiskStats
	b, err := readFile(join(r.Proc, "diskstats"))
	if err != nil {
		return d, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 14 {
			d.Malformed++
			continue
		}
		var v [11]uint64
		bad := false
		for i := range v {
			if v[i], err = strconv.ParseUint(f[3+i], 10, 64); err != nil {
				bad = true
				break
			}
		}
		if bad {
			d.Malformed++
			continue
		}
		ds := DiskStat{Device: f[2], Reads: v[0], ReadBytes: v[2] * 512, ReadTimeMs: v[3],
			Writes: v[4], WriteBytes: v[6] * 512, WriteTimeMs: v[7], InFlight: v[8], IOTimeMs: v[9], WeightedIOTimeMs: v[10]}
		if ds.Reads == 0 && ds.Writes == 0 && (strings.HasPrefix(ds.Device, "loop") || strings.HasPrefix(ds.Device, "ram") || strings.HasPrefix(ds.Device, "zram")) {
			continue
		}
		d.Disks = append(d.Disks, ds)
	}
	return d, nil
}

// NetDev is one interface of /proc/net/dev.
type NetDev struct {
	Interface                               string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// NetDevs is a reading of /proc/net/dev.
type NetDevs struct {
	Interfaces []NetDev
	Malformed  int
}

// ReadNetDev reads Proc/net/dev.
func (r NodeReader) ReadNetDev() (NetDevs, error) {
	var n NetDevs
	b, err := readFile(join(r.Proc, "net", "dev"))
	if err != nil {
		return n, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			if strings.Contains(line, "|") || strings.TrimSpace(line) == "" {
				continue // header
			}
			n.Malformed++
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 16 {
			n.Malformed++
			continue
		}
		var v [16]uint64
		bad := false
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				bad = true
				break
			}
		}
		if bad {
			n.Malformed++
			continue
		}
		n.Interfaces = append(n.Interfaces, NetDev{Interface: strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return n, nil
}

// FSUsage is the usage of one mounted file system.
type FSUsage struct {
	Path                             string
	SizeBytes, FreeBytes, AvailBytes uint64 // Avail: free to unprivileged users
	Inodes, InodesFree               uint64
}

// ReadFSUsage returns the usage of the file system mounted at path.
func ReadFSUsage(path string) (FSUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return FSUsage{}, fmt.Errorf("cannot statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return FSUsage{Path: path, SizeBytes: st.Blocks * bs, FreeBytes: st.Bfree * bs, AvailBytes: st.Bavail * bs,
		Inodes: st.Files, InodesFree: st.Ffree}, nil
}

// Samples returns node_cpu_* samples; with a previous reading,
// node_cpu_busy_ratio and node_cpu_usage_cores are included.
func (s ProcStat) Samples(prev *ProcStat) []Sample {
	out := []Sample{
		{Name: "node_cpu_seconds_total", Value: s.CPU.Total() - s.CPU.Idle - s.CPU.IOWait, Kind: Counter},
		{Name: "node_cpu_iowait_seconds_total", Value: s.CPU.IOWait, Kind: Counter},
		{Name: "node_cpu_steal_seconds_total", Value: s.CPU.Steal, Kind: Counter},
		{Name: "node_cpus", Value: float64(s.NumCPU), Kind: Gauge},
		{Name: "node_context_switches_total", Value: float64(s.ContextSw), Kind: Counter},
		{Name: "node_procs_running", Value: float64(s.ProcsRunning), Kind: Gauge},
		{Name: "node_procs_blocked", Value: float64(s.ProcsBlocked), Kind: Gauge},
	}
	if prev != nil {
		if b, ok := CPUBusy(*prev, s); ok {
			out = append(out, Sample{Name: "node_cpu_busy_ratio", Value: b, Kind: Gauge},
				Sample{Name: "node_cpu_usage_cores", Value: b * float64(s.NumCPU), Kind: Gauge})
		}
	}
	return out
}

// Samples returns node_memory_* samples.
func (m MemInfo) Samples() []Sample {
	var out []Sample
	for _, k := range []struct{ field, name string }{
		{"MemTotal", "node_memory_total_bytes"}, {"MemFree", "node_memory_free_bytes"},
		{"MemAvailable", "node_memory_available_bytes"}, {"Buffers", "node_memory_buffers_bytes"},
		{"Cached", "node_memory_cached_bytes"}, {"SwapTotal", "node_memory_swap_total_bytes"},
		{"SwapFree", "node_memory_swap_free_bytes"}, {"HardwareCorrupted", "node_memory_hardware_corrupted_bytes"},
	} {
		if v, ok := m.Bytes[k.field]; ok {
			out = append(out, Sample{Name: k.name, Value: float64(v), Kind: Gauge})
		}
	}
	return out
}

// Samples returns node_load* samples.
func (l LoadAvg) Samples() []Sample {
	return []Sample{
		{Name: "node_load1", Value: l.Load1, Kind: Gauge},
		{Name: "node_load5", Value: l.Load5, Kind: Gauge},
		{Name: "node_load15", Value: l.Load15, Kind: Gauge},
		{Name: "node_sched_entities", Value: float64(l.Total), Kind: Gauge},
	}
}

// Samples returns node_disk_* samples labelled with the device.
func (d DiskStats) Samples() []Sample {
	var out []Sample
	for _, s := range d.Disks {
		l := lbl("device", s.Device)
		out = append(out,
			Sample{Name: "node_disk_reads_completed_total", Value: float64(s.Reads), Kind: Counter, Labels: l},
			Sample{Name: "node_disk_writes_completed_total", Value: float64(s.Writes), Kind: Counter, Labels: l},
			Sample{Name: "node_disk_read_bytes_total", Value: float64(s.ReadBytes), Kind: Counter, Labels: l},
			Sample{Name: "node_disk_written_bytes_total", Value: float64(s.WriteBytes), Kind: Counter, Labels: l},
			Sample{Name: "node_disk_io_time_seconds_total", Value: float64(s.IOTimeMs) / 1e3, Kind: Counter, Labels: l},
			Sample{Name: "node_disk_io_now", Value: float64(s.InFlight), Kind: Gauge, Labels: l})
	}
	return out
}

// Samples returns node_network_* samples labelled with the interface.
func (n NetDevs) Samples() []Sample {
	var out []Sample
	for _, i := range n.Interfaces {
		l := lbl("interface", i.Interface)
		out = append(out,
			Sample{Name: "node_network_receive_bytes_total", Value: float64(i.RxBytes), Kind: Counter, Labels: l},
			Sample{Name: "node_network_transmit_bytes_total", Value: float64(i.TxBytes), Kind: Counter, Labels: l},
			Sample{Name: "node_network_receive_packets_total", Value: float64(i.RxPackets), Kind: Counter, Labels: l},
			Sample{Name: "node_network_transmit_packets_total", Value: float64(i.TxPackets), Kind: Counter, Labels: l},
			Sample{Name: "node_network_receive_errors_total", Value: float64(i.RxErrors), Kind: Counter, Labels: l},
			Sample{Name: "node_network_transmit_errors_total", Value: float64(i.TxErrors), Kind: Counter, Labels: l},
			Sample{Name: "node_network_receive_drop_total", Value: float64(i.RxDropped), Kind: Counter, Labels: l},
			Sample{Name: "node_network_transmit_drop_total", Value: float64(i.TxDropped), Kind: Counter, Labels: l})
	}
	return out
}

// Samples returns node_filesystem_* samples labelled with the mount point.
func (f FSUsage) Samples() []Sample {
	l := lbl("mountpoint", f.Path)
	return []Sample{
		{Name: "node_filesystem_size_bytes", Value: float64(f.SizeBytes), Kind: Gauge, Labels: l},
		{Name: "node_filesystem_free_bytes", Value: float64(f.FreeBytes), Kind: Gauge, Labels: l},
		{Name: "node_filesystem_avail_bytes", Value: float64(f.AvailBytes), Kind: Gauge, Labels: l},
		{Name: "node_filesystem_files", Value: float64(f.Inodes), Kind: Gauge, Labels: l},
		{Name: "node_filesystem_files_free", Value: float64(f.InodesFree), Kind: Gauge, Labels: l},
	}
}
