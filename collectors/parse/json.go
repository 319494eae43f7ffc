package parse

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON parses one JSON object per line. Top-level members become fields;
// nested objects and arrays are kept as KindRaw source text. Strings are
// unescaped into the Record's buffer only when they contain escapes.
type JSON struct{}

// Parse implements Parser.
func (JSON) Parse(line []byte, r *Record) error {
	line = trimLine(line)
	r.reset(len(line))
	if err := checkUTF8("json", line); err != nil {
		return err
	}
	s := jsonScanner{b: line, r: r}
	return s.object()
}

type jsonScanner struct {
	b []byte
	i int
	r *Record
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) err(detail string) error { return syntaxErr("json", s.i, detail) }

func (s *jsonScanner) object() error {
	s.ws()
	if s.i >= len(s.b) {
		return s.err("empty line")
	}
	if s.b[s.i] != '{' {
		return s.err("line does not start with '{'")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.err("expected a quoted member name")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.err("expected ':' after member name")
		}
		s.i++
		s.ws()
		val, kind, err := s.value()
		if err != nil {
			return err
		}
		s.r.Fields = append(s.r.Fields, Field{Key: key, Value: val, Kind: kind})
		s.ws()
		if s.i >= len(s.b) {
			return s.err("unterminated object (line cut short?)")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return s.err("expected ',' or '}'")
		}
	}
}

func (s *jsonScanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.err("trailing data after the object")
	}
	return nil
}

func (s *jsonScanner) value() ([]byte, Kind, error) {
	if s.i >= len(s.b) {
		return nil, 0, s.err("missing value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		v, err := s.str()
		return v, KindString, err
	case c == '{' || c == '[':
		v, err := s.nested()
		return v, KindRaw, err
	case c == 't':
		return s.lit("true", KindBool)
	case c == 'f':
		return s.lit("false", KindBool)
	case c == 'n':
		return s.lit("null", KindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		return nil, 0, s.err("unexpected character in value")
	}
}

func (s *jsonScanner) lit(word string, k Kind) ([]byte, Kind, error) {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return nil, 0, s.err("invalid literal")
	}
	v := s.b[s.i : s.i+len(word)]
	s.i += len(word)
	return v, k, nil
}

// number accepts the JSON number grammar.
func (s *jsonScanner) number() ([]byte, Kind, error) {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return nil, 0, s.err("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, 0, s.err("invalid number: no digits after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, 0, s.err("invalid number: no digits in exponent")
		}
	}
	return s.b[start:s.i], KindNumber, nil
}

// str scans a string starting at the opening quote and returns its
// unescaped contents.
func (s *jsonScanner) str() ([]byte, error) {
	s.i++ // opening quote
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			v := s.b[start:s.i]
			s.i++
			return v, nil
		}
		if c == '\\' {
			return s.strEscaped(start)
		}
		if c < 0x20 {
			return nil, s.err("control character in string")
		}
		s.i++
	}
	return nil, syntaxErr("json", start-1, "unterminated string (line cut short?)")
}

func (s *jsonScanner) strEscaped(start int) ([]byte, error) {
	out := len(s.r.buf)
	s.r.buf = append(s.r.buf, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.r.buf[out:len(s.r.buf):len(s.r.buf)], nil
		case c < 0x20:
			return nil, s.err("control character in string")
		case c != '\\':
			s.r.buf = append(s.r.buf, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			s.r.buf = append(s.r.buf, e)
		case 'b':
			s.r.buf = append(s.r.buf, '\b')
		case 'f':
			s.r.buf = append(s.r.buf, '\f')
		case 'n':
			s.r.buf = append(s.r.buf, '\n')
		case 'r':
			s.r.buf = append(s.r.buf, '\r')
		case 't':
			s.r.buf = append(s.r.buf, '\t')
		case 'u':
			r1, ok := s.hex4()
			if !ok {
				return nil, s.err("invalid \\u escape")
			}
			if utf16.IsSurrogate(r1) {
				// Only a high surrogate followed by an escaped low one
				// pairs up; anything else becomes U+FFFD, as in
				// encoding/json, and the next escape stands on its own.
				r2 := utf8.RuneError
				if r1 < 0xdc00 && s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					if x, ok := s.hex4(); ok && x >= 0xdc00 && x <= 0xdfff {
						r2 = x
					} else {
						s.i = save
					}
				}
				r1 = utf16.DecodeRune(r1, r2)
			}
			s.r.buf = utf8.AppendRune(s.r.buf, r1)
		default:
			return nil, syntaxErr("json", s.i-2, "invalid escape")
		}
	}
	return nil, syntaxErr("json", start-1, "unterminated string (line cut short?)")
}

func (s *jsonScanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// maxNesting bounds the depth of nested values.
const maxNesting = 64

// nested skips a nested object or array without recursion, checking that
// brackets pair up, so deep nesting cannot exhaust the stack.
func (s *jsonScanner) nested() ([]byte, error) {
	start := s.i
	var stack [maxNesting]byte
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '{', '[':
			if depth == maxNesting {
				return nil, s.err("nested deeper than 64 levels")
			}
			stack[depth] = c + 2 // '{'+2 == '}', '['+2 == ']'
			depth++
		case '}', ']':
			if stack[depth-1] != c {
				return nil, s.err("mismatched bracket in nested value")
			}
			depth--
			if depth == 0 {
				s.i++
				v := s.b[start:s.i]
				// The scan above only pairs brackets; the standard
				// library checks the rest of the grammar. Nested values
				// are rare on the hot path.
				if !json.Valid(v) {
					return nil, syntaxErr("json", start, "invalid nested value")
				}
				return v, nil
			}
		case '"':
			// Skip the string without unescaping it.
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return nil, syntaxErr("json", start, "unterminated string in nested value")
			}
		}
		s.i++
	}
	return nil, syntaxErr("json", start, "unterminated nested value (line cut short?)")
}
