package parse

import (
	"fmt"
	"regexp"
	"time"
)

// Multiline joins continuation lines (stack traces, wrapped messages) to the
// line that starts a record: a line matching the start pattern begins a new
// record and completes the one before. A record is also completed when no
// line arrived for the time-out (see Poll), when it reaches MaxLines, or at
// Flush. Lines are joined with '\n'. A Multiline is not safe for concurrent
// use.
type Multiline struct {
	start     *regexp.Regexp
	timeout   time.Duration
	maxLines  int
	maxBytes  int
	now       func() time.Time
	buf, out  []byte
	lines     int
	last      time.Time
	truncated bool
}

// NewMultiline returns a Multiline for c, cutting records at maxBytes. now
// is the clock (time.Now in production).
func NewMultiline(c MultilineConfig, maxBytes int, now func() time.Time) (*Multiline, error) {
	re, err := regexp.Compile(c.Start)
	if err != nil {
		return nil, fmt.Errorf("cannot compile multiline start pattern: %w", err)
	}
	if c.Timeout <= 0 || c.MaxLines < 1 || maxBytes < 1 {
		return nil, fmt.Errorf("multiline: timeout, max_lines and max bytes must be positive")
	}
	return &Multiline{start: re, timeout: c.Timeout, maxLines: c.MaxLines, maxBytes: maxBytes, now: now}, nil
}

// Add takes one line (without its newline). When the line starts a new
// record, or the current record already has MaxLines lines, the completed
// record is returned with done set; it is valid until the next call. Add
// does not retain line.
func (m *Multiline) Add(line []byte) (rec []byte, truncated, done bool) {
	if m.lines > 0 && (m.lines >= m.maxLines || m.start.Match(line)) {
		rec, truncated, done = m.take()
	}
	if m.lines > 0 {
		if len(m.buf) < m.maxBytes {
			m.buf = append(m.buf, '\n')
		} else {
			m.truncated = true
		}
	}
	room := m.maxBytes - len(m.buf)
	if len(line) > room {
		line = line[:room]
		m.truncated = true
	}
	m.buf = append(m.buf, line...)
	m.lines++
	m.last = m.now()
	return rec, truncated, done
}

func (m *Multiline) take() ([]byte, bool, bool) {
	if m.lines == 0 {
		return nil, false, false
	}
	m.buf, m.out = m.out[:0], m.buf
	tr := m.truncated
	m.lines = 0
	m.truncated = false
	return m.out, tr, true
}

// Poll completes the pending record if no line arrived for the time-out.
// Call it from the reader's idle tick.
func (m *Multiline) Poll() (rec []byte, truncated, done bool) {
	if m.lines == 0 || m.now().Sub(m.last) < m.timeout {
		return nil, false, false
	}
	return m.take()
}

// Flush completes the pending record whatever its age.
func (m *Multiline) Flush() (rec []byte, truncated, done bool) { return m.take() }
