package logtail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Confinement: every file a Tailer opens or stats, the followed path and
// its rotated siblings, is reached through an os.Root of its root
// directory, so a symbolic link planted after discovery (at the path, or
// for a directory on the way to it) that leads out of the root is not
// followed. Discover checks the links it finds; the root keeps the check
// true between two discoveries. A refused path is treated like an absent
// one: nothing is read from it, the refusal is counted (Stats.Refused) and
// logged once, and a regular file at the path again is followed.

// refusedMsg is the log message of a refused path.
const refusedMsg = "refusing a link out of the root: the file is not read"

// ConfineTo makes Run open files only inside dir, which must hold the
// path; without it the root is the path's directory. It must be called
// before Run.
func (t *Tailer) ConfineTo(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("cannot resolve root %s: %w", dir, err)
	}
	switch {
	case within(t.path, []string{filepath.Clean(dir)}):
		t.rootDir = filepath.Clean(dir)
	case within(t.path, []string{real}):
		t.rootDir = real
	default:
		return fmt.Errorf("cannot tail %s in root %s: %w", t.path, dir, ErrOutsideRoot)
	}
	t.realRoot = real
	return nil
}

// openRoot opens the root directory if it is not open: when first needed,
// and again after the path was found absent (open closes it then, so a
// root directory deleted and created again is followed). A missing root
// is reported as fs.ErrNotExist: nothing is there yet. A root that no
// longer resolves to where it first did (a link put in its place) is
// refused.
func (t *Tailer) openRoot() (*os.Root, error) {
	if t.root != nil {
		return t.root, nil
	}
	if t.rootDir == "" {
		t.rootDir = filepath.Dir(t.path)
	}
	r, err := os.OpenRoot(t.rootDir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(t.rootDir)
	if err != nil {
		r.Close()
		return nil, err
	}
	if t.realRoot == "" {
		t.realRoot = real
	} else if real != t.realRoot {
		r.Close()
		return nil, fmt.Errorf("cannot open root %s (-> %s, was %s): %w", t.rootDir, real, t.realRoot, ErrOutsideRoot)
	}
	t.root = r
	return r, nil
}

func (t *Tailer) closeRoot() {
	if t.root != nil {
		t.root.Close()
		t.root = nil
	}
}

// rel returns p relative to the root.
func (t *Tailer) rel(p string) (*os.Root, string, error) {
	r, err := t.openRoot()
	if err != nil {
		return nil, "", err
	}
	rel, err := filepath.Rel(t.rootDir, p)
	if err != nil || !within(p, []string{t.rootDir}) {
		return nil, "", fmt.Errorf("cannot open %s: %w", p, ErrOutsideRoot)
	}
	return r, rel, nil
}

// openInRoot opens p for reading through the root. An error that wraps
// ErrOutsideRoot says p leads out of the root.
func (t *Tailer) openInRoot(p string) (*os.File, error) {
	r, rel, err := t.rel(p)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(rel)
	return f, t.refusal(p, err)
}

// statInRoot stats p through the root, following links inside it.
func (t *Tailer) statInRoot(p string) (os.FileInfo, error) {
	r, rel, err := t.rel(p)
	if err != nil {
		return nil, err
	}
	fi, err := r.Stat(rel)
	return fi, t.refusal(p, err)
}

// refusal classifies an error of the root: one for a path that does not
// resolve to a file inside the root wraps ErrOutsideRoot. The root says
// only that the path escapes it; the path's resolution tells that from
// other failures.
func (t *Tailer) refusal(p string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	if real, rerr := filepath.EvalSymlinks(p); rerr == nil && within(real, []string{t.realRoot}) {
		return err
	}
	return fmt.Errorf("cannot open %s: %w: %v", p, ErrOutsideRoot, err)
}

// refused counts and logs a refused path once until a file is opened at
// the path again.
func (t *Tailer) refused(err error) {
	if t.refusing {
		return
	}
	t.refusing = true
	t.c.refused.Add(1)
	t.log.Warn(refusedMsg, "root", t.rootDir, "err", err)
}
