package main

import (
	"context"
	"flag"
	"fmt"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version of this build",
		help:    "Prints the version set at build time (git describe), the Go version and the platform.",
		example: "tpflow version",
		exec: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageError("unexpected argument %q", args[0])
			}
			_, err := fmt.Fprintln(env.Stdout, versionString())
			return err
		},
	}
}
