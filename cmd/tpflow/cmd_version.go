package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/tpflow/tpflow/internal/cli"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:    "version",
		Summary: "print the version of this build",
		Help:    "Prints the version set at build time (git describe), the Go version and the platform.",
		Example: "tpflow version",
		Exec: func(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return cli.UsageError("unexpected argument %q", args[0])
			}
			_, err := fmt.Fprintln(env.Stdout, versionString())
			return err
		},
	}
}
