package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
)

// Redacted is what a Secret that holds a value prints as.
const Redacted = "[REDACTED]"

// Secret is a configuration value that must never be shown: a password, a
// signing key. It decodes from YAML like a string, and every way of
// printing it (fmt's %s, %v and %#v, YAML, JSON, log/slog) gives Redacted;
// an empty Secret prints as "", so that printed defaults still load back.
// Reveal gives the value to the code that uses it.
//
// A Secret field named KEY in YAML may have a string field KEY_file beside
// it, the path of a file holding the value; Decode reads it and trims the
// trailing newline. A value written in the file may name environment
// variables as ${NAME}, which Decode expands. Both are errors placed at
// their key: a file that cannot be read (with its path), an unset
// variable, and KEY given together with KEY_file.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.shown()) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.shown(), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.shown()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// RedactURL returns s with the password of its user information replaced,
// for printing a URL such as a DSN; s unchanged when it has none, and a
// placeholder when it does not parse (it might still hold one).
func RedactURL(s string) string {
	if _, err := url.Parse(s); err != nil {
		return "(unparsable URL)"
	}
	return printed(reflect.ValueOf(s))
}

var (
	secretType = reflect.TypeFor[Secret]()
	envRefRE   = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// resolveSecrets fills every Secret under v (addressable) from its KEY_file
// and expands ${NAME} in the others, adding an issue to s for each
// problem. path is v's dotted path.
func (s *Source) resolveSecrets(v reflect.Value, path string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		files := map[string]reflect.Value{}
		for i := range t.NumField() {
			if name, ok := yamlName(t.Field(i)); ok && t.Field(i).Type.Kind() == reflect.String {
				files[name] = v.Field(i)
			}
		}
		for i := range t.NumField() {
			name, ok := yamlName(t.Field(i))
			if !ok {
				continue
			}
			fv, p := v.Field(i), joinPath(path, name)
			if fv.Type() != secretType {
				s.resolveSecrets(fv, p)
				continue
			}
			file := ""
			if f, ok := files[name+"_file"]; ok {
				file = f.String()
			}
			if val, ok := s.secretValue(fv.String(), file, p); ok {
				fv.SetString(val)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			s.resolveSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// secretValue returns the value of the secret at path given as value or in
// file, and false after adding an issue.
func (s *Source) secretValue(value, file, path string) (string, bool) {
	if file != "" {
		if value != "" {
			s.addIssue(s.Issue(path+"_file", fmt.Sprintf("give %s or %s_file, not both", lastKey(path), lastKey(path))), true)
			return "", false
		}
		data, err := os.ReadFile(file)
		if err != nil {
			s.addIssue(s.Issue(path+"_file", fmt.Sprintf("cannot read the secret: %v", err)), true)
			return "", false
		}
		return strings.TrimRight(string(data), "\r\n"), true
	}
	var missing []string
	out := envRefRE.ReplaceAllStringFunc(value, func(ref string) string {
		name := envRefRE.FindStringSubmatch(ref)[1]
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		s.addIssue(s.Issue(path, fmt.Sprintf("environment variable %s is not set", strings.Join(missing, ", "))), true)
		return "", false
	}
	return out, true
}

// lastKey is the last key of a dotted path.
func lastKey(path string) string {
	return path[strings.LastIndex(path, ".")+1:]
}
