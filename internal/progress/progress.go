// Package progress prints the status of a long command to a writer: quiet
// while the command is quick, then one line at a time, never interleaved
// with the command's own lines.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes the line its status gives once after has passed since it
// started. From then on it writes the line again every every, or, with
// every 0, each time the status is set. Stop ends it; no line is written
// after Stop returns.
type Printer struct {
	w     io.Writer
	start time.Time
	every time.Duration
	timer *time.Timer

	mu     sync.Mutex
	status func(elapsed time.Duration) string
	loud   bool // after has passed
	done   bool
}

// Start starts a printer writing status's line to w. status gets the time
// since Start and returns a whole line, newline included.
func Start(w io.Writer, after, every time.Duration, status func(elapsed time.Duration) string) *Printer {
	p := &Printer{w: w, start: time.Now(), every: every, status: status}
	p.mu.Lock() // tick waits for the timer to be set
	defer p.mu.Unlock()
	p.timer = time.AfterFunc(after, p.tick)
	return p
}

func (p *Printer) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.loud = true
	p.print()
	if p.every > 0 {
		p.timer.Reset(p.every)
	}
}

func (p *Printer) print() {
	io.WriteString(p.w, p.status(time.Since(p.start)))
}

// Set replaces the status; with every 0 and after passed, it writes the
// new line at once.
func (p *Printer) Set(status func(elapsed time.Duration) string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
	if p.loud && p.every == 0 && !p.done {
		p.print()
	}
}

// Printf writes a line of the command's own to w between status lines.
func (p *Printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// Stop stops the printer. It may be called more than once.
func (p *Printer) Stop() {
	p.timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
}
