package parse

// Logfmt parses key=value pairs separated by blanks. Values may be quoted
// with double quotes and Go-style escapes (\" \\ \n \t \r). A bare key is a
// KindBool field with value "true". A line without any '=' is not logfmt.
type Logfmt struct{}

var trueValue = []byte("true")

// Parse implements Parser.
func (Logfmt) Parse(line []byte, r *Record) error {
	line = trimLine(line)
	r.reset(len(line))
	if err := checkUTF8("logfmt", line); err != nil {
		return err
	}
	if len(line) == 0 {
		return syntaxErr("logfmt", 0, "empty line")
	}
	pairs := 0
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) {
			break
		}
		ks := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' {
			if line[i] == '"' || line[i] < 0x20 {
				return syntaxErr("logfmt", i, "invalid character in key")
			}
			i++
		}
		key := line[ks:i]
		if len(key) == 0 {
			return syntaxErr("logfmt", i, "'=' without a key")
		}
		if i >= len(line) || line[i] != '=' {
			r.Fields = append(r.Fields, Field{Key: key, Value: trueValue, Kind: KindBool})
			continue
		}
		i++ // '='
		pairs++
		if i < len(line) && line[i] == '"' {
			v, n, err := logfmtQuoted(line, i, r)
			if err != nil {
				return err
			}
			i = n
			r.Fields = append(r.Fields, Field{Key: key, Value: v, Kind: KindString})
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				return syntaxErr("logfmt", i, "expected a blank after a quoted value")
			}
			continue
		}
		vs := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			if line[i] == '"' {
				return syntaxErr("logfmt", i, "quote inside an unquoted value")
			}
			i++
		}
		r.Fields = append(r.Fields, Field{Key: key, Value: line[vs:i], Kind: KindString})
	}
	if pairs == 0 {
		return syntaxErr("logfmt", -1, "no key=value pair in the line")
	}
	return nil
}

// logfmtQuoted scans a quoted value at line[i] == '"' and returns the value
// and the index after the closing quote.
func logfmtQuoted(line []byte, i int, r *Record) ([]byte, int, error) {
	start := i
	i++
	vs := i
	for i < len(line) && line[i] != '"' && line[i] != '\\' {
		i++
	}
	if i < len(line) && line[i] == '"' {
		return line[vs:i], i + 1, nil
	}
	out := len(r.buf)
	r.buf = append(r.buf, line[vs:i]...)
	for i < len(line) {
		c := line[i]
		if c == '"' {
			return r.buf[out:len(r.buf):len(r.buf)], i + 1, nil
		}
		if c == '\\' && i+1 < len(line) {
			i++
			switch line[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			default:
				c = line[i]
			}
		}
		r.buf = append(r.buf, c)
		i++
	}
	return nil, 0, syntaxErr("logfmt", start, "unterminated quoted value")
}
