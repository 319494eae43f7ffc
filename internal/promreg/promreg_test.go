package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegisterReturnsTheCollectorAlreadyRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "tpflow_test_events_total", Help: "Test events."}
	first := MustRegister(reg, prometheus.NewCounter(opts))
	second := MustRegister(reg, prometheus.NewCounter(opts))
	if first != second {
		t.Fatal("second registration returned a new counter, want the one already registered")
	}
	second.Inc()
	if got := testutil.ToFloat64(first); got != 1 {
		t.Fatalf("first counter = %v after incrementing the second, want 1", got)
	}
}

func TestRegisterReturnsOtherErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_x_total", Help: "One help."}))
	_, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_x_total", Help: "Another help."}))
	if err == nil {
		t.Fatal("registering a counter of the same name with another help succeeded, want an error")
	}
}

func TestRegisterAllReplacesDuplicates(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_a_total", Help: "A."})
	MustRegister(reg, a)
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_a_total", Help: "A."})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_c_total", Help: "C."})
	if err := RegisterAll(reg, &b, &c); err != nil {
		t.Fatal(err)
	}
	if b != a {
		t.Error("RegisterAll left the duplicate in place, want the registered collector")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 2 {
		t.Errorf("registry holds %d metrics (err %v), want 2", n, err)
	}
}

func TestRegisterNilRegisterer(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_n_total", Help: "N."})
	got, err := Register(nil, c)
	if err != nil || got != c {
		t.Fatalf("Register(nil) = %v, %v; want the collector and no error", got, err)
	}
}
