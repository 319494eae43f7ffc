package role

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// fake is a role whose Run waits for ctx or returns err at once.
type fake struct {
	err    error
	ready  error
	routes []Route
	ran    chan struct{}
}

func (f *fake) Run(ctx context.Context) error {
	close(f.ran)
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	return nil
}

func (f *fake) Ready(context.Context) error { return f.ready }
func (f *fake) Routes() []Route             { return f.routes }

func newFake() *fake { return &fake{ran: make(chan struct{})} }

func TestGroupRunsEveryRoleAndStopsAllOnAFailure(t *testing.T) {
	a, b := newFake(), newFake()
	b.err = errors.New("b failed")
	done := make(chan error, 1)
	go func() { done <- Group(a, nil, b).Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, b.err) {
			t.Fatalf("Run = %v, want b's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after b failed")
	}
	for name, f := range map[string]*fake{"a": a, "b": b} {
		select {
		case <-f.ran:
		default:
			t.Errorf("%s did not run", name)
		}
	}
}

func TestGroupReadyJoinsReasonsAndRoutesConcatenate(t *testing.T) {
	a, b := newFake(), newFake()
	if err := Group(a, b).Ready(context.Background()); err != nil {
		t.Errorf("Ready with both ready = %v", err)
	}
	b.ready = errors.New("kafka: no broker")
	if err := Group(a, b).Ready(context.Background()); !errors.Is(err, b.ready) {
		t.Errorf("Ready = %v, want b's reason", err)
	}
	a.routes = []Route{{Pattern: "/a", Handler: http.NotFoundHandler()}}
	b.routes = []Route{{Pattern: "/b", Handler: http.NotFoundHandler()}}
	rs := Group(a, nil, b).Routes()
	if len(rs) != 2 || rs[0].Pattern != "/a" || rs[1].Pattern != "/b" {
		t.Errorf("Routes = %v, want /a then /b", rs)
	}
}

func TestSettingsDefaults(t *testing.T) {
	var s Settings
	if s.Log() == nil {
		t.Error("Log of empty settings is nil")
	}
	at := time.Unix(1700000000, 0)
	if got := (Settings{Clock: func() time.Time { return at }}).Now()(); !got.Equal(at) {
		t.Errorf("Now = %v, want the set clock's %v", got, at)
	}
	if d := time.Since(s.Now()()); d < 0 || d > time.Minute {
		t.Errorf("default clock is %v off time.Now", d)
	}
}
