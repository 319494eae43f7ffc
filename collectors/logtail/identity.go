package logtail

import (
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"syscall"
)

// FingerprintBytes is how many leading bytes of a file its fingerprint
// covers once the file is that long.
const FingerprintBytes = 1024

// Identity names one file independently of its path: the device and inode
// it lives on and a fingerprint of its first bytes, which tells a new file
// that reuses an inode from the old one.
//
// A file shorter than FingerprintBytes is fingerprinted over what it has
// (FPLen < FingerprintBytes); the Tailer extends the fingerprint as the
// file grows, so the Identity on later lines of the same file can have a
// longer FPLen. Two identities are the same file when Dev and Ino are equal
// and the shorter fingerprint is the hash of the same prefix of the file
// (see Checkpoints.Ack).
type Identity struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	FP    uint64 `json:"fp"`     // FNV-1a 64 of the first FPLen bytes
	FPLen int    `json:"fp_len"` // 0..FingerprintBytes
}

// String returns dev:ino:fplen:fp for logs.
func (id Identity) String() string {
	return fmt.Sprintf("%d:%d:%d:%016x", id.Dev, id.Ino, id.FPLen, id.FP)
}

// sameInode reports whether the two identities are on the same inode.
func (id Identity) sameInode(o Identity) bool { return id.Dev == o.Dev && id.Ino == o.Ino }

// devIno returns the device and inode of fi, which must come from a stat on
// Linux or another Unix.
func devIno(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), st.Ino, true // Dev is not uint64 on every platform
}

// fingerprint hashes the first n bytes of f (n ≤ FingerprintBytes) without
// moving its read offset. It returns the number of bytes hashed, which is
// less than n when the file is shorter.
func fingerprint(f *os.File, n int, scratch *[FingerprintBytes]byte) (uint64, int, error) {
	got, err := f.ReadAt(scratch[:n], 0)
	if err != nil && err != io.EOF {
		return 0, 0, fmt.Errorf("cannot read fingerprint of %s: %w", f.Name(), err)
	}
	h := fnv.New64a()
	h.Write(scratch[:got])
	return h.Sum64(), got, nil
}

// identify stats and fingerprints an open file.
func identify(f *os.File, scratch *[FingerprintBytes]byte) (Identity, os.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return Identity{}, nil, fmt.Errorf("cannot stat %s: %w", f.Name(), err)
	}
	dev, ino, ok := devIno(fi)
	if !ok {
		return Identity{}, nil, fmt.Errorf("cannot identify %s: no device and inode on this platform", f.Name())
	}
	n := int(min(fi.Size(), FingerprintBytes))
	fp, got, err := fingerprint(f, n, scratch)
	if err != nil {
		return Identity{}, nil, err
	}
	return Identity{Dev: dev, Ino: ino, FP: fp, FPLen: got}, fi, nil
}
