package logtail

import (
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Rotated copies: the bytes a rotation took away before they were read.
//
// copytruncate copies the file (to app.log.1, app.log-DATE, ...) and
// truncates it; the bytes the Tailer had not read when the truncate came
// live on only in the copy. And a rotation while the collector was down
// moves the unread end of a file to a rotated name the globs do not
// follow. In both cases the rotated file sits next to the followed one
// with a name that starts with its name, so the Tailer looks there:
//
//   - after a truncation (or a rewrite) noticed while running, for a file
//     whose first bytes hash like the old file's fingerprint and that is
//     at least as long as what was read: it reads it from the start of
//     the line it was in;
//   - when it opens its path for the first time, for a file whose inode
//     has a checkpoint below its size (renamed while down), and for a
//     file whose first bytes hash like the checkpoint of the path's inode
//     that no longer matches (copied and truncated while down): it reads
//     it from the checkpoint.
//
// The lines carry the copy's Identity, so acknowledging them advances the
// copy's checkpoint and a second look finds nothing left.

// siblings returns the regular files next to the path whose names start
// with its name, except the path itself.
func (t *Tailer) siblings() []string {
	dir, base := filepath.Split(t.path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if n == base || !strings.HasPrefix(n, base) || !e.Type().IsRegular() {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	return out
}

// catchUpCopy reads, after old was truncated or rewritten at the path,
// the rest of old from the copy a copytruncate made of it, starting at
// from (the start of the line being read when the truncation was seen).
func (t *Tailer) catchUpCopy(old Identity, from int64) error {
	for _, p := range t.siblings() {
		done, err := t.drainFile(p, func(f *os.File, id Identity, size int64) (int64, bool) {
			if size <= from || id.sameInode(old) {
				return 0, false
			}
			fp, n, err := fingerprint(f, old.FPLen, &t.scratch)
			return from, err == nil && n == old.FPLen && fp == old.FP
		})
		if err != nil || done {
			if done {
				t.lineLen, t.pending = 0, t.pending[:0] // read whole from the copy
			}
			return err
		}
	}
	return nil
}

// catchUpRotated reads, when the path is first opened, the unread ends of
// files rotated while nobody read them. id is the file now at the path.
func (t *Tailer) catchUpRotated(id Identity) error {
	pathCP, hasPathCP := t.cp.Lookup(id)
	if hasPathCP {
		fp, n, err := fingerprintPath(t.path, pathCP.FPLen, &t.scratch)
		if err != nil || (n == pathCP.FPLen && fp == pathCP.FP) {
			hasPathCP = false // the path's file is the checkpointed one: nothing was copied away
		}
	}
	for _, p := range t.siblings() {
		_, err := t.drainFile(p, func(f *os.File, sid Identity, size int64) (int64, bool) {
			if cp, ok := t.cp.Lookup(sid); ok {
				fp, n, err := fingerprint(f, cp.FPLen, &t.scratch)
				if err == nil && n == cp.FPLen && fp == cp.FP && cp.Offset < size {
					return cp.Offset, true // renamed away before it was read to its end
				}
				return 0, false
			}
			if hasPathCP && size > pathCP.Offset {
				fp, n, err := fingerprint(f, pathCP.FPLen, &t.scratch)
				if err == nil && n == pathCP.FPLen && fp == pathCP.FP {
					return pathCP.Offset, true // copied and truncated away
				}
			}
			return 0, false
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func fingerprintPath(p string, n int, scratch *[FingerprintBytes]byte) (uint64, int, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return fingerprint(f, n, scratch)
}

// drainFile opens p and, if want accepts it, hands over its lines from the
// offset want returns to its end, as lines of that file, then goes back to
// the followed file. It reports whether it read p.
func (t *Tailer) drainFile(p string, want func(f *os.File, id Identity, size int64) (int64, bool)) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, nil // gone meanwhile
	}
	defer f.Close()
	id, fi, err := identify(f, &t.scratch)
	if err != nil {
		return false, nil
	}
	off, ok := want(f, id, fi.Size())
	if !ok {
		return false, nil
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, nil
	}
	t.c.catchUps.Add(1)
	t.log.Debug("reading the rest of a rotated file", "rotated", p, "file", id, "offset", off)
	sf, sid, sread, sstart, slen, spend, ssince := t.f, t.fileID, t.readOff, t.lineStart, t.lineLen, t.pending, t.pendingSince
	t.f, t.fileID, t.readOff, t.lineStart, t.lineLen, t.pending = f, id, off, off, 0, nil
	_, rerr := t.readAll()
	if rerr == nil && t.lineLen > 0 {
		rerr = t.flushPartial()
	}
	t.f, t.fileID, t.readOff, t.lineStart, t.lineLen, t.pending, t.pendingSince = sf, sid, sread, sstart, slen, spend, ssince
	return true, rerr
}
