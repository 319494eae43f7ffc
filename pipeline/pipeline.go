// Package pipeline holds the small types shared by every transport and role
// of the tpflow pipeline. Its main export is the permanent-error marker:
// input that can never succeed (a truncated batch, an unknown schema
// version) is wrapped with Permanent at the edge where it is detected, so
// that retry loops further up give up at once and route the record to the
// dead-letter queue instead of retrying it forever.
package pipeline

import "errors"

// permanentError marks its wrapped error as not retryable.
type permanentError struct {
	err error
}

// Error implements error.
func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }

// Unwrap returns the wrapped error.
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that IsPermanent reports true for it and for every
// error that wraps the result. errors.Is and errors.As still see err through
// the wrapper. Permanent(nil) returns nil, and wrapping an error that is
// already permanent returns it unchanged.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent. A nil error is not permanent.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}
