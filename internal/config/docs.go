package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// WriteDocumented prints v, a struct, as YAML after header, with a
// one-line comment above every key: its description from docs (by dotted
// path) and, for a leaf, its value as the default. Decoding the output onto
// a zero value gives v back. A key without a description is an error, so
// that every key added to a configuration is documented.
func WriteDocumented(w io.Writer, v any, docs map[string]string, header string) error {
	var b strings.Builder
	b.WriteString(header)
	d := docWriter{b: &b, docs: docs}
	if err := d.writeStruct(reflect.ValueOf(v), "", 0); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type docWriter struct {
	b    *strings.Builder
	docs map[string]string
}

func (d docWriter) writeStruct(v reflect.Value, path string, depth int) error {
	b := d.b
	indent := strings.Repeat("  ", depth)
	t := v.Type()
	for i := range t.NumField() {
		name, ok := yamlName(t.Field(i))
		if !ok {
			continue
		}
		p := joinPath(path, name)
		doc, ok := d.docs[p]
		if !ok {
			return fmt.Errorf("BUG: config key %s has no description", p)
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			if depth == 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(b, "%s# %s\n%s%s:\n", indent, doc, indent, name)
			if err := d.writeStruct(fv, p, depth+1); err != nil {
				return err
			}
			continue
		}
		if fv.Kind() == reflect.Map && fv.Type().Key().Kind() == reflect.String && fv.Len() > 0 {
			fmt.Fprintf(b, "%s# %s\n%s%s:\n", indent, doc, indent, name)
			if err := d.writeMap(fv, p, depth+1); err != nil {
				return err
			}
			continue
		}
		val, err := yamlValue(fv)
		if err != nil {
			return fmt.Errorf("cannot print %s: %w", p, err)
		}
		shown := val
		if fv.Kind() == reflect.String {
			shown = strconv.Quote(printed(fv))
		}
		fmt.Fprintf(b, "%s# %s Default: %s\n%s%s: %s\n", indent, doc, shown, indent, name, val)
	}
	return nil
}

// writeMap writes a map with string keys as a block mapping in key order,
// each entry documented like a struct field.
func (d docWriter) writeMap(v reflect.Value, path string, depth int) error {
	b := d.b
	indent := strings.Repeat("  ", depth)
	keys := v.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		p := joinPath(path, k.String())
		doc, ok := d.docs[p]
		if !ok {
			return fmt.Errorf("BUG: config key %s has no description", p)
		}
		val, err := yamlValue(v.MapIndex(k))
		if err != nil {
			return fmt.Errorf("cannot print %s: %w", p, err)
		}
		fmt.Fprintf(b, "%s# %s Default: %s\n%s%s: %s\n", indent, doc, val, indent, k.String(), val)
	}
	return nil
}

// yamlValue renders a leaf value in flow style.
func yamlValue(v reflect.Value) (string, error) {
	if v.Type() == durationType {
		return FormatDuration(time.Duration(v.Int())), nil
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range v.Len() {
			s, err := yamlValue(v.Index(i))
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case reflect.Map:
		// Flow style with sorted keys, so the output is stable.
		keys := v.MapKeys()
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			ks, err := yamlValue(k)
			if err != nil {
				return "", err
			}
			vs, err := yamlValue(v.MapIndex(k))
			if err != nil {
				return "", err
			}
			parts = append(parts, ks+": "+vs)
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}", nil
	case reflect.Struct:
		// A list item such as a webhook: a flow mapping of its keys.
		var parts []string
		for i := range v.NumField() {
			name, ok := yamlName(v.Type().Field(i))
			if !ok {
				continue
			}
			s, err := yamlValue(v.Field(i))
			if err != nil {
				return "", err
			}
			parts = append(parts, name+": "+s)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	case reflect.String:
		s := printed(v)
		if s == "" {
			return `""`, nil
		}
		out, err := yaml.Marshal(s)
		return strings.TrimSuffix(string(out), "\n"), err
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), nil
	}
	return "", fmt.Errorf("unsupported kind %s", v.Kind())
}

// printed is the string v shows when printed: a Secret redacted, and a URL
// with the password of its user information hidden.
func printed(v reflect.Value) string {
	if v.Type() == secretType {
		return Secret(v.String()).shown()
	}
	if u, err := url.Parse(v.String()); err == nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return v.String()
}

// FormatDuration writes d the way people do: "1m" rather than "1m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
