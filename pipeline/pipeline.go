// Package pipeline holds the small types shared by every transport and role
// of the tpflow pipeline: the one permanent-error mechanism and the one
// retry loop that checks it. Input that can never succeed (a truncated
// batch, an unknown schema version, rows the schema cannot hold, a 4xx
// answer) is wrapped with Permanent at the edge where it is detected, so
// that Retry, and the loops further up, give up at once and route the
// record to the dead-letter queue instead of retrying it forever.
package pipeline

import "errors"

// ErrPermanent is what every permanent error matches with errors.Is: an
// error marked with Permanent, and the error types that mark themselves
// (clickhouse.InvalidRowsError).
var ErrPermanent = errors.New("permanent error")

// permanentError marks its wrapped error as not retryable.
type permanentError struct {
	err error
}

// Error implements error.
func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }

// Unwrap returns the wrapped error.
func (e *permanentError) Unwrap() error { return e.err }

// Is makes errors.Is(e, ErrPermanent) true.
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

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

// IsPermanent reports whether err, or any error it wraps, is permanent:
// errors.Is(err, ErrPermanent). A nil error is not permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
