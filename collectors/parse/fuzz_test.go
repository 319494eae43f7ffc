package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/; plain `go test` runs
// them, `go test -fuzz=FuzzJSON` explores further.

// FuzzJSON checks the JSON parser against encoding/json as an oracle: on
// valid UTF-8 both accept the same objects, and top-level strings and
// numbers decode alike.
func FuzzJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		err := (JSON{}).Parse(line, &r)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || ErrorClass(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
		}
		if !utf8.Valid(line) || bytes.Count(line, []byte("[")) > 60 || bytes.Count(line, []byte("{")) > 60 {
			return
		}
		var m map[string]json.RawMessage
		oerr := json.Unmarshal(trimLine(line), &m)
		if (err == nil) != (oerr == nil && m != nil) {
			t.Fatalf("Parse: %v; encoding/json: %v (map %v)", err, oerr, m != nil)
		}
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, fl := range r.Fields {
			k := string(fl.Key)
			if seen[k] {
				continue
			}
			seen[k] = true
			if fl.Kind == KindString {
				var want string
				// encoding/json keeps the last of duplicate keys.
				if n := countKey(&r, k); n == 1 {
					if err := json.Unmarshal(m[k], &want); err != nil || want != string(fl.Value) {
						t.Fatalf("member %q = %q, encoding/json %q (%v)", k, fl.Value, want, err)
					}
				}
			}
		}
	})
}

func countKey(r *Record, k string) int {
	n := 0
	for _, f := range r.Fields {
		if string(f.Key) == k {
			n++
		}
	}
	return n
}

// FuzzLogfmt checks that logfmt never panics, classifies its errors and
// round-trips what it accepts through a quoting encoder.
func FuzzLogfmt(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		if err := (Logfmt{}).Parse(line, &r); err != nil {
			if ErrorClass(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var enc []byte
		type kv struct{ k, v string }
		var want []kv
		for _, fl := range r.Fields {
			want = append(want, kv{string(fl.Key), string(fl.Value)})
			enc = append(enc, fl.Key...)
			enc = append(enc, '=', '"')
			for _, c := range fl.Value {
				switch c {
				case '"', '\\':
					enc = append(enc, '\\', c)
				case '\n':
					enc = append(enc, '\\', 'n')
				case '\t':
					enc = append(enc, '\\', 't')
				case '\r':
					enc = append(enc, '\\', 'r')
				default:
					enc = append(enc, c)
				}
			}
			enc = append(enc, '"', ' ')
		}
		var r2 Record
		if err := (Logfmt{}).Parse(enc, &r2); err != nil {
			t.Fatalf("re-encoded %q: %v", enc, err)
		}
		if len(r2.Fields) != len(want) {
			t.Fatalf("re-encoded %q: %d fields, want %d", enc, len(r2.Fields), len(want))
		}
		for i, fl := range r2.Fields {
			if string(fl.Key) != want[i].k || string(fl.Value) != want[i].v {
				t.Fatalf("re-encoded field %d = %q=%q, want %q=%q", i, fl.Key, fl.Value, want[i].k, want[i].v)
			}
		}
	})
}

// FuzzRegex runs the nginx and Apache presets: no panics, classified errors,
// fields that are substrings of the line.
func FuzzRegex(f *testing.F) {
	ng, _ := NewRegex(PatternNginx)
	ap, _ := NewRegex(PatternApache)
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, p := range []*Regex{ng, ap} {
			var r Record
			if err := p.Parse(line, &r); err != nil {
				if ErrorClass(err) == "other" {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			for _, fl := range r.Fields {
				if !bytes.Contains(line, fl.Value) {
					t.Fatalf("field %q=%q not in the line", fl.Key, fl.Value)
				}
			}
		}
	})
}

// FuzzCRI checks that CRI lines that parse rebuild to a line that parses the
// same, and that garbage gives classified errors.
func FuzzCRI(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := ParseCRI(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		j := NewJoiner(64)
		out, tr, done := j.Add(l.Log, l.Partial)
		if done == l.Partial || (done && len(out) > 64) || (tr && len(l.Log) <= 64) {
			t.Fatalf("joiner: %q %v %v for %+v", out, tr, done, l)
		}
	})
}

// FuzzDocker checks the Docker unwrapper: no panics, classified errors.
func FuzzDocker(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		l, err := UnwrapDocker(line, &r)
		if err != nil {
			if ErrorClass(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if l.Stream != StreamStdout && l.Stream != StreamStderr {
			t.Fatalf("stream %q", l.Stream)
		}
	})
}

// FuzzPerfJSON runs the whole perf-json path: parse and map never panic and
// every error is classified.
func FuzzPerfJSON(f *testing.F) {
	lp, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var c Call
		if err := lp.ParseCall(line, &c); err != nil && ErrorClass(err) == "other" {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// FuzzMultiline feeds lines split from the input and checks that records
// never exceed the byte bound and that nothing is lost below it.
func FuzzMultiline(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := NewMultiline(MultilineConfig{Start: `^\S`, Timeout: 1, MaxLines: 4}, 256, func() time.Time { return time.Time{} })
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		lines := bytes.Split(data, []byte{'\n'})
		for _, l := range lines {
			if rec, tr, done := m.Add(l); done {
				if len(rec) > 256 {
					t.Fatalf("record of %d bytes", len(rec))
				}
				if !tr {
					total += len(rec) + 1
				} else {
					total = -1 << 30
				}
			}
		}
		if rec, tr, done := m.Flush(); done {
			if !tr {
				total += len(rec) + 1
			} else {
				total = -1 << 30
			}
		}
		if total >= 0 && total != len(data)+1 {
			t.Fatalf("joined %d bytes of %d", total, len(data)+1)
		}
	})
}
