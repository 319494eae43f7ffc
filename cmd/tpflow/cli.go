package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/tpflow/tpflow/internal/cli"
)

// commands returns fresh command values, in the order of `tpflow --help`.
func commands() []*cli.Command {
	return []*cli.Command{
		runCommand(),
		collectCommand(),
		aggregateCommand(),
		sinkCommand(),
		alertCommand(),
		reportCommand(),
		rollupCommand(),
		migrateCommand(),
		apiCommand(),
		controlCommand(),
		brokerCommand(),
		loadgenCommand(),
		configCommand(),
		deployCommand(),
		versionCommand(),
	}
}

// run is the whole CLI: it parses args (without the program name), runs a
// command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, commands(), args, stdout, stderr)
}

// versionString is what `tpflow version` prints.
func versionString() string {
	return fmt.Sprintf("tpflow %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
