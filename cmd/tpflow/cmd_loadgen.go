package main

import (
	"context"
	"flag"
	"time"
)

// loadgenOptions are the flags of `tpflow loadgen` beyond the common ones.
type loadgenOptions struct {
	// Rate is the number of call events produced per second.
	Rate int
	// Duration stops the generator after this long; 0 runs until
	// interrupted.
	Duration time.Duration
	// Methods is the number of distinct (app, method) keys.
	Methods int
}

func loadgenCommand() *command {
	var o loadgenOptions
	return &command{
		name:    "loadgen",
		summary: "produce synthetic calls and logs to Kafka at a given rate",
		help: `Produces synthetic call events (heavy-tailed latencies over many methods)
and log lines to the calls and logs topics, batched as the collector does,
for demos, soak tests and benchmarks.`,
		example: "tpflow loadgen --brokers 127.0.0.1:9092 --rate 50000 --duration 1m",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.Rate, "rate", 10000, "call events per second")
			fs.DurationVar(&o.Duration, "duration", 0, "stop after this long; 0 runs until interrupted")
			fs.IntVar(&o.Methods, "methods", 1000, "distinct (app, method) keys")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			switch {
			case o.Rate < 1:
				return usageError("--rate must be at least 1, got %d", o.Rate)
			case o.Duration < 0:
				return usageError("--duration must not be negative, got %s", o.Duration)
			case o.Methods < 1:
				return usageError("--methods must be at least 1, got %d", o.Methods)
			}
			return runLoadgen(ctx, env, cfg, o, args)
		},
	}
}

// runLoadgen is the loadgen role.
func runLoadgen(ctx context.Context, env *Env, cfg *Config, o loadgenOptions, args []string) error {
	return errNotImplemented
}
