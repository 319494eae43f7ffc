package parse

import (
	"fmt"
	"regexp"
)

// Regex parses lines with a regular expression whose named groups become
// fields. Unnamed groups are ignored; a named group that did not take part
// in the match is absent from the Record.
type Regex struct {
	re    *regexp.Regexp
	names []string
	keys  [][]byte
}

// NewRegex compiles pattern, which must have at least one named group.
func NewRegex(pattern string) (*Regex, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("cannot compile pattern: %w", err)
	}
	x := &Regex{re: re, names: re.SubexpNames()}
	x.keys = make([][]byte, len(x.names))
	named := 0
	for i, n := range x.names {
		if n != "" {
			x.keys[i] = []byte(n)
			named++
		}
	}
	if named == 0 {
		return nil, fmt.Errorf("pattern %q has no named group (?P<name>...)", pattern)
	}
	return x, nil
}

// Parse implements Parser.
func (x *Regex) Parse(line []byte, r *Record) error {
	line = trimLine(line)
	r.reset(0)
	if err := checkUTF8("regex", line); err != nil {
		return err
	}
	m := x.re.FindSubmatchIndex(line)
	if m == nil {
		return &Error{Format: "regex", Offset: -1, Err: ErrNoMatch, Detail: "the line does not match the pattern"}
	}
	for i := 1; i < len(x.names); i++ {
		if x.keys[i] == nil || m[2*i] < 0 {
			continue
		}
		r.Fields = append(r.Fields, Field{Key: x.keys[i], Value: line[m[2*i]:m[2*i+1]], Kind: KindString})
	}
	return nil
}

// Access log presets. Both capture remote_addr, remote_user, time (the
// common log format time, layout TimeCLF), method, path (without the query
// string), query, protocol, status, bytes, referer and user_agent.
const (
	// PatternNginx matches nginx's "combined" format followed by
	// $request_time (seconds with millisecond resolution) as request_time,
	// optionally followed by further fields, which are ignored:
	//   log_format timed '$remote_addr - $remote_user [$time_local] "$request" '
	//                    '$status $body_bytes_sent "$http_referer" '
	//                    '"$http_user_agent" $request_time';
	PatternNginx = `^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>[^ ?"]*)(?:\?(?P<query>[^ "]*))? (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<user_agent>(?:[^"\\]|\\.)*)" (?P<request_time>\d+(?:\.\d+)?)(?:\s|$)`
	// PatternApache matches Apache's "combined" format followed by %D
	// (microseconds) as request_time_us:
	//   LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D" timed
	PatternApache = `^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>[^ ?"]*)(?:\?(?P<query>[^ "]*))? (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<user_agent>(?:[^"\\]|\\.)*)" (?P<request_time_us>\d+)(?:\s|$)`
)

// TimeCLF is the time layout of the common log format ($time_local, %t).
const TimeCLF = "02/Jan/2006:15:04:05 -0700"
