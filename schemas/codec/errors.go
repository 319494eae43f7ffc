package codec

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// Sentinel errors returned (wrapped) by Decode; test with errors.Is.
var (
	// ErrTruncated means the input ends in the middle of a field.
	ErrTruncated = errors.New("truncated batch")
	// ErrMalformed means the input is not a valid Protobuf encoding of an
	// EventBatch: a bad varint, a bad wire type, a length that overruns its
	// enclosing message, or (from Batch.Full) invalid UTF-8.
	ErrMalformed = errors.New("malformed batch")
	// ErrUnknownVersion means schema_version is missing or is not
	// schemas.SchemaVersion.
	ErrUnknownVersion = errors.New("unknown schema version")
	// ErrOversized means the input is longer than the decoder's MaxBytes.
	ErrOversized = errors.New("batch too large")
	// ErrBadReference means an index into the symbol table, the label set
	// table or the series table is out of range, a label set has an odd
	// number of references, or symbol 0 is not "".
	ErrBadReference = errors.New("bad reference")
)

// Reason returns a short, stable label for the class of err, for dead-letter
// reasons and counter labels: "truncated", "malformed", "unknown_version",
// "oversized", "bad_reference", or "other" for anything else (including nil).
func Reason(err error) string {
	switch {
	case err == nil:
		return "other"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnknownVersion):
		return "unknown_version"
	case errors.Is(err, ErrOversized):
		return "oversized"
	case errors.Is(err, ErrBadReference):
		return "bad_reference"
	}
	return "other"
}

// wireErr turns a negative protowire length into ErrTruncated or ErrMalformed.
func wireErr(n int) error {
	err := protowire.ParseError(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return fmt.Errorf("%v: %w", err, ErrMalformed)
}

func wireTypeErr(num protowire.Number, typ protowire.Type) error {
	return fmt.Errorf("field %d has wire type %d: %w", num, typ, ErrMalformed)
}
