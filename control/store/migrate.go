package store

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"text/template"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migration is one numbered schema change of the store.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations returns the store's migrations for the dialect named
// ("sqlite" or "postgres") in version order.
func Migrations(dialectName string) []Migration {
	d := sqlite
	if dialectName == postgres.name {
		d = postgres
	}
	return migrations(d)
}

func migrations(d dialect) []Migration {
	files, err := fs.Glob(migrationsFS, "migrations/*.sql")
	if err != nil {
		panic("BUG: bad embedded migrations glob: " + err.Error())
	}
	var out []Migration
	for _, name := range files {
		num, label, ok := strings.Cut(strings.TrimSuffix(path.Base(name), ".sql"), "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n <= 0 || len(out) > 0 && out[len(out)-1].Version >= n {
			panic("BUG: embedded migration " + name + " is not named NNNN_name.sql in increasing order")
		}
		src, _ := migrationsFS.ReadFile(name)
		tmpl := template.Must(template.New(name).Option("missingkey=error").Parse(string(src)))
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, map[string]string{"Serial": d.serial}); err != nil {
			panic("BUG: cannot render " + name + ": " + err.Error())
		}
		m := Migration{Version: n, Name: label}
		for _, s := range strings.Split(buf.String(), ";\n") {
			if s = strings.TrimSpace(s); s != "" {
				m.Statements = append(m.Statements, s)
			}
		}
		out = append(out, m)
	}
	return out
}

// migrate applies the missing migrations in one transaction, recording
// each in schema_migrations; on PostgreSQL an advisory lock makes
// replicas starting together take turns.
func (s *sqlStore) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lockMigrations != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"); err != nil {
			return err
		}
		done := map[int]bool{}
		rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			done[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range migrations(s.d) {
			if done[m.Version] {
				continue
			}
			for i, st := range m.Statements {
				if _, err := tx.ExecContext(ctx, st); err != nil {
					return fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.bind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
				m.Version, m.Name, s.now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}
