package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/tpflow/tpflow/internal/cli"
	"os"
	"strings"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// migrateOptions are the flags of `tpflow migrate`.
type migrateOptions struct {
	user, passwordFile, networks, usersFile string
}

func migrateCommand() *cli.Command {
	var o migrateOptions
	return &cli.Command{
		Name:    "migrate",
		Summary: "apply the ClickHouse schema migrations; optionally create the read-only user for Grafana and the API",
		Help: `migrate applies the schema migrations to clickhouse.database, as every role
that writes does at start, and exits; run it before the roles to migrate
with an administrative user that the roles then need not have.

With --readonly-user NAME it also creates the least-privilege user that
Grafana and the API should use: SELECT on clickhouse.database only,
readonly=2, and every query bounded by api.timeout (max_execution_time)
and api.max_memory_usage, in a settings profile tpflow_readonly. The
password is read from --readonly-password-file (at least 12 characters);
only its SHA-256 is sent or written. On ClickHouse 20.5 and later the user
is created with SQL (CREATE SETTINGS PROFILE, CREATE USER, GRANT; the
connecting user needs access_management), and the limits are constraints a
query cannot raise. Older servers (18.16) create users only from their
configuration files: migrate then writes the users.d file to
--users-file (or stdout) for you to put in the server's users.d directory
(Debian: /etc/clickhouse-server/users.d/), which the server reloads within
seconds; there the user can raise its own limits per query (no constraints
before 19.14). Running it again replaces the user and its password.`,
		Example: "tpflow migrate --clickhouse clickhouse://admin@ch-1:9000/tpflow\n" +
			"tpflow migrate --readonly-user grafana --readonly-password-file /run/secrets/grafana-ch\n" +
			"tpflow migrate --readonly-user grafana --readonly-password-file pw --users-file /etc/clickhouse-server/users.d/tpflow-readonly.xml",
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.user, "readonly-user", "", "also create the read-only user `NAME` for Grafana and the API")
			fs.StringVar(&o.passwordFile, "readonly-password-file", "", "`FILE` holding the read-only user's password (trailing newline trimmed)")
			fs.StringVar(&o.networks, "readonly-networks", "", "comma-separated IPs or CIDRs the read-only user may connect from; empty: any")
			fs.StringVar(&o.usersFile, "users-file", "", "servers before 20.5: write the users.d file to `PATH` instead of stdout")
		},
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			if len(args) != 0 {
				return cli.UsageError("migrate takes no arguments")
			}
			return runMigrate(ctx, env, cfg, o)
		},
	}
}

// readOnlyUser returns the user the flags ask for, or false when none.
func (o migrateOptions) readOnlyUser(cfg *cli.Config) (clickhouse.ReadOnlyUser, bool, error) {
	if o.user == "" {
		if o.passwordFile != "" || o.networks != "" || o.usersFile != "" {
			return clickhouse.ReadOnlyUser{}, false, cli.UsageError("--readonly-password-file, --readonly-networks and --users-file need --readonly-user")
		}
		return clickhouse.ReadOnlyUser{}, false, nil
	}
	if o.passwordFile == "" {
		return clickhouse.ReadOnlyUser{}, false, cli.UsageError("--readonly-user needs --readonly-password-file")
	}
	pw, err := os.ReadFile(o.passwordFile)
	if err != nil {
		return clickhouse.ReadOnlyUser{}, false, fmt.Errorf("cannot read the read-only user's password: %w", err)
	}
	u := clickhouse.ReadOnlyUser{
		Name:     o.user,
		Password: strings.TrimRight(string(pw), "\r\n"),
		Database: cfg.ClickHouse.Database,
		Limits:   clickhouse.Limits{MaxExecutionTime: cfg.API.Timeout, MaxMemoryUsage: cfg.API.MaxMemoryUsage},
	}
	for n := range strings.SplitSeq(o.networks, ",") {
		if n = strings.TrimSpace(n); n != "" {
			u.Networks = append(u.Networks, n)
		}
	}
	// Check it before anything is migrated.
	if _, err := u.SQL(); err != nil {
		return u, false, cli.UsageError("%v", err)
	}
	return u, true, nil
}

// runMigrate is `tpflow migrate` and `tpflow sink --migrate`: it applies
// the migrations, reports them on stdout and creates the read-only user
// the options ask for.
func runMigrate(ctx context.Context, env *cli.Env, cfg *cli.Config, o migrateOptions) error {
	u, withUser, err := o.readOnlyUser(cfg)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := clickhouse.Migrate(ctx, conn, cfg.ClickHouse)
	if err != nil {
		return err
	}
	// With a read-only user, stdout is kept for its users.d file.
	out := env.Stdout
	if withUser {
		out = env.Stderr
	}
	if _, err := fmt.Fprintf(out, "applied %d migrations %v to database %s\n", len(applied), applied, cfg.ClickHouse.Database); err != nil || !withUser {
		return err
	}
	err = clickhouse.CreateReadOnlyUser(ctx, conn, u)
	if err == nil {
		fmt.Fprintf(env.Stderr, "migrate: read-only user %s created with profile %s\n", u.Name, clickhouse.ReadOnlyProfile)
		return nil
	}
	if !errors.Is(err, clickhouse.ErrNoSQLAccessControl) {
		return err
	}
	file, err := u.UsersXML()
	if err != nil {
		return err
	}
	if o.usersFile == "" {
		_, err = env.Stdout.Write(file)
		fmt.Fprintf(env.Stderr, "migrate: this server has no SQL access control; put the users.d file printed on stdout in its users.d directory\n")
		return err
	}
	if err := os.WriteFile(o.usersFile, file, 0o640); err != nil {
		return fmt.Errorf("cannot write the users.d file: %w", err)
	}
	fmt.Fprintf(env.Stderr, "migrate: this server has no SQL access control; wrote %s: it must be in the server's users.d directory\n", o.usersFile)
	return nil
}
