package logtail

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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
	d, err := t.openInRoot(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	ents, err := d.ReadDir(-1)
	d.Close()
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
		done, err := t.drainFile(p, false, func(f *os.File, id Identity, size int64) (int64, bool) {
			if size <= from || id.sameInode(old) || t.isDrain(id) {
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

// isDrain reports whether id is a rotated file being drained.
func (t *Tailer) isDrain(id Identity) bool {
	for _, d := range t.drains {
		if d.fileID.sameInode(id) {
			return true
		}
	}
	return false
}

// catchUpRotated reads, when the path is first opened, the unread ends of
// files rotated while nobody read them, and says how many it read. id is
// the file now at the path.
func (t *Tailer) catchUpRotated(id Identity) (int, error) {
	read := 0
	pathCP, hasPathCP := t.cp.Lookup(id)
	if hasPathCP {
		fp, n, err := t.fingerprintPath(t.path, pathCP.FPLen)
		if err != nil || (n == pathCP.FPLen && fp == pathCP.FP) {
			hasPathCP = false // the path's file is the checkpointed one: nothing was copied away
		}
	}
	for _, p := range t.siblings() {
		done, err := t.drainFile(p, true, func(f *os.File, sid Identity, size int64) (int64, bool) {
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
			return read, err
		}
		if done {
			read++
		}
	}
	return read, nil
}

// readNewRotated reads, when the path is first opened, its rotated
// siblings that have no checkpoint and were written at or after
// rotatedSince: files that were at the path while nobody read it and were
// rotated away (several rotations while the collector was down, or a new
// file rotated before discovery found it). A copy of the path's
// checkpointed file (copytruncate while down) is catchUpRotated's. id is
// the file now at the path.
func (t *Tailer) readNewRotated(id Identity) (int, error) {
	var copied *Checkpoint
	if cp, ok := t.cp.Lookup(id); ok {
		copied = &cp
	}
	return t.readRotatedSince(t.rotatedSince, id, copied)
}

// readMissed reads, when a rotation is noticed, the siblings that were
// at the path only between two looks at it (rotated twice while the
// Tailer was busy): those written since the path last showed the file
// that just left it (a rename does not change the time a file was
// written, so older rotated files do not qualify), that this Tailer has not read and that have no
// checkpoint.
func (t *Tailer) readMissed() (int, error) {
	if t.pathSeen.IsZero() {
		return 0, nil
	}
	return t.readRotatedSince(t.pathSeen.Add(-mtimeSlack), Identity{}, nil)
}

// mtimeSlack covers the kernel's coarse clock, which stamps file times up
// to a tick behind time.Now.
const mtimeSlack = 50 * time.Millisecond

// readRotatedSince reads, from 0 and oldest first, the rotated siblings
// written at or after since, have no checkpoint, are not on the inode
// of skip, do not begin like copied (a copy of a checkpointed file) and
// have not been read by this Tailer. Names must go on from the
// path's with '.', '-' or '_' (app.log.1, 0.log.20260101-120000), and
// compressed copies are left alone. Each is kept among the drains: a
// writer may still append to it.
func (t *Tailer) readRotatedSince(since time.Time, skip Identity, copied *Checkpoint) (int, error) {
	type cand struct {
		p     string
		mtime time.Time
	}
	var cands []cand
	base := filepath.Base(t.path)
	for _, p := range t.siblings() {
		rest := filepath.Base(p)[len(base):]
		if rest == "" || !strings.ContainsRune(".-_", rune(rest[0])) || compressedName(rest) {
			continue
		}
		fi, err := t.statInRoot(p)
		if err != nil || fi.Size() == 0 || fi.ModTime().Before(since) {
			continue
		}
		if dev, ino, ok := devIno(fi); !ok || t.seen[devIno2{dev, ino}] {
			continue
		}
		cands = append(cands, cand{p, fi.ModTime()})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].mtime.Before(cands[j].mtime) })
	read := 0
	for _, c := range cands {
		done, err := t.drainFile(c.p, true, func(f *os.File, sid Identity, size int64) (int64, bool) {
			if sid.sameInode(skip) || t.seen[devIno2{sid.Dev, sid.Ino}] {
				return 0, false
			}
			if t.cp != nil {
				if _, ok := t.cp.Lookup(sid); ok {
					return 0, false // read before; catchUpRotated had its say
				}
			}
			if copied != nil {
				if fp, n, err := fingerprint(f, copied.FPLen, &t.scratch); err != nil || (n == copied.FPLen && fp == copied.FP) {
					return 0, false
				}
			}
			return 0, !compressed(f)
		})
		if err != nil {
			return read, err
		}
		if done {
			read++
		}
	}
	return read, nil
}

// see records that this Tailer read the file on id's inode, so that the
// look for missed rotated files skips it.
func (t *Tailer) see(id Identity) {
	if t.seen == nil {
		t.seen = map[devIno2]bool{}
	}
	if len(t.seen) >= 4096 {
		clear(t.seen) // a long-running Tailer of a fast-rotating file; the checkpoints cover what was acknowledged
	}
	t.seen[devIno2{id.Dev, id.Ino}] = true
}

func compressedName(rest string) bool {
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z"} {
		if strings.HasSuffix(rest, ext) {
			return true
		}
	}
	return false
}

// compressed reports whether f starts with the magic number of gzip,
// bzip2, xz or zstd.
func compressed(f *os.File) bool {
	var b [6]byte
	n, _ := f.ReadAt(b[:], 0)
	h := b[:n]
	return bytes.HasPrefix(h, []byte{0x1f, 0x8b}) || bytes.HasPrefix(h, []byte("BZh")) ||
		bytes.HasPrefix(h, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || bytes.HasPrefix(h, []byte{0x28, 0xb5, 0x2f, 0xfd})
}

func (t *Tailer) fingerprintPath(p string, n int) (uint64, int, error) {
	f, err := t.openInRoot(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return fingerprint(f, n, &t.scratch)
}

// drainFile opens p and, if want accepts it, hands over its lines from the
// offset want returns to its end, as lines of that file, then goes back to
// the followed file. With keep, p stays open among the drains, read on
// until it has been quiet for RotateWait (a writer may still append to a
// file rotated a moment ago); without, its incomplete last line is flushed
// and it is closed. It reports whether it read p.
func (t *Tailer) drainFile(p string, keep bool, want func(f *os.File, id Identity, size int64) (int64, bool)) (bool, error) {
	f, err := t.openInRoot(p)
	if err != nil {
		return false, nil // gone meanwhile, or a link out of the root
	}
	id, fi, err := identify(f, &t.scratch)
	if err != nil || t.isDrain(id) {
		f.Close()
		return false, nil
	}
	off, ok := want(f, id, fi.Size())
	if !ok {
		f.Close()
		return false, nil
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return false, nil
	}
	t.c.catchUps.Add(1)
	t.see(id)
	t.log.Debug("reading the rest of a rotated file", "rotated", p, "file", id, "offset", off)
	saved := t.fileRead
	t.fileRead = fileRead{f: f, fileID: id, readOff: off, lineStart: off}
	_, rerr := t.readAll()
	if rerr == nil && !keep {
		rerr = t.flushIfPending()
	}
	if keep && rerr == nil {
		t.drains = append(t.drains, &drain{fileRead: t.fileRead, quietUntil: t.now().Add(t.cfg.RotateWait)})
	} else {
		f.Close()
	}
	t.fileRead = saved
	return true, rerr
}
