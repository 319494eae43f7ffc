package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/tpflow/tpflow/schemas"
)

// Validator is a configuration value that checks itself. Validate reports
// the impossible values among its own fields, each as a *schemas.FieldError
// whose field is the YAML path relative to the value; an error of another
// type is taken to be about the value as a whole.
type Validator interface {
	Validate() error
}

// Validate walks v (a struct, or a pointer to one) and calls Validate on v
// and on every field, list item and map value under it that has one, in
// field order, depth first. Every error is returned as a *schemas.FieldError
// whose field is the full dotted path from v ("aggregator.windows[1]"),
// joined with errors.Join; nil when all are valid. Fields tagged
// `config:"novalidate"` are not walked.
func Validate(v any) error {
	var errs []error
	walk(reflect.ValueOf(v), "", &errs)
	return errors.Join(errs...)
}

var validatorType = reflect.TypeFor[Validator]()

func walk(v reflect.Value, path string, errs *[]error) {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return
	}
	if v.Type().Implements(validatorType) || reflect.PointerTo(v.Type()).Implements(validatorType) {
		var err error
		if v.Type().Implements(validatorType) {
			err = v.Interface().(Validator).Validate()
		} else {
			p := reflect.New(v.Type())
			p.Elem().Set(v)
			err = p.Interface().(Validator).Validate()
		}
		for _, e := range Flatten(err) {
			*errs = append(*errs, atPath(path, e))
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, ok := yamlName(f)
			if !ok || f.Tag.Get("config") == "novalidate" {
				continue
			}
			walk(v.Field(i), joinPath(path, name), errs)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sortKeys(keys)
		for _, k := range keys {
			walk(v.MapIndex(k), joinPath(path, fmt.Sprint(k.Interface())), errs)
		}
	}
}

func sortKeys(keys []reflect.Value) {
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
	})
}

// atPath returns err as a *schemas.FieldError under path.
func atPath(path string, err error) error {
	var fe *schemas.FieldError
	if errors.As(err, &fe) {
		if path == "" {
			return fe
		}
		return schemas.PrefixField(path, fe)
	}
	return &schemas.FieldError{Field: path, Msg: err.Error()}
}

// Check validates v, the value Decode filled, and returns an *Error listing
// the problems found while decoding and every problem Validate reports,
// each placed at the line of its key (see Source.Issue); nil when there
// are none. A value that failed to decode is not reported again.
func (s *Source) Check(v any) error {
	return s.Report(Validate(v))
}

// Report returns an *Error listing the decoding problems and err's, each
// *schemas.FieldError placed at the line of its key and any other error
// about the whole file; nil when there are none.
func (s *Source) Report(err error) error {
	issues := append([]Issue(nil), s.issues...)
	for _, e := range Flatten(err) {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			issues = append(issues, Issue{File: s.file, Msg: e.Error()})
			continue
		}
		if s.afterFailure(fe.Field) {
			continue
		}
		issues = append(issues, s.Issue(fe.Field, fe.Msg))
	}
	if len(issues) == 0 {
		return nil
	}
	sortIssues(issues)
	return &Error{Issues: issues}
}

// afterFailure reports whether path, a parent of it or a value under it
// failed to decode: a complaint about it would only echo the decode error.
func (s *Source) afterFailure(path string) bool {
	for f := range s.failed {
		if f == path || under(path, f) || under(f, path) {
			return true
		}
	}
	return false
}

// under reports whether path is a value under parent.
func under(path, parent string) bool {
	return strings.HasPrefix(path, parent) && len(path) > len(parent) && (path[len(parent)] == '.' || path[len(parent)] == '[')
}

// Issues returns the problems found while decoding.
func (s *Source) Issues() []Issue {
	out := append([]Issue(nil), s.issues...)
	sortIssues(out)
	return out
}

// Load decodes data, the contents of the file called name, onto v (a
// pointer to the defaults) and validates the result; the error is an
// *Error listing every problem with its position.
func Load(name string, data []byte, v any) error {
	src, err := Decode(name, data, v)
	if err != nil {
		return err
	}
	return src.Check(v)
}
