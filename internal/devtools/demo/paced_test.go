package demo

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPacedCarriesFractionsAndBoundsTheSpan(t *testing.T) {
	// A clock that moves 100 ms a call, 300 ms on the fifth (a stall):
	// at 15 events/s the intervals hold 1.5 events each, 4.5 in the stall
	// unless maxSpan cuts it to 200 ms (3).
	for _, c := range []struct {
		maxSpan time.Duration
		want    int
	}{{0, 15 + 3}, {200 * time.Millisecond, 15 + 1}} {
		at := time.Unix(1000, 0)
		calls := 0
		now := func() time.Time {
			calls++
			if calls == 5 {
				at = at.Add(300 * time.Millisecond)
			} else {
				at = at.Add(100 * time.Millisecond)
			}
			return at
		}
		total, emits := 0, 0
		stop := errors.New("stop")
		err := paced(context.Background(), time.Millisecond, 15, c.maxSpan, now, func(from, to time.Time, n int) error {
			if c.maxSpan > 0 && to.Sub(from) > c.maxSpan {
				t.Errorf("interval %s longer than %s", to.Sub(from), c.maxSpan)
			}
			total += n
			if emits++; emits == 10 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || total != c.want {
			t.Errorf("maxSpan %s: %d events, err %v; want %d and the emit's error", c.maxSpan, total, err, c.want)
		}
	}
	// A done context ends it without an error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := paced(ctx, time.Hour, 1, 0, time.Now, func(time.Time, time.Time, int) error { return errors.New("called") }); err != nil {
		t.Errorf("done context: %v", err)
	}
}
