package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// upper is a yaml.Unmarshaler: yaml.v3 calls it, and the loader places
// its error.
type upper string

func (u *upper) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" || n.Value == "bad" {
		// A *yaml.TypeError is collected with the other problems; any
		// other error would end decoding.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: upper wants a non-empty word", n.Line)}}
	}
	*u = upper(strings.ToUpper(n.Value))
	return nil
}

// kinds holds one field of every kind the decoder walks, so that a section
// type from another package with such fields decodes as strictly.
type kinds struct {
	U       uint8          `yaml:"u"`
	I8      int8           `yaml:"i8"`
	F       float64        `yaml:"f"`
	B       bool           `yaml:"b"`
	S       string         `yaml:"s"`
	D       time.Duration  `yaml:"d"`
	M       map[string]int `yaml:"m"`
	Up      upper          `yaml:"up"`
	Skipped int            `yaml:"-"`
	NoTag   int
	private int // never decoded: unexported
}

var _ = kinds{private: 0} // private exists only to show it is not decoded

func decodeKinds(t *testing.T, src string) (kinds, []string) {
	t.Helper()
	v := kinds{S: "default", D: time.Second, Skipped: 7}
	issues := decodeIssues(t, "k.yaml", src, &v)
	return v, issues
}

// decodeIssues decodes src, the file called name, onto v and returns its
// issues as text.
func decodeIssues(t *testing.T, name, src string, v any) []string {
	t.Helper()
	s, err := Decode(name, []byte(src), v)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, is := range s.Issues() {
		msgs = append(msgs, is.String())
	}
	return msgs
}

func TestDecodeKinds(t *testing.T) {
	got, issues := decodeKinds(t, "u: 200\ni8: -100\nf: 1.5e3\nb: false\ns:\nd: 1m30s\nm: {a: 1, b: 2}\nup: word\nnotag: 3\n")
	if len(issues) != 0 {
		t.Fatalf("issues: %v", issues)
	}
	want := kinds{U: 200, I8: -100, F: 1500, S: "default", D: 90 * time.Second,
		M: map[string]int{"a": 1, "b": 2}, Up: "WORD", Skipped: 7, NoTag: 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	_, issues = decodeKinds(t, strings.Join([]string{
		"u: -1",      // 1
		"i8: 300",    // 2
		"f: .nan",    // 3
		"b: 1",       // 4
		"s: [x]",     // 5
		"d: {a: 1}",  // 6
		"m: [1]",     // 7
		"up: bad",    // 8
		"skipped: 1", // 9
		"private: 1", // 10
		"? [k]\n: v", // 11
	}, "\n")+"\n")
	want2 := []string{
		`k.yaml:1:4: u: cannot parse "-1" as a non-negative integer`,
		`k.yaml:2:5: i8: 300 is out of range`,
		`k.yaml:3:4: f: cannot parse ".nan" as a number`,
		`k.yaml:4:4: b: cannot parse "1" as a boolean (true or false)`,
		`k.yaml:5:4: s: expected a string, got a list`,
		`k.yaml:6:4: d: expected a duration such as "10s", got a mapping`,
		`k.yaml:7:4: m: expected a mapping of keys, got a list`,
		`k.yaml:8:5: up: upper wants a non-empty word`,
		`k.yaml:9:1: unknown key "skipped"`,
		`k.yaml:10:1: unknown key "private"`,
		`k.yaml:11:3: expected a key, got a list`,
	}
	if !reflect.DeepEqual(issues, want2) {
		t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(issues, "\n"), strings.Join(want2, "\n"))
	}

	_, issues = decodeKinds(t, "u: 256\n")
	if want := []string{`k.yaml:1:4: u: 256 is out of range`}; !reflect.DeepEqual(issues, want) {
		t.Errorf("uint overflow: %v, want %v", issues, want)
	}
	// A duplicate key fails its whole mapping in yaml.v3, so it is tried
	// alone.
	_, issues = decodeKinds(t, "u: 1\nb: true\nu: 2\n")
	if want := []string{`k.yaml:3:1: duplicate key "u" (first on line 1)`}; !reflect.DeepEqual(issues, want) {
		t.Errorf("duplicate: %v, want %v", issues, want)
	}
	// yaml.v3 takes yes and on for true; the loader does not.
	_, issues = decodeKinds(t, "b: yes\n")
	if want := []string{`k.yaml:1:4: b: cannot parse "yes" as a boolean (true or false)`}; !reflect.DeepEqual(issues, want) {
		t.Errorf("yes: %v, want %v", issues, want)
	}
	// A key with no value keeps its default, a map included.
	v := kinds{S: "default", M: map[string]int{"a": 1}}
	if src, err := Decode("k.yaml", []byte("s:\nm:\n"), &v); err != nil || len(src.Issues()) != 0 ||
		v.S != "default" || !reflect.DeepEqual(v.M, map[string]int{"a": 1}) {
		t.Errorf("null values: %+v, %v, %v", v, err, src.Issues())
	}
}

func TestYAMLValueRoundTripsEveryKind(t *testing.T) {
	// print-defaults must be able to print any field a section type from
	// another package may bring, such as a map of partition counts.
	in := kinds{U: 3, I8: -2, F: 0.25, B: true, S: "a: b", D: 1500 * time.Millisecond,
		M: map[string]int{"calls": 8, "alerts": 1}, Up: "X", NoTag: 4}
	// A struct prints as a flow mapping of every field.
	text, err := yamlValue(reflect.ValueOf(in))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, ", m: {alerts: 1, calls: 8}, ") {
		t.Errorf("map not in sorted flow style:\n%s", text)
	}
	got, issues := decodeKinds(t, text)
	if len(issues) > 0 {
		t.Fatalf("issues %v in:\n%s", issues, text)
	}
	in.Skipped = 7 // not printed: keeps decodeKinds' default
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip of\n%s\ngave %+v, want %+v", text, got, in)
	}
	// A list of structs, such as webhooks, prints as flow mappings, its
	// secrets redacted.
	hooks, err := yamlValue(reflect.ValueOf([]hook{{URL: "http://h", Secret: testSecret}}))
	if want := `[{url: http://h, secret: '[REDACTED]', secret_file: ""}]`; err != nil || hooks != want {
		t.Errorf("yamlValue of a list of structs = %s (err %v), want %s", hooks, err, want)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"aggregator", "aggregate", "kafka", "clickhouse", "sink", "broker", "http", "log"}
	tests := map[string]string{
		"aggregater": "aggregator",
		"agregate":   "aggregate",
		"sinks":      "sink",
		"Kafka":      "kafka",
		"clickhous":  "clickhouse",
		"brokers":    "broker",
		"htpp":       "http",
		"logs":       "log",
		"db":         "",
		"alerting":   "",
		"":           "",
	}
	for in, want := range tests {
		if got := Suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3},
		{"pane", "pan", 1}, {"pane", "pain", 2}, {"grace", "grace", 0}, {"ab", "ba", 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSplitPath(t *testing.T) {
	got := splitPath("aggregator.windows[1].x[2][3]")
	want := []any{"aggregator", "windows", 1, "x", 2, 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                       "0s",
		500 * time.Millisecond:  "500ms",
		10 * time.Second:        "10s",
		time.Minute:             "1m",
		90 * time.Second:        "1m30s",
		24 * time.Hour:          "24h",
		time.Hour + time.Minute: "1h1m",
		time.Hour + time.Second: "1h0m1s",
	}
	for d, want := range tests {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q parses back as %v, %v", d, FormatDuration(d), back, err)
		}
	}
}
