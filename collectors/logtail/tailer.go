package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Line is one line of a followed file.
type Line struct {
	// Path is the followed path (the file may have been renamed since).
	Path string
	// ID is the identity of the file the line was read from.
	ID Identity
	// Offset is the byte offset of the line's first byte.
	Offset int64
	// End is the offset just after the line and its newline: acknowledging
	// End with Checkpoints.Ack resumes after this line.
	End int64
	// Data is the line without its newline, at most Config.MaxLineBytes.
	// It is valid only until the Handler returns.
	Data []byte
	// Partial is set when the line had no newline: it waited at the end of
	// the file longer than Config.PartialTimeout, or the file was rotated,
	// truncated or deleted before the newline came. The bytes that follow
	// start a new line.
	Partial bool
	// Truncated is set when the line was longer than Config.MaxLineBytes;
	// the bytes past the limit were dropped and counted.
	Truncated bool
}

// Handler receives each line in file order. An error stops the Tailer and
// is returned by Run.
type Handler func(Line) error

// Stats counts what a Tailer did since it was created.
type Stats struct {
	Lines        int64 // lines handed over, including partial and truncated ones
	Bytes        int64 // bytes consumed from files, newlines included
	Partial      int64 // lines flushed without a newline
	Truncated    int64 // lines cut at Config.MaxLineBytes
	DroppedBytes int64 // bytes cut off truncated lines
	Opens        int64 // files opened at the path
	Rotations    int64 // renames or deletions of the open file noticed
	Truncations  int64 // restarts at offset 0 because the file shrank (copytruncate)
	Rewrites     int64 // restarts at offset 0 because the fingerprint changed (inode reuse, rewrite in place)
	WatchErrors  int64 // errors from the file system watcher; polling covers them
	Checks       int64 // wake-ups that looked at the path: events, polls, deadlines
	CatchUps     int64 // rotated files read for bytes a rotation took away unread (see rotated.go)
	Refused      int64 // times the path led out of the root and was not read (see confine.go)
}

type counters struct {
	lines, bytes, partial, truncated, dropped, opens, rotations, truncations, rewrites, watchErrors, checks, catchUps, refused atomic.Int64
}

// Tailer follows the file at one path across rotation. Run is called once;
// Stats may be called concurrently with it.
type Tailer struct {
	path string
	cfg  Config
	cp   *Checkpoints
	h    Handler
	log  *slog.Logger
	now  func() time.Time
	c    counters
	wat  *Watcher

	onOpen       func(Opening)
	rotatedSince time.Time
	rootDir      string // see confine.go

	// The fields below belong to the Run goroutine.
	root     *os.Root
	realRoot string   // rootDir without symbolic links
	refusing bool     // the path was refused and nothing opened since
	fileRead          // the file at the path
	drains   []*drain // files renamed away or deleted, still read
	started  bool
	pathSeen time.Time        // when the path last showed the open file
	seen     map[devIno2]bool // files read, see rotated.go
	rbuf     []byte
	scratch  [FingerprintBytes]byte
}

// fileRead is where the Tailer is in one open file.
type fileRead struct {
	f            *os.File
	fileID       Identity
	readOff      int64 // next byte to read from f
	lineStart    int64 // offset of the current (incomplete) line
	lineLen      int   // bytes of the current line seen, including dropped ones
	pending      []byte
	pendingSince time.Time
}

// drain is a file that left the path (renamed or deleted) and is read on
// through its descriptor, whatever it is called now, until it has been
// quiet for RotateWait.
type drain struct {
	fileRead
	quietUntil time.Time
}

// How a Tailer began reading the first file it found at its path, in
// Opening.How.
const (
	OpenResumed = "resumed" // from its checkpoint
	OpenFresh   = "fresh"   // from 0: no checkpoint, or one of another file
	OpenEnd     = "end"     // from its end, as Config.Start end says
	OpenAbsent  = "absent"  // no file at the path yet; it will be read from 0
	OpenFailed  = "failed"  // the file could not be opened or read; Run returns the error
	OpenRefused = "refused" // the path leads out of the root; it is looked at again
)

// Opening says where a Tailer began reading its path.
type Opening struct {
	Path string
	ID   Identity
	// How is OpenResumed, OpenFresh, OpenEnd, OpenAbsent, OpenRefused or
	// OpenFailed.
	How string
	// Offset is where reading began; Size the file's size then.
	Offset, Size int64
	// Rotated is how many rotated siblings were read first for lines
	// written while nobody read them.
	Rotated int
}

// NewTailer returns a Tailer of path that hands lines to h. cp may be nil
// (no resume); a nil log discards. The Tailer only reads checkpoints: the
// caller advances them with Checkpoints.Ack once lines are durable.
func NewTailer(path string, cfg Config, cp *Checkpoints, h Handler, log *slog.Logger) (*Tailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot tail %s: %w", path, err)
	}
	if h == nil {
		panic("BUG: logtail.NewTailer without a Handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tailer{
		path: filepath.Clean(path),
		cfg:  cfg,
		cp:   cp,
		h:    h,
		log:  log.With("path", path),
		now:  time.Now,
		rbuf: make([]byte, cfg.ReadBufferBytes),
	}, nil
}

// OnFirstOpen makes Run call f once, from its goroutine, after its first
// look at the path, to say where it began reading. It must be called
// before Run.
func (t *Tailer) OnFirstOpen(f func(Opening)) { t.onOpen = f }

// ReadRotatedSince makes the first open of the path also read, from 0
// and oldest first, the rotated siblings (see rotated.go) that have no
// checkpoint and were written at or after since: files that were at the
// path while nobody read it (the collector was down, or discovery had not
// found the path yet) and were rotated away before they were read. The
// zero time (the default) reads none. It must be called before Run.
func (t *Tailer) ReadRotatedSince(since time.Time) { t.rotatedSince = since }

// UseWatcher makes Run take its file events from w, shared with other
// Tailers, instead of creating its own watcher. It must be called before
// Run.
func (t *Tailer) UseWatcher(w *Watcher) { t.wat = w }

// Stats returns the counters.
func (t *Tailer) Stats() Stats {
	return Stats{
		Lines: t.c.lines.Load(), Bytes: t.c.bytes.Load(), Partial: t.c.partial.Load(),
		Truncated: t.c.truncated.Load(), DroppedBytes: t.c.dropped.Load(), Opens: t.c.opens.Load(),
		Rotations: t.c.rotations.Load(), Truncations: t.c.truncations.Load(),
		Rewrites: t.c.rewrites.Load(), WatchErrors: t.c.watchErrors.Load(), Checks: t.c.checks.Load(),
		CatchUps: t.c.catchUps.Load(), Refused: t.c.refused.Load(),
	}
}

// Run follows the file until ctx is done or the Handler fails. It returns
// nil when ctx is done. An incomplete line is not flushed then: the next
// Tailer resumes from the last acknowledged offset and reads it whole.
func (t *Tailer) Run(ctx context.Context) error {
	defer t.closeAll()
	defer t.closeRoot()
	var events <-chan fsnotify.Event
	var werrs <-chan error
	var shared chan struct{}
	// While files are drained, every event of the directory wakes the
	// Tailer: a drained file's events carry its new name.
	var cancelDir func()
	defer func() {
		if cancelDir != nil {
			cancelDir()
		}
	}()
	if t.wat != nil {
		c, cancel, err := t.wat.subscribe(t.path)
		defer cancel()
		if err != nil {
			t.c.watchErrors.Add(1)
			t.log.Warn("cannot watch directory, polling only", "err", err)
		}
		shared = c
	} else if w, err := fsnotify.NewWatcher(); err != nil {
		t.c.watchErrors.Add(1)
		t.log.Warn("cannot watch file events, polling only", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(t.path)); err != nil {
			t.c.watchErrors.Add(1)
			t.log.Warn("cannot watch directory, polling only", "err", err)
		}
		events, werrs = w.Events, w.Errors
	}
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	poll := true
	var lastStep time.Time
	for {
		lastStep = t.now()
		if err := t.step(poll); err != nil {
			return err
		}
		poll = false
		if shared != nil {
			if len(t.drains) > 0 && cancelDir == nil {
				cancelDir, _ = t.wat.subscribeDir(filepath.Dir(t.path), &wakeup{c: shared}, true)
			} else if len(t.drains) == 0 && cancelDir != nil {
				cancelDir()
				cancelDir = nil
			}
		}
		var deadline time.Time
		if t.lineLen > 0 {
			deadline = t.pendingSince.Add(t.cfg.PartialTimeout)
		}
		for _, d := range t.drains {
			if deadline.IsZero() || d.quietUntil.Before(deadline) {
				deadline = d.quietUntil
			}
		}
		var wake <-chan time.Time
		if !deadline.IsZero() {
			timer.Reset(max(time.Until(deadline), time.Millisecond))
			wake = timer.C
		}
		// Events for other files in the directory do not cost a step.
		byEvent := false
		for woke := false; !woke; {
			select {
			case <-ctx.Done():
				return nil
			case ev, ok := <-events:
				if !ok {
					events = nil // polling goes on
					continue
				}
				woke = len(t.drains) > 0 || filepath.Clean(ev.Name) == t.path
				byEvent = woke
			case err, ok := <-werrs:
				if !ok {
					werrs = nil
					continue
				}
				t.c.watchErrors.Add(1)
				t.log.Warn("file watcher error, polling covers it", "err", err)
			case <-shared:
				woke, byEvent = true, true
			case <-tick.C:
				poll, woke = true, true
			case <-wake:
				woke = true
			}
		}
		if wake != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if byEvent && t.cfg.MinReadInterval > 0 {
			// Let a writer's next small writes join this read.
			if d := t.cfg.MinReadInterval - t.now().Sub(lastStep); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		}
	}
}

// step reads what is new in the files being drained and in the file at
// the path, and checks for truncation and rotation. poll adds the
// fingerprint check that catches a rewrite the size does not show.
//
// A rotation does not wait: the file that left the path moves to the
// drains and the file now at the path is opened in the same step, so both
// are read from then on (see DESIGN.md).
func (t *Tailer) step(poll bool) error {
	defer t.c.checks.Add(1)
	if err := t.stepDrains(); err != nil {
		return err
	}
	for range 4 { // bounded: each round either returns or switches files
		if t.f == nil {
			opened, err := t.open()
			if err != nil || !opened {
				return err
			}
		}
		fi, err := t.f.Stat()
		if err != nil {
			return fmt.Errorf("cannot stat open file %s: %w", t.path, err)
		}
		restart, err := t.changed(fi, poll)
		if err != nil {
			return err
		}
		if restart {
			continue
		}
		if _, err := t.readAll(); err != nil {
			return err
		}
		now := t.now()
		if t.lineLen > 0 && now.Sub(t.pendingSince) >= t.cfg.PartialTimeout {
			if err := t.flushPartial(); err != nil {
				return err
			}
		}
		seenAt := t.now()
		cur, err := t.statInRoot(t.path)
		if err == nil && os.SameFile(cur, fi) {
			t.pathSeen = seenAt
			return nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrOutsideRoot) {
			return fmt.Errorf("cannot stat %s: %w", t.path, err)
		}
		// Renamed away or deleted: writers may still append through their
		// open descriptors, so it is read on beside the new file.
		t.c.rotations.Add(1)
		t.log.Debug("file rotated, draining it beside the new one", "file", t.fileID)
		t.drains = append(t.drains, &drain{fileRead: t.fileRead, quietUntil: now.Add(t.cfg.RotateWait)})
		t.fileRead = fileRead{}
		if _, err := t.readMissed(); err != nil {
			return err
		}
	}
	return nil
}

// stepDrains reads what is new in each rotated file and closes those that
// have been quiet for RotateWait, flushing their incomplete last line.
func (t *Tailer) stepDrains() error {
	if len(t.drains) == 0 {
		return nil
	}
	cur := t.fileRead
	defer func() { t.fileRead = cur }()
	kept := t.drains[:0]
	var ferr error
	for _, d := range t.drains {
		if ferr != nil {
			kept = append(kept, d)
			continue
		}
		t.fileRead = d.fileRead
		done, err := t.drainStep(&d.quietUntil)
		d.fileRead = t.fileRead
		if err != nil {
			ferr = err
		}
		if done && err == nil {
			d.f.Close()
			continue
		}
		kept = append(kept, d)
	}
	clear(t.drains[len(kept):])
	t.drains = kept
	return ferr
}

// drainStep reads on in a rotated file (swapped into t.fileRead) and
// reports whether it is done with it.
func (t *Tailer) drainStep(quietUntil *time.Time) (bool, error) {
	fi, err := t.f.Stat()
	if err != nil || fi.Size() < t.readOff {
		// Truncated under its new name: what it held is gone.
		return true, t.flushIfPending()
	}
	grew, err := t.readAll()
	if err != nil {
		return false, err
	}
	now := t.now()
	if grew {
		*quietUntil = now.Add(t.cfg.RotateWait)
	}
	if t.lineLen > 0 && now.Sub(t.pendingSince) >= t.cfg.PartialTimeout {
		if err := t.flushPartial(); err != nil {
			return false, err
		}
	}
	if now.Before(*quietUntil) {
		return false, nil
	}
	return true, t.flushIfPending()
}

func (t *Tailer) flushIfPending() error {
	if t.lineLen > 0 {
		return t.flushPartial()
	}
	return nil
}

// changed restarts at offset 0 when the open file shrank below what was
// read (copytruncate) or its first bytes changed (a rewrite in place), and
// extends the fingerprint of a short file that grew. The fingerprint is
// checked before every read of new bytes and on every poll, so bytes of a
// rewritten file are not read from the old offset. It reports whether it
// restarted.
func (t *Tailer) changed(fi os.FileInfo, poll bool) (bool, error) {
	size := fi.Size()
	if size < t.readOff {
		t.c.truncations.Add(1)
		t.log.Debug("file truncated, reading from 0", "size", size, "offset", t.readOff)
		if err := t.catchUpCopy(t.fileID, t.lineStart); err != nil {
			return false, err
		}
		return true, t.restart()
	}
	grow := t.fileID.FPLen < FingerprintBytes && size > int64(t.fileID.FPLen)
	if !poll && !grow && size == t.readOff {
		return false, nil
	}
	fp, n, err := fingerprint(t.f, t.fileID.FPLen, &t.scratch)
	if err != nil {
		return false, err
	}
	if n != t.fileID.FPLen || fp != t.fileID.FP {
		t.c.rewrites.Add(1)
		t.log.Debug("file fingerprint changed, reading from 0", "file", t.fileID)
		if err := t.catchUpCopy(t.fileID, t.lineStart); err != nil {
			return false, err
		}
		return true, t.restart()
	}
	if grow {
		fp, n, err := fingerprint(t.f, int(min(size, FingerprintBytes)), &t.scratch)
		if err != nil {
			return false, err
		}
		t.fileID.FP, t.fileID.FPLen = fp, n
	}
	return false, nil
}

// restart flushes what is pending and reads the open file again from 0 as
// a new file.
func (t *Tailer) restart() error {
	if t.lineLen > 0 {
		if err := t.flushPartial(); err != nil {
			return err
		}
	}
	id, _, err := identify(t.f, &t.scratch)
	if err != nil {
		return err
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cannot seek %s: %w", t.path, err)
	}
	t.fileID = id
	t.readOff, t.lineStart = 0, 0
	return nil
}

// open opens the file at the path if there is one and picks the offset:
// the checkpoint when its fingerprint matches, else the configured start
// for a file present at start-up at a path the checkpoints have never seen,
// else 0 (a file that appeared or was rotated in while nobody read it). A
// file that is being drained (renamed away and back) is read on where it
// is.
func (t *Tailer) open() (_ bool, err error) {
	first := !t.started
	t.started = true
	if first && t.onOpen != nil {
		defer func() {
			if err != nil {
				t.onOpen(Opening{Path: t.path, How: OpenFailed})
			}
		}()
	}
	openedAt := t.now()
	f, err := t.openInRoot(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.closeRoot() // opened again at the next look
		if first && t.onOpen != nil {
			t.onOpen(Opening{Path: t.path, How: OpenAbsent})
		}
		return false, nil
	}
	if errors.Is(err, ErrOutsideRoot) {
		t.refused(err)
		if first && t.onOpen != nil {
			t.onOpen(Opening{Path: t.path, How: OpenRefused})
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot open %s: %w", t.path, err)
	}
	t.refusing = false
	id, fi, err := identify(f, &t.scratch)
	if err != nil {
		f.Close()
		return false, err
	}
	for i, d := range t.drains {
		if d.fileID.sameInode(id) {
			f.Close()
			t.fileRead = d.fileRead
			t.drains = append(t.drains[:i], t.drains[i+1:]...)
			t.pathSeen = openedAt
			t.c.opens.Add(1)
			return true, nil
		}
	}
	off, how, err := t.resumeOffset(f, id, fi.Size(), first)
	if err != nil {
		f.Close()
		return false, err
	}
	rotated := 0
	if first && t.cp != nil {
		if rotated, err = t.catchUpRotated(id); err != nil {
			f.Close()
			return false, err
		}
		if !t.rotatedSince.IsZero() {
			n, err := t.readNewRotated(id)
			if err != nil {
				f.Close()
				return false, err
			}
			rotated += n
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return false, fmt.Errorf("cannot seek %s: %w", t.path, err)
	}
	t.c.opens.Add(1)
	if t.cp != nil {
		t.cp.markPath(t.path)
	}
	t.f, t.fileID = f, id
	t.readOff, t.lineStart = off, off
	t.pathSeen = openedAt
	t.see(id)
	t.log.Debug("file opened", "file", id, "offset", off, "how", how)
	if first && t.onOpen != nil {
		t.onOpen(Opening{Path: t.path, ID: id, How: how, Offset: off, Size: fi.Size(), Rotated: rotated})
	}
	return true, nil
}

func (t *Tailer) resumeOffset(f *os.File, id Identity, size int64, first bool) (int64, string, error) {
	if t.cp != nil {
		if cp, ok := t.cp.Lookup(id); ok {
			fp, n, err := fingerprint(f, cp.FPLen, &t.scratch)
			if err != nil {
				return 0, "", err
			}
			switch {
			case n != cp.FPLen || fp != cp.FP:
				t.c.rewrites.Add(1) // inode reused by another file
				return 0, OpenFresh, nil
			case cp.Offset > size:
				t.c.truncations.Add(1)
				return 0, OpenFresh, nil
			default:
				return cp.Offset, OpenResumed, nil
			}
		}
	}
	if first && t.cfg.Start == StartEnd && (t.cp == nil || !t.cp.knownPath(t.path)) {
		return size, OpenEnd, nil
	}
	return 0, OpenFresh, nil
}

// closeAll closes the file at the path and every drained one.
func (t *Tailer) closeAll() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	for _, d := range t.drains {
		d.f.Close()
	}
	t.drains = nil
	t.lineLen, t.pending = 0, t.pending[:0]
}

// readAll reads to the end of the file and hands over complete lines.
func (t *Tailer) readAll() (bool, error) {
	grew := false
	for {
		n, err := t.f.Read(t.rbuf)
		if n > 0 {
			grew = true
			t.readOff += int64(n)
			t.c.bytes.Add(int64(n))
			if herr := t.consume(t.rbuf[:n]); herr != nil {
				return grew, herr
			}
		}
		if err == io.EOF || n == 0 {
			return grew, nil
		}
		if err != nil {
			return grew, fmt.Errorf("cannot read %s at %d: %w", t.path, t.readOff, err)
		}
	}
}

func (t *Tailer) consume(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.appendPending(b)
			return nil
		}
		seg := b[:i]
		b = b[i+1:]
		if t.lineLen == 0 && len(seg) <= t.cfg.MaxLineBytes {
			if err := t.deliver(seg, int64(len(seg))+1, false, false); err != nil {
				return err
			}
			continue
		}
		t.appendPending(seg)
		if err := t.deliver(t.pending, int64(t.lineLen)+1, false, t.lineLen > t.cfg.MaxLineBytes); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tailer) appendPending(seg []byte) {
	if t.lineLen == 0 {
		t.pendingSince = t.now()
	}
	room := t.cfg.MaxLineBytes - len(t.pending)
	t.pending = append(t.pending, seg[:min(room, len(seg))]...)
	t.lineLen += len(seg)
}

func (t *Tailer) flushPartial() error {
	return t.deliver(t.pending, int64(t.lineLen), true, t.lineLen > t.cfg.MaxLineBytes)
}

// deliver hands over one line of n bytes (newline included) starting at
// lineStart and resets the pending line.
func (t *Tailer) deliver(data []byte, n int64, partial, truncated bool) error {
	l := Line{
		Path: t.path, ID: t.fileID, Offset: t.lineStart, End: t.lineStart + n,
		Data: data, Partial: partial, Truncated: truncated,
	}
	t.c.lines.Add(1)
	if partial {
		t.c.partial.Add(1)
	}
	if truncated {
		t.c.truncated.Add(1)
		t.c.dropped.Add(int64(t.lineLen - len(data)))
	}
	t.lineStart = l.End
	t.lineLen, t.pending = 0, t.pending[:0]
	if err := t.h(l); err != nil {
		return fmt.Errorf("cannot hand over line of %s at %d: %w", t.path, l.Offset, err)
	}
	return nil
}
