package logtail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"

	"github.com/tpflow/tpflow/internal/atomicfile"
)

// Errors that LoadCheckpoints wraps. Either way the returned store is empty
// and usable, so tailers start from their configured position.
var (
	// ErrNoState means the state file does not exist (a first start); it
	// also matches fs.ErrNotExist.
	ErrNoState = errors.New("no checkpoint state")
	// ErrCorruptState means the state file could not be decoded.
	ErrCorruptState = errors.New("corrupt checkpoint state")
)

const stateVersion = 1

// Checkpoint is the acknowledged offset of one file: every byte before
// Offset has been made durable by the caller.
type Checkpoint struct {
	Identity
	Offset int64 `json:"offset"`
}

type stateFile struct {
	Version int          `json:"version"`
	Files   []Checkpoint `json:"files"`
	Paths   []string     `json:"paths,omitempty"`
}

type devIno2 struct{ dev, ino uint64 }

// Checkpoints maps file identities to acknowledged offsets and saves them
// atomically to one state file. Checkpoints is safe for concurrent use.
type Checkpoints struct {
	path string

	mu    sync.Mutex
	files map[devIno2]Checkpoint
	paths map[string]bool // paths a Tailer has opened a file at
	dirty bool
}

// NewCheckpoints returns an empty store that saves to path.
func NewCheckpoints(path string) *Checkpoints {
	return &Checkpoints{path: path, files: make(map[devIno2]Checkpoint), paths: make(map[string]bool)}
}

// LoadCheckpoints reads the state file at path. It always returns a usable
// store; the error, wrapping ErrNoState or ErrCorruptState, is for the caller
// to log: a missing or corrupt state file means starting over, not failing.
func LoadCheckpoints(path string) (*Checkpoints, error) {
	c := NewCheckpoints(path)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, fmt.Errorf("cannot load checkpoints from %s: %w: %w", path, ErrNoState, err)
	}
	if err != nil {
		return c, fmt.Errorf("cannot load checkpoints from %s: %w", path, err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return c, fmt.Errorf("cannot load checkpoints from %s: %w: %w", path, ErrCorruptState, err)
	}
	if st.Version != stateVersion {
		return c, fmt.Errorf("cannot load checkpoints from %s: %w: version %d, want %d", path, ErrCorruptState, st.Version, stateVersion)
	}
	for _, cp := range st.Files {
		if cp.Offset < 0 || cp.FPLen < 0 || cp.FPLen > FingerprintBytes {
			return NewCheckpoints(path), fmt.Errorf("cannot load checkpoints from %s: %w: bad entry %s@%d", path, ErrCorruptState, cp.Identity, cp.Offset)
		}
		c.files[devIno2{cp.Dev, cp.Ino}] = cp
	}
	for _, p := range st.Paths {
		c.paths[p] = true
	}
	return c, nil
}

// Ack records that the lines of file id before offset are durable. Acks of
// one file must come in offset order (a later ack replaces an earlier one,
// including a smaller offset after a copytruncate restart).
//
// An inode holds one file at a time, so the entry is keyed by device and
// inode: an ack with a longer fingerprint (the file grew) or a different
// fingerprint of the same length (the inode was reused) replaces the stored
// identity; an ack with a shorter fingerprint (an older line of a file that
// has grown since, so at an offset no smaller than the stored one) keeps
// the longer identity. A smaller offset is a restart at 0 after a
// copytruncate: its identity, however short, replaces the stored one.
func (c *Checkpoints) Ack(id Identity, offset int64) {
	k := devIno2{id.Dev, id.Ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.files[k]; ok && old.FPLen > id.FPLen && offset >= old.Offset {
		id = old.Identity
	}
	c.files[k] = Checkpoint{Identity: id, Offset: offset}
	c.dirty = true
}

// Forget drops the checkpoint of the file on id's inode, for a file that was
// read to its end and deleted.
func (c *Checkpoints) Forget(id Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[devIno2{id.Dev, id.Ino}]; ok {
		delete(c.files, devIno2{id.Dev, id.Ino})
		c.dirty = true
	}
}

// markPath records that a file was tailed at path, so that after a restart
// a file found there without a checkpoint is known to be new (rotated while
// the collector was down) and is read from 0 rather than from the end.
func (c *Checkpoints) markPath(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paths[path] {
		c.paths[path] = true
		c.dirty = true
	}
}

// Touch makes the next Save write the state file even if nothing was
// acknowledged, so that its existence tells the next start that this is
// not the first one (see collectors/collect).
func (c *Checkpoints) Touch() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}

func (c *Checkpoints) knownPath(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

// Lookup returns the checkpoint stored for the inode of id, whatever its
// fingerprint; the Tailer checks the fingerprint against the file.
func (c *Checkpoints) Lookup(id Identity) (Checkpoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.files[devIno2{id.Dev, id.Ino}]
	return cp, ok
}

// All returns a copy of every checkpoint, ordered by device and inode.
func (c *Checkpoints) All() []Checkpoint {
	c.mu.Lock()
	out := make([]Checkpoint, 0, len(c.files))
	for _, cp := range c.files {
		out = append(out, cp)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dev != out[j].Dev {
			return out[i].Dev < out[j].Dev
		}
		return out[i].Ino < out[j].Ino
	})
	return out
}

// Save writes the state file atomically: a temporary file in the same
// directory is written and fsynced, renamed over the state file, and the
// directory is fsynced, so a crash leaves either the old or the new state.
// Save does nothing when nothing was acknowledged since the last save.
func (c *Checkpoints) Save() error {
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = false
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	st := stateFile{Version: stateVersion, Files: c.All()}
	c.mu.Lock()
	for p := range c.paths {
		st.Paths = append(st.Paths, p)
	}
	c.mu.Unlock()
	sort.Strings(st.Paths)
	b, err := json.Marshal(st)
	if err != nil {
		panic("BUG: cannot encode checkpoints: " + err.Error())
	}
	if err := atomicfile.Write(c.path, b, 0o600); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("cannot save checkpoints to %s: %w", c.path, err)
	}
	return nil
}
