package parse

import (
	"bytes"
)

// Stream names as they appear in container runtime logs.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// ContainerLine is one line of a container runtime's log file with the
// wrapper taken off. Log aliases the input line (or the Record's buffer for
// Docker lines with escapes) and is valid as long as they are.
type ContainerLine struct {
	TimeUnixNano int64
	Stream       string // StreamStdout or StreamStderr
	// Partial is set when the runtime split a long line and more fragments
	// follow (CRI tag P; a Docker line without a trailing newline).
	Partial bool
	Log     []byte // without the trailing newline
}

func streamName(b []byte) (string, bool) {
	switch string(b) {
	case StreamStdout:
		return StreamStdout, true
	case StreamStderr:
		return StreamStderr, true
	}
	return "", false
}

// UnwrapDocker takes the Docker json-file wrapper
// {"log":"...\n","stream":"stdout","time":"..."} off one line. r is scratch
// space that the result may alias.
func UnwrapDocker(line []byte, r *Record) (ContainerLine, error) {
	var out ContainerLine
	if err := (JSON{}).Parse(line, r); err != nil {
		if e, ok := err.(*Error); ok {
			e.Format = "docker"
		}
		return out, err
	}
	f, ok := r.Get("log")
	if !ok || f.Kind != KindString {
		return out, &Error{Format: "docker", Offset: -1, Err: ErrMissingField, Detail: `no string member "log"`}
	}
	out.Log = f.Value
	if n := len(out.Log); n > 0 && out.Log[n-1] == '\n' {
		out.Log = out.Log[:n-1]
	} else {
		out.Partial = true
	}
	if f, ok := r.Get("stream"); ok {
		if out.Stream, ok = streamName(f.Value); !ok {
			return out, &Error{Format: "docker", Offset: -1, Err: ErrBadValue, Detail: "stream is neither stdout nor stderr"}
		}
	} else {
		out.Stream = StreamStdout
	}
	if f, ok := r.Get("time"); ok {
		if out.TimeUnixNano, ok = parseRFC3339Nano(f.Value); !ok {
			return out, &Error{Format: "docker", Offset: -1, Err: ErrBadValue, Detail: "time is not RFC 3339"}
		}
	}
	return out, nil
}

// ParseCRI parses one line of the CRI log format
// "2026-11-27T10:00:00.123456789Z stdout P text": time, stream, tags (P for
// a partial fragment, F for a full line or the final fragment, possibly
// followed by further ':'-separated tags) and the message.
func ParseCRI(line []byte) (ContainerLine, error) {
	var out ContainerLine
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return out, syntaxErr("cri", 0, "no blank after the time")
	}
	var ok bool
	if out.TimeUnixNano, ok = parseRFC3339Nano(line[:sp]); !ok {
		return out, syntaxErr("cri", 0, "time is not RFC 3339")
	}
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return out, syntaxErr("cri", sp+1, "no blank after the stream")
	}
	if out.Stream, ok = streamName(rest[:sp2]); !ok {
		return out, syntaxErr("cri", sp+1, "stream is neither stdout nor stderr")
	}
	rest = rest[sp2+1:]
	tagEnd := bytes.IndexByte(rest, ' ')
	var tags []byte
	if tagEnd < 0 {
		tags, rest = rest, nil // an empty message may come without the blank
	} else {
		tags, rest = rest[:tagEnd], rest[tagEnd+1:]
	}
	if i := bytes.IndexByte(tags, ':'); i >= 0 {
		tags = tags[:i]
	}
	switch string(tags) {
	case "P":
		out.Partial = true
	case "F":
	default:
		return out, syntaxErr("cri", sp+sp2+2, "tag is neither P nor F")
	}
	out.Log = rest
	return out, nil
}

// Joiner joins partial fragments (CRI P lines, Docker lines without a
// newline) up to the final one. Lines longer than the maximum are cut and
// flagged; the rest of their fragments is dropped. Use one Joiner per file
// and stream, since runtimes interleave stdout and stderr fragments. A
// Joiner is not safe for concurrent use.
type Joiner struct {
	max       int
	buf       []byte
	pending   bool
	truncated bool
}

// NewJoiner returns a Joiner that cuts lines at maxBytes.
func NewJoiner(maxBytes int) *Joiner {
	if maxBytes < 1 {
		panic("BUG: parse.NewJoiner: maxBytes must be positive")
	}
	return &Joiner{max: maxBytes}
}

// Add takes one fragment. When partial is false it completes the line and
// returns it with done set; the line is valid until the next call. Add does
// not retain frag.
func (j *Joiner) Add(frag []byte, partial bool) (line []byte, truncated, done bool) {
	if !j.pending && !partial {
		// A whole line in one fragment: no copy.
		if len(frag) > j.max {
			return frag[:j.max], true, true
		}
		return frag, false, true
	}
	if !j.pending {
		j.buf = j.buf[:0]
		j.truncated = false
		j.pending = true
	}
	room := j.max - len(j.buf)
	if len(frag) > room {
		frag = frag[:room]
		j.truncated = true
	}
	j.buf = append(j.buf, frag...)
	if partial {
		return nil, false, false
	}
	return j.Flush()
}

// Pending reports the bytes held for an unfinished line.
func (j *Joiner) Pending() int {
	if !j.pending {
		return 0
	}
	return len(j.buf)
}

// Flush returns what has been joined so far as a line, for when a file ends
// or stays quiet with a partial line open. done is false when nothing is
// pending.
func (j *Joiner) Flush() (line []byte, truncated, done bool) {
	if !j.pending {
		return nil, false, false
	}
	j.pending = false
	return j.buf, j.truncated, true
}
