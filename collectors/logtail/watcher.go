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

	mu   sync.Mutex
	dirs map[string]int                  // watched directory → subscribed paths in it
	subs map[string]map[*wakeup]struct{} // clean path → its subscribers

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
	return &Watcher{w: w, log: log, dirs: map[string]int{}, subs: map[string]map[*wakeup]struct{}{}}, nil
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
			w.dispatch(filepath.Clean(ev.Name))
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
			w.dispatch(filepath.Clean(ev.Name))
		default:
			return
		}
	}
}

func (w *Watcher) dispatch(path string) {
	w.mu.Lock()
	for wk := range w.subs[path] {
		wk.notify()
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
func (w *Watcher) subscribe(path string) (<-chan struct{}, func(), error) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	wk := &wakeup{c: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs[dir] == 0 {
		if err := w.w.Add(dir); err != nil {
			return wk.c, func() {}, fmt.Errorf("cannot watch %s: %w", dir, err)
		}
	}
	w.dirs[dir]++
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
			if w.dirs[dir]--; w.dirs[dir] <= 0 {
				delete(w.dirs, dir)
				_ = w.w.Remove(dir) // fails when the directory is gone, which is fine
			}
		})
	}
	return wk.c, cancel, nil
}
