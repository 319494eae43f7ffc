package clickhouse

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

//go:embed ddl/*.sql
var ddlFS embed.FS

// Migration is one numbered schema change. Statements run in order; each is
// idempotent (IF NOT EXISTS), so a migration interrupted half way is simply
// applied again.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
}

// Features says which optional DDL a server accepts. The thresholds are the
// first release in which the feature is usable without experimental
// settings, chosen conservatively from ClickHouse's changelog:
//
//   - LowCardinality(String): 19.3 (18.12–19.2 need
//     allow_experimental_low_cardinality_type; 18.16.1 here refuses it).
//   - Column codecs CODEC(ZSTD), Delta, DoubleDelta, Gorilla: 19.10 (ZSTD
//     and Delta came in 19.1/19.3, DoubleDelta and Gorilla settled later).
//   - Table TTL: 19.6.
//   - DateTime64: 20.1.
//   - ALTER TABLE ... ADD COLUMN IF NOT EXISTS: 20.1, conservatively
//     (18.16.1 here refuses it). Without it, Migrate treats a column that
//     already exists (DUPLICATE_COLUMN, or ILLEGAL_COLUMN "already exists"
//     as 18.16 says) as added, so a migration that adds
//     columns is safe to run again on every server.
type Features struct {
	LowCardinality       bool
	Codecs               bool
	TTL                  bool
	DateTime64           bool
	AddColumnIfNotExists bool
}

// ServerVersion is a ClickHouse release as reported by SELECT version().
type ServerVersion struct {
	Major, Minor int
}

// ParseServerVersion parses "18.16.1", "23.8.2.7" and the like; only the
// first two numbers matter.
func ParseServerVersion(s string) (ServerVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return ServerVersion{}, fmt.Errorf("cannot parse ClickHouse version %q: want MAJOR.MINOR[.PATCH...]", s)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 1 || minor < 0 {
		return ServerVersion{}, fmt.Errorf("cannot parse ClickHouse version %q: want MAJOR.MINOR[.PATCH...]", s)
	}
	return ServerVersion{Major: major, Minor: minor}, nil
}

// AtLeast reports whether v is major.minor or later.
func (v ServerVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// Features returns what v supports; see Features for the thresholds.
func (v ServerVersion) Features() Features {
	return Features{
		LowCardinality:       v.AtLeast(19, 3),
		Codecs:               v.AtLeast(19, 10),
		TTL:                  v.AtLeast(19, 6),
		DateTime64:           v.AtLeast(20, 1),
		AddColumnIfNotExists: v.AtLeast(20, 1),
	}
}

// DDLOptions parameterises the generated schema.
type DDLOptions struct {
	// Database qualifies every table name; it must be a plain identifier.
	Database string
	// Retention is the TTL per table in days (0: none), used when the
	// server supports TTL.
	Retention Retention
}

type ddlData struct {
	DB        string
	F         Features
	Retention Retention
}

// DDL returns the migrations for a server that reports serverVersion, in
// version order. It is a pure function: the same inputs give the same text.
func DDL(serverVersion string, opts DDLOptions) ([]Migration, error) {
	v, err := ParseServerVersion(serverVersion)
	if err != nil {
		return nil, err
	}
	if !identRe.MatchString(opts.Database) {
		return nil, fmt.Errorf("cannot generate DDL: database name %q must match %s", opts.Database, identRe)
	}
	f := v.Features()
	funcs := template.FuncMap{
		"lc": func() string {
			if f.LowCardinality {
				return "LowCardinality(String)"
			}
			return "String"
		},
		"codec": func(c string) string {
			if f.Codecs {
				return " CODEC(" + c + ")"
			}
			return ""
		},
		"addColumn": func() string {
			if f.AddColumnIfNotExists {
				return "ADD COLUMN IF NOT EXISTS"
			}
			return "ADD COLUMN"
		},
		"ttl": func(expr string, days int) string {
			if !f.TTL || days <= 0 {
				return ""
			}
			return fmt.Sprintf("\nTTL %s + INTERVAL %d DAY", expr, days)
		},
	}
	files, err := fs.Glob(ddlFS, "ddl/*.sql")
	if err != nil {
		panic("BUG: bad embedded DDL glob: " + err.Error())
	}
	data := ddlData{DB: opts.Database, F: f, Retention: opts.Retention}
	var out []Migration
	for _, name := range files { // fs.Glob returns names in lexical order
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, label, ok := strings.Cut(base, "_")
		n, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || n == 0 {
			panic("BUG: embedded DDL file " + name + " is not named NNNN_name.sql")
		}
		src, err := ddlFS.ReadFile(name)
		if err != nil {
			panic("BUG: cannot read embedded " + name + ": " + err.Error())
		}
		tmpl, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(src))
		if err != nil {
			panic("BUG: cannot parse embedded " + name + ": " + err.Error())
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			panic("BUG: cannot render embedded " + name + ": " + err.Error())
		}
		var stmts []string
		for _, s := range strings.Split(buf.String(), ";\n") {
			if s = strings.TrimSpace(s); s != "" {
				stmts = append(stmts, s)
			}
		}
		if len(out) > 0 && out[len(out)-1].Version >= uint32(n) {
			panic("BUG: embedded DDL versions are not strictly increasing at " + name)
		}
		out = append(out, Migration{Version: uint32(n), Name: label, Statements: stmts})
	}
	return out, nil
}

// MigrationsTable is the table, inside the configured database, that records
// every applied migration.
const MigrationsTable = "schema_migrations"

// Migrate creates cfg.Database if missing and applies, in order, every
// migration not yet recorded in schema_migrations, recording each once it
// succeeds. It returns the versions it applied; a second run applies none.
// Two processes migrating at once both succeed: every statement is
// idempotent, and duplicate records collapse (ReplacingMergeTree).
func Migrate(ctx context.Context, conn driver.Conn, cfg Config) ([]uint32, error) {
	if !identRe.MatchString(cfg.Database) {
		return nil, fmt.Errorf("cannot migrate: database name %q must match %s", cfg.Database, identRe)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return nil, fmt.Errorf("cannot read ClickHouse version: %w", err)
	}
	migs, err := DDL(version, DDLOptions{Database: cfg.Database, Retention: cfg.RetentionDays})
	if err != nil {
		return nil, err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database); err != nil {
		return nil, fmt.Errorf("cannot create database %s: %w", cfg.Database, err)
	}
	tbl := cfg.Database + "." + MigrationsTable
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+tbl+
		" (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", tbl, err)
	}
	done, err := AppliedMigrations(ctx, conn, cfg.Database)
	if err != nil {
		return nil, err
	}
	var applied []uint32
	for _, m := range migs {
		if _, ok := done[m.Version]; ok {
			continue
		}
		for i, s := range m.Statements {
			if err := conn.Exec(ctx, s); err != nil && !columnExists(s, err) {
				return applied, fmt.Errorf("cannot apply migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := record(ctx, conn, tbl, m); err != nil {
			return applied, fmt.Errorf("cannot record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// ClickHouse error codes that an ADD COLUMN of an existing column gets:
// DUPLICATE_COLUMN, and ILLEGAL_COLUMN on 18.16.
const (
	duplicateColumn = 15
	illegalColumn   = 44
)

// columnExists reports whether err says that the ADD COLUMN statement stmt
// added a column that exists already: on servers without ADD COLUMN IF NOT
// EXISTS this is how a migration run again finds its columns.
func columnExists(stmt string, err error) bool {
	var ex *proto.Exception
	if !errors.As(err, &ex) || !strings.Contains(stmt, " ADD COLUMN ") {
		return false
	}
	return ex.Code == duplicateColumn || ex.Code == illegalColumn && strings.Contains(ex.Message, "already exists")
}

// record inserts m into tbl. It uses a batch: over the native protocol
// 18.16 waits for data blocks even after INSERT ... VALUES.
func record(ctx context.Context, conn driver.Conn, tbl string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+tbl+" (version, name, applied_at)")
	if err != nil {
		return err
	}
	if err := b.Append(m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}

// AppliedMigrations returns the recorded migrations of database by version,
// with their names.
func AppliedMigrations(ctx context.Context, conn driver.Conn, database string) (map[uint32]string, error) {
	if !identRe.MatchString(database) {
		return nil, fmt.Errorf("cannot list migrations: database name %q must match %s", database, identRe)
	}
	rows, err := conn.Query(ctx, "SELECT version, any(name) FROM "+database+"."+MigrationsTable+" GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("cannot list applied migrations: %w", err)
	}
	defer rows.Close()
	done := make(map[uint32]string)
	for rows.Next() {
		var v uint32
		var n string
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("cannot scan applied migration: %w", err)
		}
		done[v] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list applied migrations: %w", err)
	}
	return done, nil
}
