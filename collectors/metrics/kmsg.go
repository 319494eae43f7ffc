package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// OpenKmsg opens /dev/kmsg (or a file of records) for reading. The device
// is non-blocking and in the runtime's poller, so a Read with no record
// pending waits in the poller rather than in the kernel; when ctx is done,
// the pending and every later Read return os.ErrDeadlineExceeded at once.
// A reader of the device therefore never holds up a shutdown. Call the
// returned close function when done.
func OpenKmsg(ctx context.Context, path string) (f *os.File, closeFn func() error, err error) {
	f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open kernel log %s: %w", path, err)
	}
	// A regular file is not pollable and refuses deadlines; its reads
	// never block either (io.EOF at its end).
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	return f, func() error {
		stop()
		return f.Close()
	}, nil
}

// KmsgRecord is one record of /dev/kmsg: "priority,seq,usec,flags;message".
type KmsgRecord struct {
	Level    uint8  // syslog severity, 0 (emerg) to 7 (debug)
	Facility uint8  // syslog facility, 0 for the kernel
	Seq      uint64 // sequence number; a gap means records were lost
	Usec     uint64 // microseconds since boot
	Cont     bool   // flags field "c": a continuation fragment
	Message  string // with the kernel's \xNN escapes left as they are
}

// ParseKmsg parses one record (without its dictionary lines, which start
// with a blank).
func ParseKmsg(line []byte) (KmsgRecord, error) {
	var r KmsgRecord
	line = bytes.TrimRight(line, "\n")
	hdr, msg, ok := bytes.Cut(line, []byte{';'})
	if !ok {
		return r, fmt.Errorf("no ';' after the header")
	}
	f := bytes.Split(hdr, []byte{','})
	if len(f) < 3 {
		return r, fmt.Errorf("header has %d fields, want at least 3", len(f))
	}
	pri, err := strconv.ParseUint(string(f[0]), 10, 32)
	if err != nil || pri > 1023 { // facility is at most 127
		return r, fmt.Errorf("bad priority %q", f[0])
	}
	if r.Seq, err = strconv.ParseUint(string(f[1]), 10, 64); err != nil {
		return r, fmt.Errorf("bad sequence number %q", f[1])
	}
	if r.Usec, err = strconv.ParseUint(string(f[2]), 10, 64); err != nil {
		return r, fmt.Errorf("bad timestamp %q", f[2])
	}
	if len(f) > 3 && len(f[3]) > 0 && f[3][0] == 'c' {
		r.Cont = true
	}
	r.Level = uint8(pri & 7)
	r.Facility = uint8(pri >> 3)
	r.Message = string(msg)
	return r, nil
}

// KmsgReader reads records from /dev/kmsg or a file of records, one a
// line. Malformed records are skipped and counted.
type KmsgReader struct {
	br        *bufio.Reader
	Malformed int // records skipped because they did not parse
}

// NewKmsgReader returns a reader of r. /dev/kmsg hands out one record per
// read, so r must not be read elsewhere.
func NewKmsgReader(r io.Reader) *KmsgReader {
	return &KmsgReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record. It returns io.EOF at the end of a file and,
// on /dev/kmsg opened non-blocking outside the runtime's poller, when no
// record is pending (syscall.EAGAIN is turned into io.EOF); on a device
// from OpenKmsg it waits for a record until the read deadline
// (os.ErrDeadlineExceeded). An error EPIPE from /dev/kmsg
// means records were overwritten before they were read; Next counts it in
// Malformed and carries on.
func (k *KmsgReader) Next() (KmsgRecord, error) {
	for {
		line, err := k.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Over-long line: skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = k.br.ReadSlice('\n')
			}
			k.Malformed++
			if err != nil {
				return KmsgRecord{}, k.eof(err)
			}
			continue
		}
		if len(line) == 0 && err != nil {
			if errors.Is(err, syscall.EPIPE) {
				k.Malformed++
				continue
			}
			return KmsgRecord{}, k.eof(err)
		}
		if line[0] == ' ' {
			continue // dictionary line (SUBSYSTEM=..., DEVICE=...)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, perr := ParseKmsg(line)
		if perr != nil {
			k.Malformed++
			if err != nil {
				return KmsgRecord{}, k.eof(err)
			}
			continue
		}
		return rec, nil
	}
}

func (k *KmsgReader) eof(err error) error {
	if errors.Is(err, syscall.EAGAIN) {
		return io.EOF
	}
	return err
}

// KernelErrorClass names a class of kernel error.
type KernelErrorClass string

// Kernel error classes, in the order the filter tests them.
const (
	ClassCRC    KernelErrorClass = "crc"
	ClassIO     KernelErrorClass = "io"
	ClassEXT4   KernelErrorClass = "ext4"
	ClassMemory KernelErrorClass = "memory"
)

// The patterns of the kernel error filter. A message may match several.
//
//   - crc: link and media checksum errors: SATA "BadCRC"/"ICRC", NIC "crc
//     error(s)", "CRC error", "checksum error(s)" (case-insensitive).
//   - io: block-layer I/O errors: "I/O error" (blk_update_request, Buffer
//     I/O error on dev ...), "critical medium error", "Medium Error",
//     "end_request: I/O error".
//   - ext4: "EXT4-fs error", "EXT4-fs warning" and "EXT4-fs (dev): ..."
//     messages that report an error, abort or remount read-only.
//   - memory: EDAC corrected/uncorrected errors, machine checks ("mce:",
//     "Machine check", "[Hardware Error]"), "Memory failure" (hwpoison) and
//     "memory error".
var kernelErrorPatterns = []struct {
	class KernelErrorClass
	re    *regexp.Regexp
}{
	{ClassCRC, regexp.MustCompile(`(?i)\b(?:bad ?crc|icrc|crc[ _-]?err(?:or)?s?|checksum err(?:or)?s?)\b`)},
	{ClassIO, regexp.MustCompile(`(?i)\bI/O error\b|critical medium error|\bMedium Error\b`)},
	{ClassEXT4, regexp.MustCompile(`EXT4-fs (?:error|warning|critical)|EXT4-fs \([^)]*\): (?:.*\berror\b|.*Remounting filesystem read-only|.*Aborting journal|.*Detected aborted journal)`)},
	{ClassMemory, regexp.MustCompile(`(?i)\bEDAC\b.*\b(?:CE|UE|error)|\bmce: |machine check|\[Hardware Error\]|Memory failure|\bmemory error`)},
}

// KernelErrorFilter tags kernel messages with their error classes and
// counts them per class. It is not safe for concurrent use.
type KernelErrorFilter struct {
	Counts map[KernelErrorClass]uint64
}

// NewKernelErrorFilter returns a filter with zero counts.
func NewKernelErrorFilter() *KernelErrorFilter {
	return &KernelErrorFilter{Counts: map[KernelErrorClass]uint64{}}
}

// Classes returns the classes msg belongs to (nil for none) and counts
// each.
func (f *KernelErrorFilter) Classes(msg string) []KernelErrorClass {
	var out []KernelErrorClass
	for _, p := range kernelErrorPatterns {
		if p.re.MatchString(msg) {
			out = append(out, p.class)
			f.Counts[p.class]++
		}
	}
	return out
}

// Samples returns kernel_errors_total per class.
func (f *KernelErrorFilter) Samples() []Sample {
	var out []Sample
	for _, p := range kernelErrorPatterns {
		out = append(out, Sample{Name: "kernel_errors_total", Value: float64(f.Counts[p.class]), Kind: Counter, Labels: lbl("class", string(p.class))})
	}
	return out
}

// KernelClassifier returns a function, safe for concurrent use, that
// names the kernel error classes of a message as the node collector's
// filter does, for the alert role's kernel_error_rate rules: both agree
// on what a class is.
func KernelClassifier() func(msg string) []string {
	var mu sync.Mutex
	f := NewKernelErrorFilter()
	return func(msg string) []string {
		mu.Lock()
		cs := f.Classes(msg)
		mu.Unlock()
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = string(c)
		}
		return out
	}
}
