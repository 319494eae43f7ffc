// Package loadgen produces synthetic call events (and, optionally, metric
// samples of containers) to Kafka for demos, benchmarks and end-to-end
// tests, and keeps the exact truth about what it produced: per key the
// count, the errors and nearest-rank percentiles, so a test can compare what
// the pipeline stored with what was sent.
package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Key is one call series: the labels and the method.
type Key struct {
	System, App, Group, IDC, Method string
}

// Incident multiplies the latency of one key during a window of time,
// for scripted anomalies in demos and alerting tests.
type Incident struct {
	// Key is the index of the affected key, in [0, keys).
	Key int
	// Start is when the incident begins, measured from the generator's
	// start; Length is how long it lasts (0: no incident).
	Start, Length time.Duration
	// Factor multiplies the key's latencies during the incident.
	Factor float64
}

// Generator draws call events over a fixed set of keys from a seed: the
// same seed, keys and sequence of Next times give the same events. Each key
// has its own lognormal latency distribution. A Generator is not safe for
// concurrent use.
type Generator struct {
	keys    []Key
	mu      []float64 // ln of each key's median latency in µs
	sigma   float64
	errRate float64
	rng     *rand.Rand
	inc     Incident
	start   time.Time
}

// NewGenerator returns a generator of nkeys keys seeded with seed, whose
// incident window is measured from start.
func NewGenerator(nkeys int, seed uint64, inc Incident, start time.Time) *Generator {
	g := &Generator{
		keys:    make([]Key, nkeys),
		mu:      make([]float64, nkeys),
		sigma:   0.6,
		errRate: 0.01,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		inc:     inc,
		start:   start,
	}
	for i := range g.keys {
		g.keys[i] = KeyOf(i)
		// Medians from 500 µs to about 50 ms, fixed per key by the seed.
		g.mu[i] = math.Log(500) + g.rng.Float64()*math.Log(100)
	}
	return g
}

// KeyOf returns the labels of key i: ten methods per app, ten apps per
// system, two groups and three IDCs.
func KeyOf(i int) Key {
	return Key{
		System: fmt.Sprintf("sys-%d", i/100),
		App:    fmt.Sprintf("app-%d", i/10),
		Group:  fmt.Sprintf("grp-%d", i%2),
		IDC:    fmt.Sprintf("idc-%d", i%3),
		Method: fmt.Sprintf("Method%d", i),
	}
}

// Keys returns the generator's keys; the caller must not modify them.
func (g *Generator) Keys() []Key { return g.keys }

// Next draws one call at wall time now: the key index, the latency in
// microseconds (at least 1) and whether it succeeded.
func (g *Generator) Next(now time.Time) (key int, latencyUs uint32, ok bool) {
	key = g.rng.IntN(len(g.keys))
	v := math.Exp(g.mu[key] + g.sigma*g.rng.NormFloat64())
	if g.inc.Length > 0 && key == g.inc.Key {
		if d := now.Sub(g.start); d >= g.inc.Start && d < g.inc.Start+g.inc.Length {
			v *= g.inc.Factor
		}
	}
	v = min(max(v, 1), math.MaxUint32/2)
	return key, uint32(v), g.rng.Float64() >= g.errRate
}
