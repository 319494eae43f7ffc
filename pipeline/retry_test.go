package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBackoffDoublesToItsCap(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100, 200, 400, 400, 400}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Errorf("pauses %v, want %v", got, want)
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Errorf("after Reset: %s, want 100ms", d)
	}
	j := Backoff{Min: time.Second, Max: time.Second, Jitter: true}
	for range 100 {
		if d := j.Next(); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jittered pause %s outside [500ms, 1s]", d)
		}
	}
}

// recorder is a Backoff whose pauses are recorded instead of slept.
func recorder(pauses *[]time.Duration) *Backoff {
	return &Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond, Sleep: func(ctx context.Context, d time.Duration) error {
		*pauses = append(*pauses, d)
		return ctx.Err()
	}}
}

func TestRetryStopsAtAPermanentError(t *testing.T) {
	var pauses []time.Duration
	calls, failures := 0, 0
	errs := []error{errors.New("refused"), errors.New("refused"), Permanent(errors.New("bad request")), nil}
	n, err := Retry(context.Background(), recorder(&pauses), 0, func() error { calls++; return errs[calls-1] },
		func(attempt int, pause time.Duration, err error) { failures++ })
	if n != 3 || calls != 3 || !IsPermanent(err) || err.Error() != "permanent: bad request" {
		t.Errorf("Retry = %d, %v after %d calls; want 3 attempts ending in the permanent error", n, err, calls)
	}
	if failures != 2 || !slices.Equal(pauses, []time.Duration{time.Millisecond, 2 * time.Millisecond}) {
		t.Errorf("%d failures reported, pauses %v; want 2 and [1ms 2ms]", failures, pauses)
	}
}

func TestRetrySucceedsOrRunsOutOfAttempts(t *testing.T) {
	var pauses []time.Duration
	calls := 0
	n, err := Retry(context.Background(), recorder(&pauses), 0, func() error {
		if calls++; calls < 4 {
			return errors.New("timeout")
		}
		return nil
	}, nil)
	if n != 4 || err != nil || len(pauses) != 3 {
		t.Errorf("Retry = %d, %v with %d pauses; want success at attempt 4 after 3 pauses", n, err, len(pauses))
	}
	calls = 0
	last := errors.New("timeout 3")
	n, err = Retry(context.Background(), recorder(&pauses), 3, func() error {
		if calls++; calls == 3 {
			return last
		}
		return errors.New("timeout")
	}, nil)
	if n != 3 || calls != 3 || err != last {
		t.Errorf("Retry = %d, %v after %d calls; want the third attempt's error", n, err, calls)
	}
}

func TestRetryEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var pauses []time.Duration
	calls := 0
	n, err := Retry(ctx, recorder(&pauses), 0, func() error {
		if calls++; calls == 2 {
			cancel()
		}
		return errors.New("refused")
	}, nil)
	if n != 2 || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last error: refused") || IsPermanent(err) {
		t.Errorf("Retry = %d, %v; want attempt 2 ending with the cancel and the last error", n, err)
	}
	var slept []time.Duration
	b := recorder(&slept)
	ctx2, cancel2 := context.WithCancel(context.Background())
	b.Sleep = func(context.Context, time.Duration) error { cancel2(); return context.Canceled }
	if _, err := Retry(ctx2, b, 0, func() error { return errors.New("refused") }, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during the pause: %v", err)
	}
}
