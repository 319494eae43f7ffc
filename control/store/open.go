package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// IsPostgres reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql://); any other DSN is a SQLite file path.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the store of dsn — a PostgreSQL URL or the path of a SQLite
// file, created with its directory when missing — and applies the
// schema migrations. now stamps operations and versions; nil is time.Now.
func Open(ctx context.Context, dsn string, now func() time.Time) (Store, error) {
	if now == nil {
		now = time.Now
	}
	var (
		db  *sql.DB
		d   dialect
		err error
	)
	if IsPostgres(dsn) {
		d = postgres
		db, err = sql.Open("pgx", dsn)
	} else {
		d = sqlite
		db, err = openSQLite(dsn)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open control store %s: %w", redact(dsn), err)
	}
	s := &sqlStore{db: db, d: d, now: now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate control store %s: %w", redact(dsn), err)
	}
	return s, nil
}

// openSQLite opens the file at path with a busy timeout, WAL and one
// connection: SQLite has one writer, and one connection makes every
// transaction of this process wait its turn instead of failing busy.
func openSQLite(path string) (*sql.DB, error) {
	if err := CheckDSN(path); err != nil {
		return nil, err
	}
	path = strings.TrimPrefix(path, "file:")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// redact hides a URL's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// dialect is what differs between SQLite and PostgreSQL.
type dialect struct {
	name string
	// serial is the column type of an auto-incremented primary key.
	serial string
	// lockMigrations serialises migrations of several processes.
	lockMigrations string
	// lockScope serialises the writers of one configuration scope until
	// their transaction ends (its argument is the scope), so that they
	// queue instead of colliding on the next version number.
	lockScope string
	// numbered says placeholders are $1, $2… instead of ?.
	numbered bool
	// retry reports whether a transaction failed only because another
	// committed first, so running it again may succeed.
	retry func(error) bool
}

var sqlite = dialect{
	name:   "sqlite",
	serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
	retry:  func(error) bool { return false },
}

var postgres = dialect{
	name:           "postgres",
	serial:         "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
	lockMigrations: "SELECT pg_advisory_xact_lock(7349001)",
	lockScope:      "SELECT pg_advisory_xact_lock(7349003, hashtext(?))",
	numbered:       true,
	retry: func(err error) bool {
		var pe *pgconn.PgError
		// unique_violation, serialization_failure, deadlock_detected
		return errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "40001" || pe.Code == "40P01")
	},
}

// bind rewrites ? placeholders for the dialect; the queries of this
// package have no ? inside literals.
func (d dialect) bind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CheckDSN reports a DSN Open would refuse without trying it: an
// unparsable PostgreSQL URL, or a SQLite path with options.
func CheckDSN(dsn string) error {
	if IsPostgres(dsn) {
		if _, err := url.Parse(dsn); err != nil {
			return fmt.Errorf("%s is not a PostgreSQL URL", redact(dsn))
		}
		return nil
	}
	p := strings.TrimPrefix(dsn, "file:")
	if p == "" {
		return errors.New("empty SQLite path")
	}
	if strings.ContainsRune(p, '?') {
		return fmt.Errorf("SQLite path %q: options are set by tpflow, give the path only", p)
	}
	return nil
}
