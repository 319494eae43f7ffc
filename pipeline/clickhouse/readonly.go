package clickhouse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ReadOnlyProfile is the settings profile of every read-only user.
const ReadOnlyProfile = "tpflow_readonly"

// ReadOnlyUser is the least-privilege ClickHouse user for Grafana and the
// API: it may SELECT from the tpflow database only, runs with readonly=2
// (reads, and SET of any setting but readonly itself) and every query is
// bounded by Limits. It is opt-in: nothing creates it unless asked
// (tpflow migrate --readonly-user).
//
// Servers with SQL access control (20.5 and later) get it as SQL: a
// settings profile whose limits are constraints (MAX), so that a query
// cannot raise them, a user identified by the SHA-256 of its password, and
// GRANT SELECT ON database.*. Older servers (18.16) have no SQL for users:
// the user is a users.d file (UsersXML) placed beside the server's
// users.xml, with allow_databases for the database; their profiles have no
// constraints, so there readonly=2 lets a query raise its own limits.
type ReadOnlyUser struct {
	// Name is the user name, a plain identifier.
	Name string
	// Password is the password; only its SHA-256 is written anywhere.
	Password string
	// Database is the one database the user may read.
	Database string
	// Limits bound every query of the user; both must be set.
	Limits Limits
	// Networks are the addresses (IP or CIDR) the user may connect from;
	// empty means any.
	Networks []string
}

// SQLAccessControl reports whether v creates users with SQL (CREATE USER,
// GRANT): 20.5 and later, conservatively (it came in 20.4).
func (v ServerVersion) SQLAccessControl() bool { return v.AtLeast(20, 5) }

// check reports what is wrong with u.
func (u ReadOnlyUser) check() error {
	var errs []error
	if !identRe.MatchString(u.Name) {
		errs = append(errs, fmt.Errorf("read-only user name %q must match %s", u.Name, identRe))
	}
	if u.Name == "default" {
		errs = append(errs, errors.New(`read-only user must not be "default", the server's administrative user`))
	}
	if !identRe.MatchString(u.Database) {
		errs = append(errs, fmt.Errorf("database name %q must match %s", u.Database, identRe))
	}
	if len(u.Password) < 12 {
		errs = append(errs, errors.New("read-only user password must have at least 12 characters"))
	}
	if u.Limits.MaxExecutionTime < time.Second || u.Limits.MaxMemoryUsage < 1<<20 {
		errs = append(errs, fmt.Errorf("read-only user limits must be at least 1s and 1 MiB, got %s and %d bytes", u.Limits.MaxExecutionTime, u.Limits.MaxMemoryUsage))
	}
	for _, n := range u.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				errs = append(errs, fmt.Errorf("network %q is neither an IP address nor a CIDR prefix", n))
			}
		}
	}
	return errors.Join(errs...)
}

func (u ReadOnlyUser) passwordHash() string {
	sum := sha256.Sum256([]byte(u.Password))
	return hex.EncodeToString(sum[:])
}

// seconds is the limit as the integer servers before 19.x take.
func (u ReadOnlyUser) seconds() int {
	return int((u.Limits.MaxExecutionTime + time.Second - 1) / time.Second)
}

// SQL returns the statements that create (or replace) u on a server with
// SQL access control, in order. They hold the password's SHA-256, never
// the password.
func (u ReadOnlyUser) SQL() ([]string, error) {
	if err := u.check(); err != nil {
		return nil, fmt.Errorf("cannot make read-only user: %w", err)
	}
	host := "ANY"
	if len(u.Networks) > 0 {
		quoted := make([]string, len(u.Networks))
		for i, n := range u.Networks {
			quoted[i] = "'" + n + "'"
		}
		host = "IP " + strings.Join(quoted, ", ")
	}
	return []string{
		fmt.Sprintf("CREATE SETTINGS PROFILE OR REPLACE %s SETTINGS readonly = 2, max_execution_time = %d MAX %d, max_memory_usage = %d MAX %d",
			ReadOnlyProfile, u.seconds(), u.seconds(), u.Limits.MaxMemoryUsage, u.Limits.MaxMemoryUsage),
		fmt.Sprintf("CREATE USER OR REPLACE %s IDENTIFIED WITH sha256_hash BY '%s' HOST %s SETTINGS PROFILE '%s'",
			u.Name, u.passwordHash(), host, ReadOnlyProfile),
		fmt.Sprintf("GRANT SELECT ON %s.* TO %s", u.Database, u.Name),
	}, nil
}

// UsersXML returns the users.d file that defines u on a server without SQL
// access control: put it in the users.d directory beside the server's
// users.xml (Debian: /etc/clickhouse-server/users.d/), which the server
// reloads by itself. It holds the password's SHA-256, never the password.
func (u ReadOnlyUser) UsersXML() ([]byte, error) {
	if err := u.check(); err != nil {
		return nil, fmt.Errorf("cannot make read-only user: %w", err)
	}
	nets := u.Networks
	if len(nets) == 0 {
		nets = []string{"::/0"}
	}
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<?xml version="1.0"?>
<!-- tpflow read-only user for Grafana and the API, made by tpflow migrate.
     SELECT on %[1]s only (allow_databases), readonly=2, every query bounded. -->
<yandex>
    <profiles>
        <%[2]s>
            <readonly>2</readonly>
            <max_execution_time>%[3]d</max_execution_time>
            <max_memory_usage>%[4]d</max_memory_usage>
        </%[2]s>
    </profiles>
    <users>
        <%[5]s>
            <password_sha256_hex>%[6]s</password_sha256_hex>
            <networks>
`, esc(u.Database), ReadOnlyProfile, u.seconds(), u.Limits.MaxMemoryUsage, u.Name, u.passwordHash())
	for _, n := range nets {
		fmt.Fprintf(&b, "                <ip>%s</ip>\n", esc(n))
	}
	fmt.Fprintf(&b, `            </networks>
            <profile>%[1]s</profile>
            <quota>default</quota>
            <allow_databases>
                <database>%[2]s</database>
            </allow_databases>
        </%[3]s>
    </users>
</yandex>
`, ReadOnlyProfile, esc(u.Database), u.Name)
	return b.Bytes(), nil
}

// ErrNoSQLAccessControl is returned by CreateReadOnlyUser for a server
// that creates users only from its configuration files (before 20.5):
// write UsersXML into its users.d directory instead.
var ErrNoSQLAccessControl = errors.New("this ClickHouse server has no SQL access control (it came in 20.5): write the users.d file instead")

// CreateReadOnlyUser creates or replaces u with SQL on the server of conn,
// whose user needs access management (access_management=1). On a server
// before 20.5 it changes nothing and returns ErrNoSQLAccessControl.
func CreateReadOnlyUser(ctx context.Context, conn driver.Conn, u ReadOnlyUser) error {
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return fmt.Errorf("cannot read ClickHouse version: %w", err)
	}
	v, err := ParseServerVersion(version)
	if err != nil {
		return err
	}
	if !v.SQLAccessControl() {
		return fmt.Errorf("ClickHouse %s: %w", version, ErrNoSQLAccessControl)
	}
	stmts, err := u.SQL()
	if err != nil {
		return err
	}
	for i, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			// Not the statement: it holds the password's hash.
			what := strings.Join(strings.Fields(s)[:3], " ")
			return fmt.Errorf("cannot create read-only user %s, statement %d (%s ...); the connecting user needs access_management: %w", u.Name, i+1, what, err)
		}
	}
	return nil
}
