package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/devtools/loadgen"
)

// loadgenOptions are the flags of `tpflow loadgen` beyond the common ones.
type loadgenOptions struct {
	// Rate is the number of call events produced per second.
	Rate int
	// Duration stops the generator after this long; 0 runs until
	// interrupted or until Count.
	Duration time.Duration
	// Count stops the generator after this many calls; 0 means no limit.
	Count int64
	// Methods is the number of distinct (app, method) keys.
	Methods int
	// Seed makes the events reproducible.
	Seed uint64
	// Truth is the file that receives the exact per-key statistics.
	Truth string
	// Incident scripts a latency anomaly of one key.
	Incident loadgen.Incident
	// Backdate dates every event this long before the wall clock.
	Backdate time.Duration
}

func loadgenCommand() *cli.Command {
	o := loadgenOptions{Incident: loadgen.Incident{Factor: 10}}
	return &cli.Command{
		Name:    "loadgen",
		Summary: "produce synthetic calls to Kafka at a given rate, with the exact truth per key",
		Help: `Produces synthetic call events (lognormal latencies over many keys, 1 %
errors) to the calls topic, in event batches of 1000 calls keyed as the
collector keys them, with event time now (or --backdate before now). With --truth it writes the exact
count, errors and nearest-rank TP50/90/99/99.9 of every key it produced as
JSON Lines, for comparison with what the pipeline stores. An incident
multiplies one key's latencies during a window of time.`,
		Example: "tpflow loadgen --brokers 127.0.0.1:9092 --rate 50000 --duration 1m\n" +
			"tpflow loadgen --brokers 127.0.0.1:9092 --count 100000 --keys 50 --seed 7 --truth truth.jsonl",
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.Rate, "rate", 10000, "call events per second")
			fs.DurationVar(&o.Duration, "duration", 0, "stop after this long; 0 runs until interrupted or --count")
			fs.Int64Var(&o.Count, "count", 0, "stop after this many calls; 0 means no limit")
			fs.IntVar(&o.Methods, "methods", 1000, "distinct (app, method) keys")
			fs.IntVar(&o.Methods, "keys", 1000, "distinct keys (the same as --methods)")
			fs.Uint64Var(&o.Seed, "seed", 1, "seed of the random events")
			fs.StringVar(&o.Truth, "truth", "", "write the exact per-key statistics to `FILE` as JSON Lines")
			fs.IntVar(&o.Incident.Key, "incident-key", 0, "index of the key an incident slows down")
			fs.DurationVar(&o.Incident.Start, "incident-start", 0, "when the incident starts, from the generator's start")
			fs.DurationVar(&o.Incident.Length, "incident-length", 0, "how long the incident lasts; 0 means no incident")
			fs.Float64Var(&o.Incident.Factor, "incident-factor", 10, "latency multiplier during the incident")
			fs.DurationVar(&o.Backdate, "backdate", 0, "date every event this long before now, e.g. 1h to fill closed 5-minute buckets at once")
		},
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			switch {
			case o.Rate < 1:
				return cli.UsageError("--rate must be at least 1, got %d", o.Rate)
			case o.Duration < 0:
				return cli.UsageError("--duration must not be negative, got %s", o.Duration)
			case o.Count < 0:
				return cli.UsageError("--count must not be negative, got %d", o.Count)
			case o.Backdate < 0:
				return cli.UsageError("--backdate must not be negative, got %s", o.Backdate)
			case o.Methods < 1:
				return cli.UsageError("--methods must be at least 1, got %d", o.Methods)
			case o.Incident.Length > 0 && (o.Incident.Key < 0 || o.Incident.Key >= o.Methods):
				return cli.UsageError("--incident-key must be in [0, %d), got %d", o.Methods, o.Incident.Key)
			case o.Incident.Length > 0 && o.Incident.Factor <= 0:
				return cli.UsageError("--incident-factor must be positive, got %g", o.Incident.Factor)
			}
			return runLoadgen(ctx, env, cfg, o, args)
		},
	}
}

// runLoadgen is the loadgen role.
func runLoadgen(ctx context.Context, env *cli.Env, cfg *cli.Config, o loadgenOptions, args []string) error {
	st, err := loadgen.Run(ctx, cfg.Kafka, loadgen.Options{
		Count: o.Count, Duration: o.Duration, Rate: o.Rate, Keys: o.Methods, Seed: o.Seed,
		TruthFile: o.Truth, Incident: o.Incident, Backdate: o.Backdate,
	}, env.Logger)
	fmt.Fprintf(env.Stdout, "produced %d calls in %d messages in %s (%.0f calls/s)\n",
		st.Calls, st.Messages, st.Elapsed.Round(time.Millisecond), float64(st.Calls)/max(st.Elapsed.Seconds(), 1e-9))
	return err
}
