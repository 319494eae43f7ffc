// Package cli is the command-line frame of the tpflow binary: commands
// with their own flags, the common flags (--config and the Overrides),
// loading and validating the configuration, help that shows one default
// per flag, exit statuses, and serving a role on the one HTTP server.
// cmd/tpflow declares the commands and wires the roles.
package cli

// How a role is added
//
// Every command (run, collect, aggregate, sink, alert, report, api, broker,
// loadgen) lives in its own file of cmd/tpflow, cmd_<command>.go, as two
// things:
//
//   - a constructor, such as aggregateCommand, returning the *Command: its
//     name, one-line summary, help text, example and any flags of its own;
//   - the function it runs, such as
//
//     func runAggregate(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error
//
// Run parses the common flags (--config and the Overrides), loads and
// validates the configuration, builds env.Logger from cfg.Log, and calls the
// function with the context it is given. For a role, the function builds
// the role.Role with its package's New and hands it to ServeRole; the
// role's logic lives in its package. The function runs until ctx is done,
// flushes, and returns; it never exits the process. A returned error
// prints as one line and exits 1; ErrNotImplemented exits 2. Flags of the
// command's own are declared in its constructor on a fresh options
// struct, so commands carry no global state.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/internal/config/sections"
)

// Exit statuses of the tpflow binary.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed, or the configuration is invalid
	ExitUsage = 2 // bad command line, or a role not implemented in this build
)

// ErrNotImplemented is what a role returns until it is built.
var ErrNotImplemented = errors.New("not implemented in this build")

// usageErr is a command-line mistake; the CLI prints it with a hint and
// exits 2.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

// Env is what every command gets from main: where to write and how to log.
type Env struct {
	// Stdout receives the command's output.
	Stdout io.Writer
	// Stderr receives diagnostics and logs.
	Stderr io.Writer
	// Logger logs to Stderr as cfg.Log says; it is a discard logger for
	// commands that load no configuration.
	Logger *slog.Logger
}

// Config is the whole configuration every role is given.
type Config = sections.Config

// RoleFunc is the signature of a role; see the package comment.
type RoleFunc func(ctx context.Context, env *Env, cfg *Config, args []string) error

// Command is one subcommand of tpflow.
type Command struct {
	Name    string
	Summary string // one line for `tpflow --help`
	Args    string // positional arguments after [flags] in the usage line; "" allows none
	Help    string // what the command does, a paragraph
	Example string // one or more example lines
	// Flags declares the command's own flags; may be nil.
	Flags func(fs *flag.FlagSet)
	// Override applies those of the command's own flags that were set
	// (set[name]) to the loaded configuration, before it is validated, and
	// records with src.SetBy which key each one set; may be nil.
	Override func(cfg *Config, src *config.Source, set map[string]bool)
	// Role runs with a loaded configuration (role commands).
	Role RoleFunc
	// Exec runs without loading a configuration (config, version).
	Exec func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
	// Common says whether --config and the overrides are accepted.
	Common bool
}

// Run is the whole CLI: it parses args (without the program name), runs
// the command of cmds they name and returns the process exit status.
func Run(ctx context.Context, cmds []*Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeUsage(stderr, cmds)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			if c := findCommand(cmds, args[1]); c != nil {
				fs, _ := newFlagSet(c)
				writeCommandHelp(stdout, c, fs)
				return ExitOK
			}
			return unknownCommand(stderr, cmds, args[1])
		}
		writeUsage(stdout, cmds)
		return ExitOK
	case "-version", "--version":
		name = "version"
	}
	c := findCommand(cmds, name)
	if c == nil {
		return unknownCommand(stderr, cmds, name)
	}
	env := &Env{Stdout: stdout, Stderr: stderr, Logger: slog.New(slog.DiscardHandler)}
	err := execute(ctx, env, c, args[1:])
	return exitStatus(stderr, c, err)
}

// exitStatus prints err (if any) and maps it to an exit status.
func exitStatus(stderr io.Writer, c *Command, err error) int {
	var cfgErr *config.Error
	var uErr *usageErr
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrNotImplemented):
		fmt.Fprintf(stderr, "tpflow %s: the %s role is not implemented in this build\n", c.Name, c.Name)
		return ExitUsage
	case errors.As(err, &uErr):
		fmt.Fprintf(stderr, "tpflow %s: %v\nRun 'tpflow %s --help' for usage.\n", c.Name, err, c.Name)
		return ExitUsage
	case errors.As(err, &cfgErr):
		fmt.Fprintf(stderr, "%s\n", cfgErr)
		return ExitError
	default:
		fmt.Fprintf(stderr, "tpflow %s: %v\n", c.Name, err)
		return ExitError
	}
}

// UsageError returns an error that exitStatus prints and maps to exit 2.
func UsageError(format string, args ...any) error {
	return &usageErr{msg: fmt.Sprintf(format, args...)}
}

func findCommand(cmds []*Command, name string) *Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func unknownCommand(stderr io.Writer, cmds []*Command, name string) int {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name
	}
	hint := ""
	if s := config.Suggest(name, names); s != "" && !strings.HasPrefix(name, "-") {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(stderr, "tpflow: unknown command %q%s\nRun 'tpflow --help' for usage.\n", name, hint)
	return ExitUsage
}

// CommonFlags are the flags every role command accepts.
type CommonFlags struct {
	File       string // --config
	brokers    string
	clickhouse string
	listen     string
}

// Register declares the common flags on fs; the broker's --listen is
// broker.listen, every other command's http.listen.
func (f *CommonFlags) Register(fs *flag.FlagSet, c *Command) {
	listenKey := "http.listen"
	if c.Name == "broker" {
		listenKey = "broker.listen"
	}
	d := sections.DefaultConfig()
	fs.StringVar(&f.File, "config", "", "YAML configuration `FILE`; without it every key takes its default")
	fs.StringVar(&f.brokers, "brokers", "", fmt.Sprintf("Kafka brokers `HOST:PORT[,...]`, overriding kafka.brokers (default from config: %s)", strings.Join(d.Kafka.Brokers, ",")))
	fs.StringVar(&f.clickhouse, "clickhouse", "", fmt.Sprintf("ClickHouse `DSN` clickhouse://HOST:PORT/DB, overriding clickhouse.dsn and, with /DB, clickhouse.database (default from config: %s)", sections.ClickHouseURL(d.ClickHouse)))
	listenDefault := d.HTTP.Listen
	if c.Name == "broker" {
		listenDefault = d.Broker.Listen
	}
	fs.StringVar(&f.listen, "listen", "", fmt.Sprintf("`HOST:PORT` to listen on, overriding %s (default from config: %s)", listenKey, listenDefault))
}

// Load reads the configuration named by --config (or the defaults), applies
// the overrides that were set on the command line, and validates the result.
func (f *CommonFlags) Load(fs *flag.FlagSet, c *Command) (*Config, error) {
	var data []byte
	if f.File != "" {
		var err error
		if data, err = os.ReadFile(f.File); err != nil {
			return nil, fmt.Errorf("cannot read config: %w", err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return sections.Load(f.File, data, func(cfg *Config, src *config.Source) {
		if set["brokers"] {
			cfg.Kafka.Brokers = SplitList(f.brokers)
			src.SetBy("kafka.brokers", "--brokers")
		}
		if set["clickhouse"] {
			if sections.WithClickHouseDSN(&cfg.ClickHouse, f.clickhouse) {
				src.SetBy("clickhouse.database", "--clickhouse")
			}
			src.SetBy("clickhouse.dsn", "--clickhouse")
		}
		if set["listen"] {
			if c.Name == "broker" {
				cfg.Broker.Listen = f.listen
				src.SetBy("broker.listen", "--listen")
			} else {
				cfg.HTTP.Listen = f.listen
				src.SetBy("http.listen", "--listen")
			}
		}
		if c.Override != nil {
			c.Override(cfg, src, set)
		}
	})
}

// FlagOverride binds a role's own flag to the configuration key it
// Overrides.
type FlagOverride struct {
	Flag  string        // the flag's name, without dashes
	Key   string        // the dotted YAML path it sets
	Apply func(*Config) // copies the flag's value into the key
}

// SetFlag is the FlagOverride of flag: apply sets key from it.
func SetFlag(flag, key string, apply func(*Config)) FlagOverride {
	return FlagOverride{Flag: flag, Key: key, Apply: apply}
}

// Overrides returns a command.override that applies each of list whose flag
// was set.
func Overrides(list ...FlagOverride) func(cfg *Config, src *config.Source, set map[string]bool) {
	return func(cfg *Config, src *config.Source, set map[string]bool) {
		for _, o := range list {
			if set[o.Flag] {
				o.Apply(cfg)
				src.SetBy(o.Key, "--"+o.Flag)
			}
		}
	}
}

// SplitList splits a comma-separated flag value, dropping blanks.
func SplitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newFlagSet returns the command's flag set with its flags, the common
// ones included when the command takes them.
func newFlagSet(c *Command) (*flag.FlagSet, *CommonFlags) {
	fs := flag.NewFlagSet("tpflow "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are printed by exitStatus with a hint
	common := &CommonFlags{}
	if c.Common {
		common.Register(fs, c)
	}
	if c.Flags != nil {
		c.Flags(fs)
	}
	return fs, common
}

// execute parses the command's flags and runs it.
func execute(ctx context.Context, env *Env, c *Command, args []string) error {
	fs, common := newFlagSet(c)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		writeCommandHelp(env.Stdout, c, fs)
		return err
	}
	if err != nil {
		return UsageError("%v", err)
	}
	if c.Exec != nil {
		return c.Exec(ctx, env, fs, pos)
	}
	if c.Args == "" && len(pos) > 0 {
		return UsageError("unexpected argument %q", pos[0])
	}
	cfg, err := common.Load(fs, c)
	if err != nil {
		return err
	}
	env.Logger = newLogger(env.Stderr, cfg.Log).With("role", c.Name)
	return c.Role(ctx, env, cfg, pos)
}

// parseInterspersed parses flags anywhere among the positional arguments,
// so that `tpflow config check FILE --brokers X` works; "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newLogger builds the slog logger cfg describes, writing to w.
func newLogger(w io.Writer, cfg sections.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// writeUsage prints the top-level help: every command with one line.
func writeUsage(w io.Writer, cmds []*Command) {
	var b strings.Builder
	b.WriteString("tpflow is an event-streaming observability pipeline: logs and calls from\n")
	b.WriteString("containers flow through Kafka to per-method latency percentiles in ClickHouse.\n\n")
	b.WriteString("Usage: tpflow COMMAND [flags] [args]\n\nCommands:\n")
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.Name))
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	b.WriteString("\nRun 'tpflow COMMAND --help' for a command's flags and an example.\n")
	b.WriteString("Every role reads one YAML file (--config); see 'tpflow config print-defaults'.\n")
	io.WriteString(w, b.String())
}

// ServingRoles are the commands that serve the HTTP listener of
// pipeline/httpserver.
var ServingRoles = []string{"collect", "aggregate", "sink", "alert", "api", "control", "broker", "run"}

// httpSecurityHelp is the part of a serving role's help on its listener's
// protection.
const httpSecurityHelp = `The HTTP listener serves TLS with http.tls (certificate, client
certificates) and asks who is calling with http.auth (bearer tokens, basic
auth or client certificates, each with a role: viewer reads, operator
changes, admin); /healthz stays open. Without http.auth it serves anyone who
reaches it (the default address is loopback, and a role on another address
warns). SECURITY.md and deploy/tpflow.production.yaml show a hardened setup.`

// writeCommandHelp prints what a command does, its flags with defaults and
// an example.
func writeCommandHelp(w io.Writer, c *Command, fs *flag.FlagSet) {
	var b strings.Builder
	usage := "tpflow " + c.Name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		usage += " [flags]"
	}
	if c.Args != "" {
		usage += " " + c.Args
	}
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", usage, strings.TrimSpace(c.Help))
	if c.Role != nil && slices.Contains(ServingRoles, c.Name) {
		b.WriteString("\n" + httpSecurityHelp + "\n")
	}
	if hasFlags {
		b.WriteString("\nFlags:\n")
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
		sort.SliceStable(flags, func(i, j int) bool { return flagOrder(flags[i].Name) < flagOrder(flags[j].Name) })
		for _, f := range flags {
			name, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(&b, "%s\n      %s", line, usage)
			// A flag that Overrides a configuration key names the key's
			// default in its usage; its own zero value is no default.
			if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(usage, "(default") {
				fmt.Fprintf(&b, " (default %s)", f.DefValue)
			}
			b.WriteString("\n")
		}
	}
	if c.Example != "" {
		b.WriteString("\nExample:\n")
		for _, l := range strings.Split(strings.TrimSpace(c.Example), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	io.WriteString(w, b.String())
}

// flagOrder lists the command's own flags before the common ones.
func flagOrder(name string) int {
	switch name {
	case "config":
		return 1
	case "brokers":
		return 2
	case "clickhouse":
		return 3
	case "listen":
		return 4
	}
	return 0
}
