package backfill

import (
	"strings"
	"testing"
	"time"
)

func TestSettled(t *testing.T) {
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	if err := Settled(now.Add(-Settle), now); err != nil {
		t.Errorf("a range ending %s ago: %v", Settle, err)
	}
	err := Settled(now.Add(-Settle+time.Second), now)
	if err == nil {
		t.Fatal("a range ending in a bucket still filling is settled")
	}
	for _, want := range []string{"the range ends at 2026-11-02T11:55:00Z, less than 10m0s before now (2026-11-02T12:00:00Z)",
		"End the range at 2026-11-02T11:50:00Z or earlier"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}
