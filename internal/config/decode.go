package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Source remembers where the values of a decoded configuration came from,
// so that problems found later (by Validate, or by the caller) can name a
// file, line and column.
type Source struct {
	file string
	root *yaml.Node // the top-level node; nil when no file or empty
	// flags maps a dotted path to the flag that set it.
	flags map[string]string
	// from maps a path whose value was taken from another key of the file
	// to that key, whose position an issue then names.
	from map[string]string
	// failed holds the paths of values that could not be decoded; Validate
	// complaints about them would only repeat the decode error.
	failed map[string]bool
	// issues are the problems found while decoding.
	issues []Issue
}

// File is the name of the file the source was read from.
func (s *Source) File() string { return s.file }

// SetBy records that flag (such as "--brokers") set the value at path, so
// that a problem with it names the flag rather than a line.
func (s *Source) SetBy(path, flag string) { s.flags[path] = flag }

// TakenFrom records that the value at path was derived from the key at
// from, whose position a problem with it then names.
func (s *Source) TakenFrom(path, from string) { s.from[path] = from }

// Has reports whether the file holds a key at path.
func (s *Source) Has(path string) bool { l, _ := s.Position(path); return l > 0 }

// Position returns the line and column of the key at the dotted path (such
// as "aggregator.windows[1]" or "rules[0].name"), or of the list item for a
// path ending in an index; 0, 0 if it is not in the file.
func (s *Source) Position(path string) (line, col int) {
	if s == nil || s.root == nil {
		return 0, 0
	}
	n := s.root
	if path == "" {
		return n.Line, n.Column
	}
	for _, seg := range splitPath(path) {
		n = resolveAlias(n)
		if n == nil {
			return 0, 0
		}
		if idx, ok := seg.(int); ok {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return 0, 0
			}
			n = n.Content[idx]
			line, col = n.Line, n.Column
			continue
		}
		if n.Kind != yaml.MappingNode {
			return 0, 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg.(string) {
				next = n.Content[i+1]
				line, col = n.Content[i].Line, n.Content[i].Column
			}
		}
		if next == nil {
			return 0, 0
		}
		n = next
	}
	return line, col
}

// Issue returns a problem with the value at path placed in the file: at
// its key's position, at the key it was taken from, or naming the flag that
// set it or "default" when the file does not hold it.
func (s *Source) Issue(path, msg string) Issue {
	is := Issue{File: s.file, Path: path, Msg: msg}
	if flag, ok := s.flagFor(path); ok {
		is.Source = "set by " + flag
	} else if l, c := s.Position(path); l > 0 {
		is.Line, is.Column = l, c
	} else if l, c := s.Position(s.from[path]); s.from[path] != "" && l > 0 {
		is.Line, is.Column = l, c
	} else {
		is.Source = "default"
	}
	return is
}

// flagFor reports the flag that set path or a parent of it.
func (s *Source) flagFor(path string) (string, bool) {
	for p, f := range s.flags {
		if path == p || under(path, p) {
			return f, true
		}
	}
	return "", false
}

// Decode decodes data, the contents of the file called name, strictly onto
// v, a pointer to a value holding the defaults: a key absent from the file
// keeps its default, and so does a key with no value. Malformed YAML is
// returned at once as an *Error; unknown keys, duplicate keys and values of
// the wrong type are kept in the Source, for Check to report together with
// Validate's findings (a value that failed to decode keeps its default).
// Empty data, or only comments, decode to the defaults. Every Secret is
// then read from its KEY_file or has its ${NAME} references expanded.
func Decode(name string, data []byte, v any) (*Source, error) {
	src := &Source{file: name, flags: map[string]string{}, from: map[string]string{}, failed: map[string]bool{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return src, nil
		}
		return src, &Error{Issues: []Issue{syntaxIssue(name, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return src, &Error{Issues: []Issue{{File: name, Line: extra.Line, Column: extra.Column, Msg: "only one YAML document is allowed"}}}
	} else if !errors.Is(err, io.EOF) {
		return src, &Error{Issues: []Issue{syntaxIssue(name, err)}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if isNull(root) {
		return src, nil
	}
	src.root = root

	rv := reflect.ValueOf(v).Elem()
	defaults := reflect.New(rv.Type()).Elem()
	defaults.Set(rv) // a shallow copy: yaml.v3 replaces lists, and maps it empties
	idx := indexNodes(root, rv.Type())

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return src, &Error{Issues: []Issue{syntaxIssue(name, err)}}
		}
		for _, msg := range te.Errors {
			src.addIssue(idx.place(msg))
		}
	}
	for _, e := range idx.entries {
		if e.isKey || e.used || e.typ == nil || e.node.Kind != yaml.ScalarNode {
			continue
		}
		t := deref(e.typ)
		switch {
		case isNull(e.node) && (e.typ.Kind() == reflect.Slice || e.typ.Kind() == reflect.Map):
			// yaml.v3 empties a list or map given no value; it keeps
			// its default, as every other key does.
			if dst, def := valueAt(rv, e.path), valueAt(defaults, e.path); dst.IsValid() && def.IsValid() && dst.CanSet() {
				dst.Set(def)
			}
		case t.Kind() == reflect.Bool && e.node.ShortTag() == "!!str":
			// yaml.v3 takes yes, on and the like for true; the
			// configuration says true or false.
			src.addIssue(e.issue(fmt.Sprintf("cannot parse %s as a boolean (true or false)", describe(e.node))))
		case isInt(t) && e.node.ShortTag() == "!!float":
			// yaml.v3 truncates 1.5 to 1.
			src.addIssue(e.issue(fmt.Sprintf("cannot parse %s as an integer", describe(e.node))))
		case isFloat(t) && e.node.ShortTag() == "!!float":
			if f, err := strconv.ParseFloat(strings.TrimPrefix(e.node.Value, "+"), 64); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				src.addIssue(e.issue(fmt.Sprintf("cannot parse %s as a number", describe(e.node))))
			}
		}
	}
	src.resolveSecrets(rv, "")
	for i := range src.issues {
		src.issues[i].File = name
	}
	return src, nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func isFloat(t reflect.Type) bool { return t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64 }

func (s *Source) addIssue(is Issue, failed bool) {
	s.issues = append(s.issues, is)
	if failed {
		s.failed[is.Path] = true
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxIssue turns a yaml.v3 parse error into an issue with a line.
func syntaxIssue(file string, err error) Issue {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Issue{File: file, Line: line, Msg: "malformed YAML: " + m[2]}
	}
	return Issue{File: file, Msg: "malformed YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// entry is one node of the document with its path and the Go type it
// decodes into (nil when the key is unknown).
type entry struct {
	path  string // of the value; for a key, of its mapping
	node  *yaml.Node
	isKey bool
	typ   reflect.Type // for a key, the type of its mapping
	used  bool
}

func (e *entry) issue(msg string) (Issue, bool) {
	return Issue{Line: e.node.Line, Column: e.node.Column, Path: e.path, Msg: msg}, true
}

type index struct{ entries []*entry }

// indexNodes lists every node under n, in document order, with its path
// and the type at that path of t.
func indexNodes(n *yaml.Node, t reflect.Type) *index {
	x := &index{}
	x.walk(n, t, "", 0)
	return x
}

func (x *index) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n == nil || depth > 100 {
		return
	}
	// An alias is not followed: its anchor is indexed where it stands,
	// and expanding aliases could grow without bound.
	x.entries = append(x.entries, &entry{path: path, node: n, typ: t})
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			x.entries = append(x.entries, &entry{path: path, node: k, isKey: true, typ: t})
			x.walk(n.Content[i+1], fieldType(t, k.Value), joinPath(path, k.Value), depth+1)
		}
	case yaml.SequenceNode:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i, c := range n.Content {
			x.walk(c, et, fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	}
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.*) not found in type (.*)$`)
	duplicateRE    = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	unmarshalRE    = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.*)$")
	lineRE         = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// place finds the node a yaml.v3 type error is about and words it as an
// issue; failed says whether a value failed to decode.
func (x *index) place(msg string) (Issue, bool) {
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if e := x.find(line, func(e *entry) bool { return e.isKey && e.node.Value == m[2] }); e != nil {
			text := fmt.Sprintf("unknown key %q", m[2])
			if s := Suggest(m[2], yamlNames(e.typ)); s != "" {
				text += fmt.Sprintf(" (did you mean %q?)", s)
			}
			is, _ := e.issue(text)
			is.Key = m[2]
			return is, false
		}
	}
	if m := duplicateRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, _ := strconv.Unquote(m[2])
		if e := x.find(line, func(e *entry) bool { return e.isKey && e.node.Value == key }); e != nil {
			is, _ := e.issue(fmt.Sprintf("duplicate key %q (first on line %s)", key, m[3]))
			is.Key = key
			return is, true
		}
	}
	if m := unmarshalRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		tag, val := m[2], m[3]
		e := x.find(line, func(e *entry) bool {
			if e.node.ShortTag() != tag {
				return false
			}
			if p, ok := strings.CutSuffix(val, "..."); ok {
				return strings.HasPrefix(e.node.Value, p)
			}
			return val == "" || e.node.Value == val
		})
		if e != nil {
			return e.issue(typeMessage(e))
		}
	}
	// Another error, such as one of a type's own UnmarshalYAML: the
	// first value on its line.
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if e := x.find(line, func(e *entry) bool { return !e.isKey }); e != nil {
			return e.issue(m[2])
		}
		return Issue{Line: line, Msg: m[2]}, false
	}
	return Issue{Msg: msg}, false
}

// find returns the first entry not yet used on line that ok accepts, and
// marks it used.
func (x *index) find(line int, ok func(*entry) bool) *entry {
	for _, e := range x.entries {
		if !e.used && e.node.Line == line && e.node.Kind != yaml.AliasNode && ok(e) {
			e.used = true
			return e
		}
	}
	return nil
}

// typeMessage says why the node of e does not decode into its type.
func typeMessage(e *entry) string {
	n, t := e.node, deref(e.typ)
	if e.isKey {
		return "expected a key, got " + describe(n)
	}
	if t == nil {
		return "cannot decode " + describe(n)
	}
	if t == reflect.TypeFor[time.Duration]() {
		if n.Kind != yaml.ScalarNode {
			return fmt.Sprintf("expected a duration such as \"10s\", got %s", describe(n))
		}
		hint := ""
		if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
			hint = fmt.Sprintf(" (add a unit, as in \"%ss\")", n.Value)
		}
		return fmt.Sprintf("cannot parse %q as a duration%s", n.Value, hint)
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "expected a mapping of keys, got " + describe(n)
	case reflect.Slice, reflect.Array:
		return "expected a list, got " + describe(n)
	case reflect.String:
		return "expected a string, got " + describe(n)
	case reflect.Bool:
		return fmt.Sprintf("cannot parse %s as a boolean (true or false)", describe(n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(n.Value, 0, 64); err == nil && n.Tag == "!!int" {
			return n.Value + " is out of range"
		}
		return fmt.Sprintf("cannot parse %s as an integer", describe(n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(n.Value, 0, 64); err == nil && n.Tag == "!!int" {
			return n.Value + " is out of range"
		}
		return fmt.Sprintf("cannot parse %s as a non-negative integer", describe(n))
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("cannot parse %s as a number", describe(n))
	}
	return fmt.Sprintf("cannot decode %s into %s", describe(n), t)
}

// fieldType is the type of the value under key in a value of type t: a
// struct's field by its YAML name, a map's element; nil if none.
func fieldType(t reflect.Type, key string) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for i := range t.NumField() {
			if name, ok := yamlName(t.Field(i)); ok && name == key {
				return t.Field(i).Type
			}
		}
	}
	return nil
}

// valueAt returns the value at the dotted path in v, or an invalid Value.
// Map elements are not addressable: only struct fields and list items can
// be set through it.
func valueAt(v reflect.Value, path string) reflect.Value {
	for _, seg := range splitPath(path) {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		switch s := seg.(type) {
		case int:
			if v.Kind() != reflect.Slice || s >= v.Len() {
				return reflect.Value{}
			}
			v = v.Index(s)
		case string:
			switch v.Kind() {
			case reflect.Struct:
				f, ok := fieldByName(v.Type(), s)
				if !ok {
					return reflect.Value{}
				}
				v = v.Field(f)
			case reflect.Map:
				v = v.MapIndex(reflect.ValueOf(s).Convert(v.Type().Key()))
			default:
				return reflect.Value{}
			}
		}
		if !v.IsValid() {
			return v
		}
	}
	return v
}

func fieldByName(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok && name == key {
			return i, true
		}
	}
	return 0, false
}

// yamlNames lists the YAML keys of a struct type t.
func yamlNames(t reflect.Type) []string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok {
			names = append(names, name)
		}
	}
	return names
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
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe quotes a scalar's text or names a node's kind.
func describe(n *yaml.Node) string {
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

// Strings is a list of strings that may also be written as one string:
// "by: app" is "by: [app]".
type Strings []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Strings{n.Value}
		return nil
	}
	var l []string
	err := n.Decode(&l)
	*s = l
	return err
}
