package parse

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Kind is the syntactic kind of a field value.
type Kind uint8

// Kinds of field values. Regex and logfmt values are KindString unless
// logfmt saw a bare key (KindBool, value "true").
const (
	KindString Kind = iota
	KindNumber
	KindBool
	KindNull
	KindRaw // a nested JSON object or array, kept as its source text
)

// Field is one key and its value. Both slices point into the parsed line or
// into the Record's scratch buffer.
type Field struct {
	Key   []byte
	Value []byte
	Kind  Kind
}

// Record holds the fields of one parsed line. It is reused across lines: its
// fields are valid until the next Parse into the same Record, and they alias
// the line, which the caller must not modify meanwhile.
type Record struct {
	Fields []Field
	buf    []byte // unescaped strings; never reallocated during one Parse
}

func (r *Record) reset(lineLen int) {
	r.Fields = r.Fields[:0]
	if cap(r.buf) < lineLen {
		r.buf = make([]byte, 0, lineLen)
	}
	r.buf = r.buf[:0]
}

// Get returns the first field called key.
func (r *Record) Get(key string) (Field, bool) {
	for i := range r.Fields {
		if string(r.Fields[i].Key) == key {
			return r.Fields[i], true
		}
	}
	return Field{}, false
}

// Sentinel errors; every error from a Parser or Mapper wraps one of them.
var (
	// ErrSyntax means the line is not in the parser's format.
	ErrSyntax = errors.New("syntax error")
	// ErrInvalidUTF8 means the line is not valid UTF-8 (binary data).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrNoMatch means a regular expression did not match the line.
	ErrNoMatch = errors.New("no match")
	// ErrMissingField means a field the mapping needs is absent.
	ErrMissingField = errors.New("missing field")
	// ErrBadValue means a field the mapping needs has an unusable value.
	ErrBadValue = errors.New("bad value")
)

// Error describes why one line could not be parsed or mapped. Callers turn
// it into an unparsed LogEvent and count it by Err.
type Error struct {
	Format string // "json", "logfmt", "regex", "cri", "docker", "mapping"
	Offset int    // byte offset in the line, -1 when not meaningful
	Err    error  // one of the sentinels above
	Detail string
	// Reason is set when the line names a call (method and latency) but a
	// value cannot be right: one of the Reason constants.
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("%s: %v at byte %d: %s", e.Format, e.Err, e.Offset, e.Detail)
	}
	return fmt.Sprintf("%s: %v: %s", e.Format, e.Err, e.Detail)
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func syntaxErr(format string, off int, detail string) error {
	return &Error{Format: format, Offset: off, Err: ErrSyntax, Detail: detail}
}

// checkUTF8 returns an *Error naming the first invalid byte, or nil.
func checkUTF8(format string, line []byte) error {
	if utf8.Valid(line) {
		return nil
	}
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && n <= 1 {
			return &Error{Format: format, Offset: i, Err: ErrInvalidUTF8,
				Detail: fmt.Sprintf("byte 0x%02x is not valid UTF-8 (binary data?)", line[i])}
		}
		i += n
	}
	return nil
}

// trimLine removes a trailing newline (and carriage return) and surrounding
// blanks.
func trimLine(b []byte) []byte {
	for len(b) > 0 {
		c := b[len(b)-1]
		if c != '\n' && c != '\r' && c != ' ' && c != '\t' {
			break
		}
		b = b[:len(b)-1]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// Parser splits one line into fields. A Parser keeps no per-line state and
// is safe for concurrent use; each goroutine uses its own Record.
type Parser interface {
	// Parse fills r from line (a trailing newline is allowed) or returns an
	// *Error. It never panics, whatever the bytes.
	Parse(line []byte, r *Record) error
}
