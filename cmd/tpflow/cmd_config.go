package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tpflow/tpflow/internal/config/sections"
)

func configCommand() *command {
	var common commonFlags
	c := &command{
		name:    "config",
		summary: "print the default configuration, or check a configuration file",
		args:    "print-defaults | print FILE | check FILE",
		help: `Subcommands:
  print-defaults  print the full default configuration as commented YAML
  print FILE      load FILE with the overrides given and print the result as
                  commented YAML; secrets show as [REDACTED], URL passwords
                  as xxxxx
  check FILE      load FILE with the overrides given, validate it, and print
                  "ok" or every problem with its file, line and column (exit 1)

All roles share one YAML file. Unknown keys are errors; a key absent from
the file keeps its default. Durations are Go durations such as "10s".`,
		example: "tpflow config print-defaults > tpflow.yaml\ntpflow config check tpflow.yaml\ntpflow config check --brokers kafka-1:9092 tpflow.yaml",
	}
	c.flags = func(fs *flag.FlagSet) { common.register(fs, c) }
	c.exec = func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 {
			return usageError("missing subcommand: print-defaults, print or check")
		}
		switch args[0] {
		case "print-defaults":
			if len(args) > 1 {
				return usageError("print-defaults takes no arguments, got %q", args[1])
			}
			if fs.NFlag() > 0 {
				return usageError("print-defaults takes no flags")
			}
			return sections.WriteDefaults(env.Stdout, DefaultConfig())
		case "check", "print":
			switch {
			case len(args) > 2:
				return usageError("%s takes one FILE, got %d arguments", args[0], len(args)-1)
			case len(args) == 2 && common.config != "" && common.config != args[1]:
				return usageError("%s got both FILE %q and --config %q", args[0], args[1], common.config)
			case len(args) == 2:
				common.config = args[1]
			case common.config == "":
				return usageError("%s needs a FILE", args[0])
			}
			cfg, err := common.load(fs, c)
			if err != nil {
				return err
			}
			if args[0] == "print" {
				return sections.WriteConfig(env.Stdout, *cfg, common.config)
			}
			_, err = fmt.Fprintln(env.Stdout, "ok")
			return err
		default:
			return usageError("unknown subcommand %q (want print-defaults, print or check)", args[0])
		}
	}
	return c
}
