package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config/sections"
)

func configCommand() *cli.Command {
	var common cli.CommonFlags
	c := &cli.Command{
		Name:    "config",
		Summary: "print the default configuration, or check a configuration file",
		Args:    "print-defaults | print FILE | check FILE",
		Help: `Subcommands:
  print-defaults  print the full default configuration as commented YAML
  print FILE      load FILE with the overrides given and print the result as
                  commented YAML; secrets show as [REDACTED], URL passwords
                  as xxxxx
  check FILE      load FILE with the overrides given, validate it, and print
                  "ok" or every problem with its file, line and column (exit 1)

All roles share one YAML file. Unknown keys are errors; a key absent from
the file keeps its default. Durations are Go durations such as "10s".`,
		Example: "tpflow config print-defaults > tpflow.yaml\ntpflow config check tpflow.yaml\ntpflow config check --brokers kafka-1:9092 tpflow.yaml",
	}
	c.Flags = func(fs *flag.FlagSet) { common.Register(fs, c) }
	c.Exec = func(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return cli.UsageError("missing subcommand: print-defaults, print or check")
		}
		switch args[0] {
		case "print-defaults":
			if len(args) > 1 {
				return cli.UsageError("print-defaults takes no arguments, got %q", args[1])
			}
			if fs.NFlag() > 0 {
				return cli.UsageError("print-defaults takes no flags")
			}
			return sections.WriteDefaults(env.Stdout, sections.DefaultConfig())
		case "check", "print":
			switch {
			case len(args) > 2:
				return cli.UsageError("%s takes one FILE, got %d arguments", args[0], len(args)-1)
			case len(args) == 2 && common.File != "" && common.File != args[1]:
				return cli.UsageError("%s got both FILE %q and --config %q", args[0], args[1], common.File)
			case len(args) == 2:
				common.File = args[1]
			case common.File == "":
				return cli.UsageError("%s needs a FILE", args[0])
			}
			cfg, err := common.Load(fs, c)
			if err != nil {
				return err
			}
			if args[0] == "print" {
				return sections.WriteConfig(env.Stdout, *cfg, common.File)
			}
			_, err = fmt.Fprintln(env.Stdout, "ok")
			return err
		default:
			return cli.UsageError("unknown subcommand %q (want print-defaults, print or check)", args[0])
		}
	}
	return c
}
