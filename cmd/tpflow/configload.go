package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tpflow/tpflow/schemas"
)

// ConfigIssue is one problem found in a configuration, with where it is.
type ConfigIssue struct {
	// File is the configuration file's name as given; empty when no file
	// was read.
	File string
	// Line is the 1-based line in File, 0 when the value is not in the file.
	Line int
	// Path is the dotted YAML path of the key, empty for the whole file.
	Path string
	// Msg says what is wrong.
	Msg string
	// Source says where a value not in the file came from: "default" or a
	// flag such as "--brokers".
	Source string
}

// String formats the issue as "FILE:LINE: PATH: MSG", naming the source of
// a value that is not in the file.
func (i ConfigIssue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			fmt.Fprintf(&b, ":%d", i.Line)
		}
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Msg)
	if i.Source != "" {
		fmt.Fprintf(&b, " (%s)", i.Source)
	}
	return b.String()
}

// ConfigError lists every problem in a configuration, in file order.
type ConfigError struct {
	// Issues are the problems, those with a line first, by line.
	Issues []ConfigIssue
}

// Error implements error: one issue per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// configSource remembers where the values of a loaded Config came from, so
// that errors found later by Validate can name a file and line.
type configSource struct {
	file string
	root *yaml.Node // the top-level mapping; nil when no file or empty
	// flags maps a dotted path to the flag that set it.
	flags map[string]string
	// decodeIssues are the unknown keys and wrong types found while
	// decoding; check reports them together with Validate's findings.
	decodeIssues []ConfigIssue
	// failed holds the paths of values that could not be decoded; Validate
	// complaints about them would only repeat the decode error.
	failed map[string]bool
	// from maps a path whose value the loader took from another key of
	// the file to that key, whose line an issue then names.
	from map[string]string
}

// loadConfig decodes data (the contents of the file called name) onto the
// defaults, lets override change the result (the command-line overrides,
// recorded in src.flags), and validates it. On failure the error is a
// *ConfigError listing every problem. An empty name with nil data means no
// file: the defaults.
func loadConfig(name string, data []byte, override func(cfg *Config, src *configSource)) (*Config, error) {
	cfg, src, err := parseConfig(name, data)
	if err != nil {
		return nil, err
	}
	src.databaseFromDSN(&cfg)
	if override != nil {
		override(&cfg, src)
	}
	if err := src.check(cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// databaseFromDSN keeps the older form of the clickhouse section working:
// a file that gives the database only as the path of clickhouse.dsn
// (clickhouse://HOST:PORT/DB) has it moved to clickhouse.database, which is
// where clickhouse.Config reads it.
func (s *configSource) databaseFromDSN(cfg *Config) {
	if s.root == nil || lookupLine(s.root, "clickhouse.database") > 0 || lookupLine(s.root, "clickhouse.dsn") == 0 {
		return
	}
	if withClickHouseDSN(&cfg.ClickHouse, cfg.ClickHouse.DSN) {
		s.from = map[string]string{"clickhouse.database": "clickhouse.dsn"}
	}
}

// parseConfig decodes data onto DefaultConfig strictly. Malformed YAML is
// returned as an error at once; unknown keys, duplicate keys and values of
// the wrong type are kept in the source for check to report together with
// Validate's findings (a value that failed to decode keeps its default).
func parseConfig(name string, data []byte) (Config, *configSource, error) {
	cfg := DefaultConfig()
	src := &configSource{file: name, flags: map[string]string{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, src, nil // empty file: all defaults
		}
		return cfg, src, &ConfigError{Issues: []ConfigIssue{yamlSyntaxIssue(name, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return cfg, src, &ConfigError{Issues: []ConfigIssue{{File: name, Line: extra.Line, Msg: "only one YAML document is allowed"}}}
	} else if !errors.Is(err, io.EOF) {
		return cfg, src, &ConfigError{Issues: []ConfigIssue{yamlSyntaxIssue(name, err)}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if isNull(root) {
		return cfg, src, nil // only comments, or an explicit null
	}
	d := &nodeDecoder{file: name}
	d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	if root.Kind == yaml.MappingNode {
		src.root = root
	}
	src.decodeIssues = d.issues
	src.failed = d.failed
	return cfg, src, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlSyntaxIssue turns a yaml.v3 parse error into an issue with a line.
func yamlSyntaxIssue(file string, err error) ConfigIssue {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return ConfigIssue{File: file, Line: line, Msg: "malformed YAML: " + m[2]}
	}
	return ConfigIssue{File: file, Msg: "malformed YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// check runs cfg.Validate and places every *schemas.FieldError at the line
// of its key, or names its source when the key is not in the file. The
// result also holds the problems found while decoding.
func (s *configSource) check(cfg Config) error {
	issues := append([]ConfigIssue(nil), s.decodeIssues...)
	for _, e := range flattenErrors(cfg.Validate()) {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			issues = append(issues, ConfigIssue{File: s.file, Msg: e.Error()})
			continue
		}
		if s.failed[fe.Field] {
			continue
		}
		is := ConfigIssue{File: s.file, Path: fe.Field, Msg: fe.Msg}
		if flag, ok := s.flagFor(fe.Field); ok {
			is.Source = "set by " + flag
		} else if line := lookupLine(s.root, fe.Field); line > 0 {
			is.Line = line
		} else if line := lookupLine(s.root, s.from[fe.Field]); line > 0 {
			is.Line = line
		} else {
			is.Source = "default"
		}
		issues = append(issues, is)
	}
	if len(issues) == 0 {
		return nil
	}
	sortIssues(issues)
	return &ConfigError{Issues: issues}
}

// flagFor reports the flag that set path or a parent of it.
func (s *configSource) flagFor(path string) (string, bool) {
	for p, f := range s.flags {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return f, true
		}
	}
	return "", false
}

// flattenErrors unwraps errors.Join trees into their leaves.
func flattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// sortIssues orders issues with a line by line, then the others, keeping
// the order of equal ones.
func sortIssues(issues []ConfigIssue) {
	sort.SliceStable(issues, func(i, j int) bool {
		li, lj := issues[i].Line, issues[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// lookupLine returns the line of the key at the dotted path (such as
// "aggregator.windows[1]") in the mapping root, or 0 if it is not there.
func lookupLine(root *yaml.Node, path string) int {
	n := root
	line := 0
	for _, seg := range splitPath(path) {
		n = resolveAlias(n)
		if n == nil {
			return 0
		}
		if idx, ok := seg.(int); ok {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return 0
			}
			n = n.Content[idx]
			line = n.Line
			continue
		}
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg.(string) {
				next = n.Content[i+1]
				line = n.Content[i].Line
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return line
}

// splitPath splits "a.b[2].c" into "a", "b", 2, "c".
func splitPath(path string) []any {
	var out []any
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			if !ok {
				break
			}
			if i, err := strconv.Atoi(num); err == nil {
				out = append(out, i)
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// nodeDecoder decodes a yaml.Node tree onto a Go value by walking both,
// collecting every problem instead of stopping at the first. A null value
// (a key with nothing after the colon) keeps the default.
type nodeDecoder struct {
	file   string
	issues []ConfigIssue
	failed map[string]bool
}

// errorf records that the value at path could not be decoded.
func (d *nodeDecoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.issues = append(d.issues, ConfigIssue{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	d.failed[path] = true
}

// keyErrorf records a problem with a key of the mapping at path, which
// says nothing about the values already decoded there.
func (d *nodeDecoder) keyErrorf(n *yaml.Node, path, format string, args ...any) {
	d.issues = append(d.issues, ConfigIssue{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

func (d *nodeDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "%s", yamlErrorText(err))
		}
		return
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a duration such as \"10s\", got %s", kindName(n))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			hint := ""
			if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
				hint = fmt.Sprintf(" (add a unit, as in \"%ss\")", n.Value)
			}
			d.errorf(n, path, "cannot parse %q as a duration%s", n.Value, hint)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "cannot parse %s as a boolean (true or false)", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errorf(n, path, "cannot parse %s as an integer", describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n, path, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&u) != nil {
			d.errorf(n, path, "cannot parse %s as a non-negative integer", describe(n))
			return
		}
		if v.OverflowUint(u) {
			d.errorf(n, path, "%d is out of range", u)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil ||
			math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "cannot parse %s as a number", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			d.decodeYAML(n, v, path)
			return
		}
		d.decodeMap(n, v, path)
	default:
		// Types the config does not use today (pointers, maps with other
		// keys) go through yaml.v3 itself; its errors already carry a line.
		d.decodeYAML(n, v, path)
	}
}

// decodeYAML decodes n onto v with yaml.v3 itself.
func (d *nodeDecoder) decodeYAML(n *yaml.Node, v reflect.Value, path string) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.errorf(n, path, "%s", yamlErrorText(err))
	}
}

// decodeMap decodes a mapping onto a map with string keys. The keys of the
// file are added to a copy of the default map, so that setting one
// partition count keeps the others; which keys are allowed is for the
// section's Validate to say.
func (d *nodeDecoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), v.Len()+len(n.Content)/2)
	for it := v.MapRange(); it.Next(); {
		m.SetMapIndex(it.Key(), it.Value())
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.keyErrorf(k, path, "expected a key, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.keyErrorf(k, path, "duplicate key %q (first on line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		key := reflect.ValueOf(k.Value).Convert(v.Type().Key())
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := m.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		d.decode(val, elem, joinPath(path, k.Value))
		m.SetMapIndex(key, elem)
	}
	v.Set(m)
}

// yamlErrorText flattens an error from yaml.v3's Decode to one line without
// the line numbers the issue already carries.
func yamlErrorText(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
			m = rest
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

func (d *nodeDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.keyErrorf(k, path, "expected a key, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.keyErrorf(k, path, "duplicate key %q (first on line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for name := range fields {
				names = append(names, name)
			}
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.keyErrorf(k, path, "%s", msg)
			continue
		}
		d.decode(val, v.Field(idx), joinPath(path, k.Value))
	}
}

// yamlFields maps the YAML key of each exported field of t to its index.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok {
			m[name] = i
		}
	}
	return m
}

// yamlName is the YAML key of the struct field f; ok is false for a field
// that is not decoded (unexported, or tagged "-").
func yamlName(f reflect.StructField) (name string, ok bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ = strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, true
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// describe quotes a scalar's text or names a node's kind.
func describe(n *yaml.Node) string { return kindName(n) }

// suggest returns the candidate closest to key by edit distance, if it is
// close enough to be a likely typo, else "".
func suggest(key string, candidates []string) string {
	sort.Strings(candidates) // deterministic among equals
	best, bestD := "", math.MaxInt
	lk := strings.ToLower(key)
	for _, c := range candidates {
		// Among equally close candidates, one of the key's length wins:
		// "aggregater" is aggregator mistyped more likely than aggregate
		// with a letter added.
		d := editDistance(lk, c)
		if d < bestD || d == bestD && lenDiff(c, key) < lenDiff(best, key) {
			best, bestD = c, d
		}
	}
	if bestD <= max(1, (len(key)+1)/3) {
		return best
	}
	return ""
}

func lenDiff(a, b string) int { return max(len(a)-len(b), len(b)-len(a)) }

// editDistance is the Levenshtein distance between a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
