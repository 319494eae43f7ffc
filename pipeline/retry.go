package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is capped exponential backoff, the one every retry loop of
// tpflow uses: the first pause is Min, each next one twice the last, up to
// Max. The zero Max means Min for ever. A Backoff holds its position; copy
// a configured one (or call Reset) to start again from Min.
type Backoff struct {
	Min, Max time.Duration
	// Jitter draws each pause uniformly from [d/2, d] instead of d, so
	// that clients that failed together do not retry together.
	Jitter bool
	// Sleep pauses for d or until ctx is done, returning ctx's error then;
	// nil uses a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error

	cur time.Duration
}

// Reset starts b again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Next returns the pause before the next attempt and moves b on.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = max(b.Min, min(2*b.cur, b.Max))
	}
	d := b.cur
	if b.Jitter && d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

// Wait pauses for d, or until ctx is done: then it returns ctx's error.
func (b *Backoff) Wait(ctx context.Context, d time.Duration) error {
	if b.Sleep != nil {
		return b.Sleep(ctx, d)
	}
	return SleepContext(ctx, d)
}

// SleepContext pauses for d, or until ctx is done: then it returns ctx's
// error.
func SleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry runs op until it succeeds, returns an error marked Permanent, has
// run attempts times (0: no limit) or ctx is done, pausing b.Next() between
// attempts. Before each pause it calls failed, when not nil, with the
// attempt that failed (from 1), the pause and op's error.
//
// It returns the attempts run and nil, op's error (permanent, or the last
// attempt's), or, when ctx ended first, ctx's error with op's last error in
// its text.
func Retry(ctx context.Context, b *Backoff, attempts int, op func() error, failed func(attempt int, pause time.Duration, err error)) (int, error) {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return attempt, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return attempt, fmt.Errorf("%w (last error: %v)", ctxErr, err)
		}
		if IsPermanent(err) || attempts > 0 && attempt >= attempts {
			return attempt, err
		}
		d := b.Next()
		if failed != nil {
			failed(attempt, d, err)
		}
		if serr := b.Wait(ctx, d); serr != nil {
			return attempt, fmt.Errorf("%w (last error: %v)", serr, err)
		}
	}
}
