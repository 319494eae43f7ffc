package pipeline

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestPermanent(t *testing.T) {
	base := errors.New("truncated batch")
	perm := Permanent(base)
	wrapped := fmt.Errorf("cannot decode batch at tpflow.calls/3@17: %w", perm)
	joined := errors.Join(io.EOF, perm)

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"plain wrapped", fmt.Errorf("x: %w", base), false},
		{"permanent", perm, true},
		{"wrapped permanent", wrapped, true},
		{"joined with permanent", joined, true},
		{"joined without permanent", errors.Join(io.EOF, base), false},
	}
	for _, c := range cases {
		if got := IsPermanent(c.err); got != c.want {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestPermanentKeepsChain(t *testing.T) {
	base := errors.New("truncated batch")
	wrapped := fmt.Errorf("cannot decode: %w", Permanent(base))
	if !errors.Is(wrapped, base) {
		t.Fatalf("errors.Is lost the original error through Permanent")
	}
	if got, want := Permanent(base).Error(), "permanent: truncated batch"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestPermanentNilAndIdempotent(t *testing.T) {
	if err := Permanent(nil); err != nil {
		t.Fatalf("Permanent(nil) = %v, want nil", err)
	}
	p := Permanent(io.EOF)
	if pp := Permanent(p); pp != p {
		t.Fatalf("Permanent(Permanent(e)) wrapped twice: %v", pp)
	}
	if got := Permanent(p).Error(); got != "permanent: EOF" {
		t.Fatalf("double wrap text = %q", got)
	}
}
