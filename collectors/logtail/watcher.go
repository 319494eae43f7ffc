package logtail

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher is one file system watcher shared by many Tailers: it watches
// each directory that holds a followed path once and wakes the Tailers of
// the paths an event names. A node has a limit of inotify instances per
// user (128 by default), so a collector following hundreds of files uses
// one Watcher instead of one instance per Tailer. Watcher is safe for
// concurrent use; Run dispatches events until its context is done.
type Watcher struct {
	w   *fsnotify.Watcher
	log *slog.Logger

	mu      sync.Mutex
	dirs    map[string]int                  // watched directory → subscriptions in it
	subs    map[string]map[*wakeup]struct{} // clean path → its subscribers
	dirSubs map[string]map[*wakeup]bool     // directory → its subscribers; true: every event, false: entries coming and going only

	events, errors atomic.Int64
	pause          time.Duration
}

type wakeup struct{ c chan struct{} }

// NewWatcher returns a Watcher with its own inotify instance. A nil log
// discards.
func NewWatcher(log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("cannot create file watcher: %w", err)
	}
	return &Watcher{w: w, log: log, dirs: map[string]int{}, subs: map[string]map[*wakeup]struct{}{}, dirSubs: map[string]map[*wakeup]bool{}}, nil
}

// SetPause makes Run wait d after each round of events before it takes the
// next. Meanwhile the kernel queues new events and merges repeats (a
// writer's many writes to one file become one event), which saves a
// wake-up per write. Call it before Run.
func (w *Watcher) SetPause(d time.Duration) { w.pause = d }

// Run dispatches events until ctx is done, then closes the watcher.
// Tailers still subscribed fall back to polling.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.w.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.w.Events:
			if !ok {
				return nil
			}
			w.events.Add(1)
			w.dispatch(ev)
			if w.pause > 0 {
				w.drain()
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(w.pause):
				}
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return nil
			}
			w.errors.Add(1)
			w.log.Warn("file watcher error, polling covers it", "err", err)
			// Events may have been dropped: wake everybody once.
			w.mu.Lock()
			for _, s := range w.subs {
				for wk := range s {
					wk.notify()
				}
			}
			for _, s := range w.dirSubs {
				for wk := range s {
					wk.notify()
				}
			}
			w.mu.Unlock()
		}
	}
}

// Events returns the number of file system events received.
func (w *Watcher) Events() int64 { return w.events.Load() }

// Errors returns the number of watcher errors (overflows included).
func (w *Watcher) Errors() int64 { return w.errors.Load() }

// Dirs returns the number of directories watched.
func (w *Watcher) Dirs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirs)
}

// drain dispatches the events already waiting.
func (w *Watcher) drain() {
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			w.events.Add(1)
			w.dispatch(ev)
		default:
			return
		}
	}
}

// entryOps are the events that add, rename or remove a directory entry.
const entryOps = fsnotify.Create | fsnotify.Rename | fsnotify.Remove

func (w *Watcher) dispatch(ev fsnotify.Event) {
	path := filepath.Clean(ev.Name)
	w.mu.Lock()
	for wk := range w.subs[path] {
		wk.notify()
	}
	if ds := w.dirSubs[filepath.Dir(path)]; ds != nil {
		entry := ev.Op&entryOps != 0
		for wk, all := range ds {
			if all || entry {
				wk.notify()
			}
		}
	}
	w.mu.Unlock()
}

// notify wakes the subscriber without blocking; one pending wake-up is
// enough, since the Tailer reads everything new when it wakes.
func (wk *wakeup) notify() {
	select {
	case wk.c <- struct{}{}:
	default:
	}
}

// subscribe watches path's directory (once for all its paths) and returns
// the channel that is signalled on events naming path and the function
// that ends the subscription.
func (w *Watcher) subscribe(path string) (chan struct{}, func(), error) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	wk := &wakeup{c: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.addDir(dir); err != nil {
		return wk.c, func() {}, err
	}
	if w.subs[path] == nil {
		w.subs[path] = map[*wakeup]struct{}{}
	}
	w.subs[path][wk] = struct{}{}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.subs[path], wk)
			if len(w.subs[path]) == 0 {
				delete(w.subs, path)
			}
			w.removeDir(dir)
		})
	}
	return wk.c, cancel, nil
}

// addDir watches dir unless it is watched already; the caller holds mu.
func (w *Watcher) addDir(dir string) error {
	if w.dirs[dir] == 0 {
		if err := w.w.Add(dir); err != nil {
			return fmt.Errorf("cannot watch %s: %w", dir, err)
		}
	}
	w.dirs[dir]++
	return nil
}

// removeDir drops one subscription of dir; the caller holds mu.
func (w *Watcher) removeDir(dir string) {
	if w.dirs[dir]--; w.dirs[dir] <= 0 {
		delete(w.dirs, dir)
		_ = w.w.Remove(dir) // fails when the directory is gone, which is fine
	}
}

// NotifyDir watches dir and signals c, without blocking, whenever an entry
// of dir is created, renamed or removed (a new log file, a rotation, a
// new pod directory), and after a watcher error or overflow. Writes to
// files do not signal it. cancel ends the subscription.
func (w *Watcher) NotifyDir(dir string, c chan struct{}) (cancel func(), err error) {
	return w.subscribeDir(filepath.Clean(dir), &wakeup{c: c}, false)
}

// subscribeDir signals wk on events in dir: every event with all, else
// entries coming and going only.
func (w *Watcher) subscribeDir(dir string, wk *wakeup, all bool) (func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.addDir(dir); err != nil {
		return func() {}, err
	}
	if w.dirSubs[dir] == nil {
		w.dirSubs[dir] = map[*wakeup]bool{}
	}
	w.dirSubs[dir][wk] = all
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.dirSubs[dir], wk)
			if len(w.dirSubs[dir]) == 0 {
				delete(w.dirSubs, dir)
			}
			w.removeDir(dir)
		})
	}, nil
}
