package parse

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/config"
)

func fields(r *Record) map[string]string {
	m := map[string]string{}
	for _, f := range r.Fields {
		m[string(f.Key)] = string(f.Value)
	}
	return m
}

// fieldsCase is a line and the fields it parses into.
type fieldsCase struct {
	in   string
	want map[string]string
}

// errorCase is a line that does not parse: the error contains want and
// wraps err.
type errorCase struct {
	in, want string
	err      error
}

// checkParser parses every good line into exactly its fields and refuses
// every bad line with its error.
func checkParser(t *testing.T, p Parser, good []fieldsCase, bad []errorCase) {
	t.Helper()
	var r Record
	for _, tc := range good {
		if err := p.Parse([]byte(tc.in), &r); err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		got := fields(&r)
		if len(got) != len(tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("Parse(%q)[%q] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
	for _, tc := range bad {
		err := p.Parse([]byte(tc.in), &r)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("Parse(%q) = %v, want an error with %q wrapping %v", tc.in, err, tc.want, tc.err)
		}
	}
}

func TestJSON(t *testing.T) {
	good := []fieldsCase{
		{`{}`, map[string]string{}},
		{`{"a":"b"}` + "\n", map[string]string{"a": "b"}},
		{` { "a" : 1 , "b":-2.5e3, "c":true,"d":null,"e":false } `, map[string]string{"a": "1", "b": "-2.5e3", "c": "true", "d": "null", "e": "false"}},
		{`{"s":"x\"y\\z\n\u00e9\ud83d\ude00"}`, map[string]string{"s": "x\"y\\z\né😀"}},
		{`{"k\u0041":"v","t":"a\/b"}`, map[string]string{"kA": "v", "t": "a/b"}},
		{`{"n":{"x":[1,"}",{"y":"]"}]},"m":[]}`, map[string]string{"n": `{"x":[1,"}",{"y":"]"}]}`, "m": "[]"}},
		{`{"a":"1","b":"x\ty","c":"2"}`, map[string]string{"a": "1", "b": "x\ty", "c": "2"}},
		{`{"日本":"語"}`, map[string]string{"日本": "語"}},
	}
	bad := []errorCase{
		{``, "empty line", ErrSyntax},
		{`[1]`, "does not start with '{'", ErrSyntax},
		{`{"a":1`, "unterminated object", ErrSyntax},
		{`{"a":"b`, "unterminated string", ErrSyntax},
		{`{"a":1,}`, "expected a quoted member name", ErrSyntax},
		{`{a:1}`, "expected a quoted member name", ErrSyntax},
		{`{"a" 1}`, "expected ':'", ErrSyntax},
		{`{"a":tru}`, "invalid literal", ErrSyntax},
		{`{"a":01}`, "expected ',' or '}'", ErrSyntax},
		{`{"a":1.}`, "no digits after", ErrSyntax},
		{`{"a":1e}`, "no digits in exponent", ErrSyntax},
		{`{"a":-}`, "invalid number", ErrSyntax},
		{`{"a":1} x`, "trailing data", ErrSyntax},
		{`{"a":"\x"}`, "invalid escape", ErrSyntax},
		{`{"a":"\u12"}`, "invalid \\u escape", ErrSyntax},
		{"{\"a\":\"x\ty\"}", "control character", ErrSyntax},
		{`{"a":[1,2}`, "mismatched bracket", ErrSyntax},
		{`{"a":[1,2`, "unterminated nested", ErrSyntax},
		{`{"a":` + strings.Repeat("[", 65), "nested deeper than 64", ErrSyntax},
		{`{"a":'x'}`, "unexpected character", ErrSyntax},
		{"{\"a\":\"\xff\xfe\"}", "byte 0xff is not valid UTF-8", ErrInvalidUTF8},
		{"\x00\x01\x02\x89PNG", "byte 0x89", ErrInvalidUTF8},
		{"\x00\x01\x02binary", "does not start with '{'", ErrSyntax},
	}
	checkParser(t, JSON{}, good, bad)
}

func TestLogfmt(t *testing.T) {
	good := []fieldsCase{
		{`a=b`, map[string]string{"a": "b"}},
		{"ts=2026-11-27T10:00:00Z method=Cart.add latency_ms=3 ok\n", map[string]string{"ts": "2026-11-27T10:00:00Z", "method": "Cart.add", "latency_ms": "3", "ok": "true"}},
		{`msg="hello world" e= q="a\"b\\c\nd"`, map[string]string{"msg": "hello world", "e": "", "q": "a\"b\\c\nd"}},
		{"  a=1\tb=2  ", map[string]string{"a": "1", "b": "2"}},
		{`k="" x=é`, map[string]string{"k": "", "x": "é"}},
	}
	bad := []errorCase{
		{``, "empty line", ErrSyntax},
		{`hello world`, "no key=value pair", ErrSyntax},
		{`=x`, "'=' without a key", ErrSyntax},
		{`a="b`, "unterminated quoted value", ErrSyntax},
		{`a="b"c`, "expected a blank", ErrSyntax},
		{`a=b"c`, "quote inside", ErrSyntax},
		{`"a"=b`, "invalid character in key", ErrSyntax},
		{"a=\xc3\x28", "byte 0xc3", ErrInvalidUTF8},
		{"a\x01=b", "invalid character in key", ErrSyntax},
	}
	checkParser(t, Logfmt{}, good, bad)
}

const (
	nginxLine  = `10.0.0.7 - alice [27/Nov/2026:10:00:00 +0800] "GET /api/cart/items?id=42 HTTP/1.1" 200 512 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)" 0.013`
	apacheLine = `192.168.1.2 - - [27/Nov/2026:10:00:00 +0000] "POST /checkout HTTP/1.1" 503 - "-" "curl/8.5.0" 250123`
)

func TestRegexAndPresets(t *testing.T) {
	var r Record
	ng, err := NewRegex(PatternNginx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.Parse([]byte(nginxLine+"\n"), &r); err != nil {
		t.Fatal(err)
	}
	got := fields(&r)
	want := map[string]string{"remote_addr": "10.0.0.7", "remote_user": "alice", "time": "27/Nov/2026:10:00:00 +0800",
		"method": "GET", "path": "/api/cart/items", "query": "id=42", "protocol": "HTTP/1.1", "status": "200",
		"bytes": "512", "referer": "https://shop.example/", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "request_time": "0.013"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("nginx[%q] = %q, want %q", k, got[k], v)
		}
	}
	ap, _ := NewRegex(PatternApache)
	if err := ap.Parse([]byte(apacheLine), &r); err != nil {
		t.Fatal(err)
	}
	if got := fields(&r); got["status"] != "503" || got["request_time_us"] != "250123" || got["bytes"] != "-" || got["path"] != "/checkout" {
		t.Errorf("apache = %v", got)
	}
	if _, ok := r.Get("query"); ok {
		t.Errorf("apache: absent optional group became a field")
	}
	for _, in := range []string{"", "garbage", `10.0.0.7 - - [x] "GET / HTTP/1.1" 200 1 "-" "-"`, "\xff\xff"} {
		err := ng.Parse([]byte(in), &r)
		if err == nil {
			t.Errorf("nginx Parse(%q) succeeded", in)
		} else if !errors.Is(err, ErrNoMatch) && !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("nginx Parse(%q) = %v", in, err)
		}
	}
	for _, p := range []string{`(`, `abc`, `(a)(b)`} {
		if _, err := NewRegex(p); err == nil {
			t.Errorf("NewRegex(%q) succeeded", p)
		}
	}
}

func TestMapping(t *testing.T) {
	ms := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC).UnixMilli()
	perf, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	good := []struct {
		in   string
		want Call
	}{
		{`{"ts":"2026-11-27T10:00:00.123Z","app":"cart","method":"CartService.add","latency_ms":12.5,"ok":true}`,
			Call{TS: ms, HasTS: true, Method: "CartService.add", LatencyUS: 12500, OK: true, App: "cart"}},
		{`{"ts":1795773600123,"app":"cart","method":"CartService.add","latency_us":800,"status":503,"system":"mall","group":"g1","idc":"lf"}`,
			Call{TS: ms, HasTS: true, Method: "CartService.add", LatencyUS: 800, Status: 503, OK: false, System: "mall", App: "cart", Group: "g1", IDC: "lf"}},
		{`{"ts":"2026-11-27T18:00:00.123+08:00","method":"m","latency_ms":"0.0004","status":"404"}`,
			Call{TS: ms, HasTS: true, Method: "m", LatencyUS: 0, Status: 404, OK: true}},
		{`{"ts":1795773600.123,"method":"m","latency_ms":4294967.295,"ok":false,"status":200}`,
			Call{TS: ms, HasTS: true, Method: "m", LatencyUS: 4294967295, Status: 200, OK: false}},
		{`{"ts":"1970-01-01T00:00:00Z","method":"m","latency_ms":1}`,
			Call{TS: 0, HasTS: true, Method: "m", LatencyUS: 1000, OK: true}},
		{`{"ts":"2999-01-01T00:00:00Z","method":"m","latency_ms":1}`,
			Call{TS: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), HasTS: true, Method: "m", LatencyUS: 1000, OK: true}},
		{`{"ts":"1795773600123","method":"m","latency_us":1,"ok":"1","app":null}`,
			Call{TS: ms, HasTS: true, Method: "m", LatencyUS: 1, OK: true}},
	}
	var c Call
	for _, tc := range good {
		if err := perf.ParseCall([]byte(tc.in), &c); err != nil {
			t.Errorf("ParseCall(%s): %v", tc.in, err)
			continue
		}
		if c != tc.want {
			t.Errorf("ParseCall(%s) =\n %+v, want\n %+v", tc.in, c, tc.want)
		}
	}
	long := strings.Repeat("m", MaxMethodBytes+1)
	bad := []struct {
		in, want string
		err      error
		reason   string
	}{
		{`{"ts":1795773600123,"latency_ms":1}`, `no method field "method"`, ErrMissingField, ""},
		{`{"ts":1795773600123,"method":"","latency_ms":1}`, `no method field`, ErrMissingField, ""},
		{`{"ts":1795773600123,"method":"m"}`, `no latency field`, ErrMissingField, ""},
		{`{"method":"m","latency_ms":1}`, `no timestamp field "ts"`, ErrMissingField, ReasonMissingTime},
		{`{"ts":null,"method":"m","latency_ms":1}`, `no timestamp field "ts"`, ErrMissingField, ReasonMissingTime},
		{`{"ts":1795773600123,"method":"m","latency_ms":-1}`, `latency field "latency_ms"`, ErrBadValue, ReasonNegativeLatency},
		{`{"ts":1795773600123,"method":"m","latency_ms":"-0.5"}`, `is negative`, ErrBadValue, ReasonNegativeLatency},
		{`{"ts":1795773600123,"method":"m","latency_ms":"fast"}`, `latency field`, ErrBadValue, ReasonInvalidLatency},
		{`{"ts":1795773600123,"method":"m","latency_ms":true}`, `latency field`, ErrBadValue, ReasonInvalidLatency},
		{`{"ts":1795773600123,"method":"m","latency_ms":1e400}`, `overflows`, ErrBadValue, ReasonLatencyOverflow},
		{`{"ts":1795773600123,"method":"m","latency_ms":-1e400}`, `overflows`, ErrBadValue, ReasonLatencyOverflow},
		{`{"ts":1795773600123,"method":"m","latency_ms":1e12}`, `exceeds 4294967295`, ErrBadValue, ReasonLatencyOverflow},
		{`{"ts":1795773600123,"method":"m","latency_ms":"NaN"}`, `NaN`, ErrBadValue, ReasonNotANumber},
		{`{"ts":1795773600123,"method":"m","latency_ms":"+Inf"}`, `NaN or infinite`, ErrBadValue, ReasonNotANumber},
		{`{"ts":1795773600123,"method":"m","latency_ms":1,"status":"OK"}`, `status field`, ErrBadValue, ReasonInvalidStatus},
		{`{"ts":1795773600123,"method":"m","latency_ms":1,"ok":"maybe"}`, `ok field`, ErrBadValue, ReasonInvalidStatus},
		{`{"ts":1795773600123,"method":"` + long + `","latency_ms":1}`, `limit 1024`, ErrBadValue, ReasonMethodTooLong},
		{`{"ts":1795773600123,"method":"a\\' OR 1=1 --","latency_ms":1}`, `method "a\\' OR 1=1 --": unsafe label value: holds a backslash`, ErrBadValue, ReasonUnsafeLabel},
		{`{"ts":1795773600123,"method":"Get\nUNION","latency_ms":1}`, `holds control character U+000A`, ErrBadValue, ReasonUnsafeLabel},
		{`{"ts":1795773600123,"method":"Get\u0085","latency_ms":1}`, `holds control character U+0085`, ErrBadValue, ReasonUnsafeLabel},
		{`{"ts":1795773600123,"method":"m","latency_ms":1,"app":"a\\'"}`, `app "a\\'": unsafe label value`, ErrBadValue, ReasonUnsafeLabel},
		{`{"ts":"yesterday","method":"m","latency_ms":1}`, `timestamp field "ts" does not match format "auto"`, ErrBadValue, ReasonInvalidTime},
		{`{"ts":"2026-02-30T10:00:00Z","method":"m","latency_ms":1}`, `timestamp field`, ErrBadValue, ReasonInvalidTime},
		{`{"ts":"2026-11-27T10:00:00","method":"m","latency_ms":1}`, `timestamp field`, ErrBadValue, ReasonInvalidTime},
		{`{"ts":1e400,"method":"m","latency_ms":1}`, `timestamp field`, ErrBadValue, ReasonInvalidTime},
		{`not json`, `json: syntax error`, ErrSyntax, ""},
	}
	for _, tc := range bad {
		err := perf.ParseCall([]byte(tc.in), &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("ParseCall(%.80s) = %v, want an error with %q wrapping %v", tc.in, err, tc.want, tc.err)
		}
		if got := ErrorReason(err); got != tc.reason {
			t.Errorf("ErrorReason(ParseCall(%.80s)) = %q, want %q", tc.in, got, tc.reason)
		}
	}

	for _, tc := range []struct {
		preset, line string
		want         Call
	}{
		{"nginx", nginxLine, Call{TS: time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC).UnixMilli(), HasTS: true, Method: "GET /api/cart/items", LatencyUS: 13000, Status: 200, OK: true}},
		{"apache", apacheLine, Call{TS: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli(), HasTS: true, Method: "POST /checkout", LatencyUS: 250123, Status: 503, OK: false}},
	} {
		cfg, err := PresetConfig(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		lp, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.ParseCall([]byte(tc.line), &c); err != nil {
			t.Fatalf("%s: %v", tc.preset, err)
		}
		if c != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.preset, c, tc.want)
		}
	}

	// logfmt with unix seconds and a Go layout.
	lf := DefaultConfig()
	lf.Format = FormatLogfmt
	lf.Mapping.TimestampFormat = "unix_s"
	lp, err := New(lf)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.ParseCall([]byte(`ts=1795773600.123 method=a.b latency_ms=2 ok=false`), &c); err != nil || c.TS != ms || c.OK || c.LatencyUS != 2000 {
		t.Errorf("logfmt: %+v, %v", c, err)
	}
	rx := DefaultConfig()
	rx.Format = FormatRegex
	rx.Pattern = `^(?P<ts>\S+ \S+) (?P<method>\S+) took (?P<latency_ms>\d+)ns$`
	rx.Mapping.TimestampFormat = "2006-01-02 15:04:05.000"
	rx.Mapping.Latency = []LatencyField{{Field: "latency_ms", Unit: "ns"}}
	lp, err = New(rx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.ParseCall([]byte(`2026-11-27 10:00:00.123 Svc.get took 1500ns`), &c); err != nil || c.TS != ms || c.LatencyUS != 2 || !c.OK {
		t.Errorf("regex: %+v, %v", c, err)
	}
}

func TestHugeAndOddLines(t *testing.T) {
	lp, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var c Call
	// A 1 MiB line: a valid object with a long member.
	big := []byte(`{"ts":1795773600123,"method":"m","latency_ms":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	if err := lp.ParseCall(big, &c); err != nil || c.Method != "m" {
		t.Errorf("1 MiB line: %+v, %v", c, err)
	}
	// The same line cut short: an error, not a panic.
	if err := lp.ParseCall(big[:1<<20], &c); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "unterminated string") {
		t.Errorf("cut 1 MiB line: %v", err)
	}
	// 1 MiB through the other parsers and the CRI joiner.
	var r Record
	if err := (Logfmt{}).Parse([]byte("msg="+strings.Repeat("y", 1<<20)+" a=1"), &r); err != nil || len(r.Fields) != 2 {
		t.Errorf("1 MiB logfmt: %v", err)
	}
	ng, _ := NewRegex(PatternNginx)
	if err := ng.Parse(bytes.Repeat([]byte("a "), 1<<19), &r); !errors.Is(err, ErrNoMatch) {
		t.Errorf("1 MiB nginx: %v", err)
	}
	j := NewJoiner(1 << 20)
	frag := "2026-11-27T10:00:00Z stdout P " + strings.Repeat("z", 700<<10)
	for i, tag := range []string{"P", "F"} {
		l, err := ParseCRI([]byte(strings.Replace(frag, " P ", " "+tag+" ", 1)))
		if err != nil {
			t.Fatal(err)
		}
		line, tr, done := j.Add(l.Log, l.Partial)
		if done != (i == 1) || (done && (!tr || len(line) != 1<<20)) {
			t.Errorf("1.4 MiB CRI line: done %v truncated %v len %d", done, tr, len(line))
		}
	}
	// No newline and CRLF both work.
	for _, in := range []string{`{"ts":1795773600123,"method":"m","latency_ms":1}`, "{\"ts\":1795773600123,\"method\":\"m\",\"latency_ms\":1}\r\n"} {
		if err := lp.ParseCall([]byte(in), &c); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	// Binary garbage through every parser: errors say which, nothing panics.
	garbage := [][]byte{{0, 1, 2, 3, 0xff, 0xfe}, bytes.Repeat([]byte{0x80}, 100), []byte("\x1b[31m{\"a\":1}"), {}}
	for _, p := range []Parser{JSON{}, Logfmt{}, ng} {
		var r Record
		for _, g := range garbage {
			if err := p.Parse(g, &r); err == nil {
				t.Errorf("%T.Parse(%q) succeeded", p, g)
			} else if ErrorClass(err) == "other" {
				t.Errorf("%T.Parse(%q): unclassified error %v", p, g, err)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"perf-json", "nginx", "apache"} {
		c, err := PresetConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := PresetConfig("syslog"); err == nil {
		t.Error("unknown preset accepted")
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Format = "xml" }, `format: unknown format "xml"`},
		{func(c *Config) { c.Format = "regex" }, "pattern: is required"},
		{func(c *Config) { c.Format = "regex"; c.Pattern = "(" }, "pattern: cannot compile pattern"},
		{func(c *Config) { c.Format = "regex"; c.Pattern = "a+" }, "pattern: pattern \"a+\" has no named group"},
		{func(c *Config) { c.Pattern = "(?P<x>a)" }, "pattern: is only used by format regex"},
		{func(c *Config) { c.Mapping.Latency[1].Unit = "minutes" }, `mapping.latency[1].unit: unknown unit "minutes"`},
		{func(c *Config) { c.Mapping.Latency = nil }, "mapping.latency: at least one field"},
		{func(c *Config) { c.Mapping.Method = nil }, "mapping.method: at least one field"},
		{func(c *Config) { c.Mapping.Method = []string{""} }, "mapping.method[0]: field name is empty"},
		{func(c *Config) { c.Mapping.TimestampFormat = "iso" }, `mapping.timestamp_format: unknown format "iso"`},
		{func(c *Config) { c.Mapping.ErrorStatus = 0 }, "mapping.error_status: must be set"},
		{func(c *Config) { c.MaxLineBytes = 10 }, "max_line_bytes: must be at least 1024"},
		{func(c *Config) { c.Multiline.Start = "[" }, "multiline.start: cannot compile"},
		{func(c *Config) { c.Multiline.Start = "^x"; c.Multiline.Timeout = 0 }, "multiline.timeout: must be positive"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		err := config.Validate(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
		if _, nerr := New(c); nerr == nil {
			t.Errorf("New accepted a config with %q", tc.want)
		}
	}
}

func TestDocker(t *testing.T) {
	var r Record
	l, err := UnwrapDocker([]byte(`{"log":"{\"method\":\"a\"}\n","stream":"stderr","time":"2026-11-27T10:00:00.123456789Z"}`+"\n"), &r)
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Log) != `{"method":"a"}` || l.Stream != StreamStderr || l.Partial || l.TimeUnixNano != time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC).UnixNano() {
		t.Errorf("got %+v (%q)", l, l.Log)
	}
	l, err = UnwrapDocker([]byte(`{"log":"part one ","stream":"stdout","time":"2026-11-27T10:00:00Z"}`), &r)
	if err != nil || !l.Partial || string(l.Log) != "part one " {
		t.Errorf("partial: %+v %v", l, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"stream":"stdout"}`, `no string member "log"`},
		{`{"log":1}`, `no string member "log"`},
		{`{"log":"x\n","stream":"stdin"}`, "neither stdout nor stderr"},
		{`{"log":"x\n","time":"now"}`, "time is not RFC 3339"},
		{`{"log":"x`, "docker: syntax error"},
		{"\xff", "docker: invalid UTF-8"},
	} {
		if _, err := UnwrapDocker([]byte(tc.in), &r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UnwrapDocker(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCRIAndJoiner(t *testing.T) {
	lines := []string{
		"2026-11-27T10:00:00.123456789Z stdout P {\"method\":",
		"2026-11-27T10:00:00.123456790Z stderr F whole stderr line\n",
		"2026-11-27T10:00:00.123456791Z stdout P \"a\",",
		"2026-11-27T10:00:00.123456792Z stdout F \"x\":1}",
		"2026-11-27T10:00:00.2+08:00 stdout F",
		"2026-11-27T10:00:00Z stdout F:x ",
	}
	joiners := map[string]*Joiner{StreamStdout: NewJoiner(1024), StreamStderr: NewJoiner(1024)}
	var got []string
	for _, s := range lines {
		l, err := ParseCRI([]byte(s))
		if err != nil {
			t.Fatalf("ParseCRI(%q): %v", s, err)
		}
		if line, tr, done := joiners[l.Stream].Add(l.Log, l.Partial); done {
			if tr {
				t.Errorf("unexpected truncation")
			}
			got = append(got, l.Stream+":"+string(line))
		}
	}
	want := []string{"stderr:whole stderr line", `stdout:{"method":"a","x":1}`, "stdout:", "stdout:"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no blank after the time"},
		{"garbage here", "time is not RFC 3339"},
		{"2026-11-27T10:00:00Z stdout", "no blank after the stream"},
		{"2026-11-27T10:00:00Z stdin F x", "neither stdout nor stderr"},
		{"2026-11-27T10:00:00Z stdout X x", "tag is neither P nor F"},
		{"\x00\xff\xfe binary", "time is not RFC 3339"},
	} {
		if _, err := ParseCRI([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCRI(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}

	// The joiner cuts at its maximum and flags it; later fragments are dropped.
	j := NewJoiner(10)
	if _, _, done := j.Add([]byte("0123456"), true); done || j.Pending() != 7 {
		t.Fatal("partial fragment completed a line")
	}
	j.Add([]byte("789abc"), true)
	line, tr, done := j.Add([]byte("def"), false)
	if !done || !tr || string(line) != "0123456789" {
		t.Errorf("cut: %q %v %v", line, tr, done)
	}
	if line, tr, done := j.Add([]byte("short"), false); !done || tr || string(line) != "short" {
		t.Errorf("after cut: %q %v %v", line, tr, done)
	}
	if line, tr, _ := j.Add([]byte("0123456789abcdef"), false); !tr || len(line) != 10 {
		t.Errorf("long whole line: %q %v", line, tr)
	}
	j.Add([]byte("dangling"), true)
	if line, _, done := j.Flush(); !done || string(line) != "dangling" {
		t.Errorf("Flush = %q %v", line, done)
	}
	if _, _, done := j.Flush(); done {
		t.Error("second Flush returned a line")
	}
}

func TestMultiline(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := NewMultiline(MultilineConfig{Start: `^\d{4}-`, Timeout: 2 * time.Second, MaxLines: 3}, 64, clock)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	add := func(s string) {
		if rec, _, done := m.Add([]byte(s)); done {
			out = append(out, string(rec))
		}
	}
	add("  orphan continuation")
	add("2026-11-27 ERROR boom")
	add("java.lang.Exception: x")
	add("\tat A.b(A.java:1)")
	add("2026-11-27 INFO next")
	if want := []string{"  orphan continuation", "2026-11-27 ERROR boom\njava.lang.Exception: x\n\tat A.b(A.java:1)"}; strings.Join(out, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", out, want)
	}
	// Not yet timed out.
	now = now.Add(time.Second)
	if _, _, done := m.Poll(); done {
		t.Fatal("Poll before the time-out returned a record")
	}
	add("  more")
	now = now.Add(1999 * time.Millisecond)
	if _, _, done := m.Poll(); done {
		t.Fatal("Poll returned a record although a line arrived within the time-out")
	}
	now = now.Add(time.Millisecond)
	rec, tr, done := m.Poll()
	if !done || tr || string(rec) != "2026-11-27 INFO next\n  more" {
		t.Fatalf("Poll after time-out = %q %v %v", rec, tr, done)
	}
	if _, _, done := m.Poll(); done {
		t.Fatal("Poll returned an empty record")
	}
	// MaxLines: the fourth line starts a new record.
	out = nil
	for _, s := range []string{"2026 a", "b", "c", "d"} {
		add(s)
	}
	if len(out) != 1 || out[0] != "2026 a\nb\nc" {
		t.Errorf("max lines: %q", out)
	}
	m.Flush()
	// Max bytes: cut and flagged.
	add("2026-" + strings.Repeat("x", 60))
	add(strings.Repeat("y", 10))
	rec, tr, done = m.Flush()
	if !done || !tr || len(rec) != 64 {
		t.Errorf("max bytes: %d %v %v", len(rec), tr, done)
	}
	if _, err := NewMultiline(MultilineConfig{Start: "(", Timeout: time.Second, MaxLines: 1}, 10, clock); err == nil {
		t.Error("bad pattern accepted")
	}
}

func TestTimeRange(t *testing.T) {
	r := DefaultTimeRange()
	if err := r.Validate(); err != nil {
		t.Fatalf("DefaultTimeRange().Validate() = %v", err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		ts   int64
		want string
	}{
		{now, ""},
		{now - r.MaxPast.Milliseconds(), ""},
		{now - r.MaxPast.Milliseconds() - 1, ReasonTooOld},
		{now + r.MaxFuture.Milliseconds(), ""},
		{now + r.MaxFuture.Milliseconds() + 1, ReasonTooFarFuture},
		{0, ReasonTooOld}, // 1970-01-01T00:00:00Z
		{time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), ReasonTooFarFuture},
		{math.MinInt64, ReasonTooOld},
		{math.MaxInt64, ReasonTooFarFuture},
	} {
		if got := r.Check(tc.ts, now); got != tc.want {
			t.Errorf("Check(%d, now) = %q, want %q", tc.ts, got, tc.want)
		}
	}
	if got := r.Check(math.MaxInt64, math.MinInt64); got != ReasonTooFarFuture {
		t.Errorf("Check(max, min) = %q", got)
	}
	for _, bad := range []TimeRange{{MaxPast: 0, MaxFuture: time.Minute}, {MaxPast: time.Hour, MaxFuture: 2 * time.Hour}} {
		err := bad.Validate()
		if err == nil {
			t.Errorf("%v: Validate() = nil", bad)
		}
	}
	err := TimeRange{MaxPast: time.Second, MaxFuture: 0}.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_past") || !strings.Contains(err.Error(), "max_future") {
		t.Errorf("Validate() = %v, want both keys named", err)
	}
}
