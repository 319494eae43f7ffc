package testkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// endTB records how a helper ended a test instead of ending this one.
type endTB struct {
	testing.TB
	fatal, skip string
}

func (e *endTB) Helper()        {}
func (e *endTB) Fatal(a ...any) { e.fatal = fmt.Sprint(a...) }
func (e *endTB) Skip(a ...any)  { e.skip = fmt.Sprint(a...) }

func TestMissingFailsUnderCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "true")
	e := &endTB{TB: t}
	Missing(e, "tool x is not installed")
	if !strings.HasPrefix(e.fatal, "tool x is not installed; CI is set") || e.skip != "" {
		t.Errorf("with CI: fatal %q, skip %q", e.fatal, e.skip)
	}
	t.Setenv("CI", "")
	e = &endTB{TB: t}
	Missing(e, "tool x is not installed")
	if !strings.HasPrefix(e.skip, "tool x is not installed; skipping") || e.fatal != "" {
		t.Errorf("without CI: fatal %q, skip %q", e.fatal, e.skip)
	}
}

func TestLookPathFindsTheFirstNameOnPath(t *testing.T) {
	e := &endTB{TB: t}
	if p := LookPath(e, "none", "no-such-tool-here", "sh"); !strings.HasSuffix(p, "/sh") || e.skip != "" || e.fatal != "" {
		t.Errorf("LookPath = %q (skip %q, fatal %q), want the path of sh", p, e.skip, e.fatal)
	}
	t.Setenv("CI", "")
	e = &endTB{TB: t}
	if p := LookPath(e, "no tool", "no-such-tool-here"); p != "" || e.skip == "" {
		t.Errorf("LookPath of a missing tool = %q, skip %q", p, e.skip)
	}
}

// errTB records Errorf instead of failing this test.
type errTB struct {
	testing.TB
	errs []string
}

func (e *errTB) Helper()                      {}
func (e *errTB) Errorf(f string, args ...any) { e.errs = append(e.errs, fmt.Sprintf(f, args...)) }

func TestGoStopsAndReportsTheError(t *testing.T) {
	e := &errTB{TB: t}
	stopped := false
	stop := Go(e, func(ctx context.Context) error {
		<-ctx.Done()
		stopped = true
		return errors.New("boom")
	})
	stop()
	if !stopped {
		t.Error("stop returned before run did")
	}
	stop() // again: nothing
	if len(e.errs) != 1 || e.errs[0] != "Run: boom" {
		t.Errorf("errors %q, want one Run: boom", e.errs)
	}
	e = &errTB{TB: t}
	Go(e, func(ctx context.Context) error { <-ctx.Done(); return nil })()
	if len(e.errs) != 0 {
		t.Errorf("a clean stop reported %q", e.errs)
	}
}
