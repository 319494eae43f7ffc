// Package procstat reads what the benchmark harnesses measure of a process
// and of the machine from /proc, through github.com/prometheus/procfs.
package procstat

import (
	"os"

	"github.com/prometheus/procfs"
)

// CPUSeconds returns the user and system CPU time of pid.
func CPUSeconds(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}

// Memory returns the resident and the peak resident memory of pid in
// bytes (VmRSS, VmHWM).
func Memory(pid int) (rss, hwm int64, err error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0, err
	}
	return int64(st.VmRSS), int64(st.VmHWM), nil
}

// BusyCPU returns the CPU seconds the whole machine spent outside idle and
// I/O wait (guest time is already in user), or 0 when /proc/stat cannot be
// read.
func BusyCPU() float64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	st, err := fs.Stat()
	if err != nil {
		return 0
	}
	c := st.CPUTotal
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// Machine returns the CPU model and the memory in GiB, "" and 0 where
// unknown.
func Machine() (model string, memGiB float64) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "", 0
	}
	if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 {
		model = cpus[0].ModelName
	}
	if mi, err := fs.Meminfo(); err == nil && mi.MemTotal != nil {
		memGiB = float64(*mi.MemTotal) / (1 << 20) // kB
	}
	return model, memGiB
}

// Tail returns the last 3000 bytes of the file at path (a process log).
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
