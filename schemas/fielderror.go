package schemas

import (
	"errors"
	"fmt"
)

// FieldError says which configuration key holds an impossible value. Field is
// the dotted YAML path relative to the Config that reported it (for example
// "windows[1]"); the config loader prefixes its section and adds the file and
// line.
type FieldError struct {
	Field string
	Msg   string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Fieldf returns a *FieldError for field with a formatted message.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// PrefixField returns err with prefix+"." prepended to the field of every
// *FieldError in it (errors.Join trees included); other errors are returned
// unchanged.
func PrefixField(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = PrefixField(prefix, e)
		}
		return errors.Join(out...)
	}
	if errors.As(err, &fe) {
		f := prefix
		if fe.Field != "" {
			if fe.Field[0] == '[' {
				f += fe.Field
			} else {
				f += "." + fe.Field
			}
		}
		return &FieldError{Field: f, Msg: fe.Msg}
	}
	return err
}
