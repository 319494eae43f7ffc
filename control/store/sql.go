package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/control"
)

// sqlStore is the Store over database/sql, for both dialects.
type sqlStore struct {
	db  *sql.DB
	d   dialect
	now func() time.Time
}

// querier is what a transaction and the database share.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *sqlStore) Close() error { return s.db.Close() }

// maxTxAttempts bounds how often a transaction that lost a race runs again.
const maxTxAttempts = 8

// tx runs f in a transaction, again when it lost a race with another
// writer (PostgreSQL with several replicas).
func (s *sqlStore) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	var err error
	for range maxTxAttempts {
		if err = s.tryTx(ctx, f); err == nil || !s.d.retry(err) {
			return err
		}
	}
	return err
}

func (s *sqlStore) tryTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) error {
	_, err := q.ExecContext(ctx, s.d.bind(query), args...)
	return err
}

// record appends the operation of a change with its outbox row.
func (s *sqlStore) record(ctx context.Context, q querier, a control.Actor, target, action string, before, after any) (control.Operation, error) {
	op := control.Operation{
		Who: a.Who, At: s.now().UTC(), Target: target, Action: action,
		Before: jsonOf(before), After: jsonOf(after), Result: control.ResultOK, Reason: a.Reason,
	}
	if op.Who == "" {
		panic("BUG: an operation without who")
	}
	err := q.QueryRowContext(ctx, s.d.bind(`INSERT INTO operations (at, who, target, action, before_, after_, result, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		op.At.UnixNano(), op.Who, op.Target, op.Action, op.Before, op.After, op.Result, op.Reason).Scan(&op.ID)
	if err != nil {
		return op, fmt.Errorf("cannot record operation: %w", err)
	}
	if err := s.exec(ctx, q, "INSERT INTO operations_outbox (id) VALUES (?)", op.ID); err != nil {
		return op, fmt.Errorf("cannot queue operation: %w", err)
	}
	return op, nil
}

// jsonOf is v as JSON; nil (no object) is "".
func jsonOf(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot marshal " + fmt.Sprintf("%T", v) + ": " + err.Error())
	}
	return string(b)
}

// change runs a write of target in a transaction: load gives the state
// before (nil when absent), write changes it and returns the state after
// (nil when deleted); the operation is recorded in the same transaction.
func (s *sqlStore) change(ctx context.Context, a control.Actor, target string, load func(q querier) (any, error), write func(q querier, before any) (after any, err error)) (control.Operation, error) {
	if a.Who == "" {
		return control.Operation{}, control.Invalidf("a change needs who makes it")
	}
	var op control.Operation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		before, err := load(tx)
		if err != nil {
			return err
		}
		after, err := write(tx, before)
		if err != nil {
			return err
		}
		action := "update"
		switch {
		case before == nil:
			action = "create"
		case after == nil:
			action = "delete"
		}
		op, err = s.record(ctx, tx, a, target, action, before, after)
		return err
	})
	return op, err
}

// one scans a single row into dst, nil when there is none.
func one[T any](ctx context.Context, s *sqlStore, q querier, scan func(sc func(...any) error) (T, error), query string, args ...any) (any, error) {
	rows, err := q.QueryContext(ctx, s.d.bind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	v, err := scan(rows.Scan)
	if err != nil {
		return nil, err
	}
	return v, rows.Err()
}

// all scans every row.
func all[T any](ctx context.Context, s *sqlStore, q querier, scan func(sc func(...any) error) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, s.d.bind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// exists reports whether the query returns a row.
func (s *sqlStore) exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	v, err := one(ctx, s, q, func(sc func(...any) error) (int, error) { var n int; return n, sc(&n) }, query, args...)
	return v != nil, err
}

// need returns an ErrConflict naming what when the query finds no row.
func (s *sqlStore) need(ctx context.Context, q querier, what string, query string, args ...any) error {
	ok, err := s.exists(ctx, q, query, args...)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s does not exist", control.ErrConflict, what)
	}
	return err
}

// none returns an ErrConflict when the query finds a row.
func (s *sqlStore) none(ctx context.Context, q querier, what string, query string, args ...any) error {
	ok, err := s.exists(ctx, q, query, args...)
	if err == nil && ok {
		err = fmt.Errorf("%w: %s", control.ErrConflict, what)
	}
	return err
}

func notFound(what string) error { return fmt.Errorf("%w: %s", control.ErrNotFound, what) }

// Systems.

func scanSystem(sc func(...any) error) (control.System, error) {
	var v control.System
	return v, sc(&v.Name, &v.Description)
}

func (s *sqlStore) loadSystem(ctx context.Context, q querier, name string) (any, error) {
	return one(ctx, s, q, scanSystem, "SELECT name, description FROM systems WHERE name = ?", name)
}

func (s *sqlStore) PutSystem(ctx context.Context, a control.Actor, v control.System) (control.Operation, error) {
	if err := v.Validate(); err != nil {
		return control.Operation{}, err
	}
	return s.change(ctx, a, "system:"+v.Name,
		func(q querier) (any, error) { return s.loadSystem(ctx, q, v.Name) },
		func(q querier, _ any) (any, error) {
			return v, s.exec(ctx, q, `INSERT INTO systems (name, description) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET description = excluded.description`, v.Name, v.Description)
		})
}

func (s *sqlStore) DeleteSystem(ctx context.Context, a control.Actor, name string) (control.Operation, error) {
	return s.change(ctx, a, "system:"+name,
		func(q querier) (any, error) { return s.loadSystem(ctx, q, name) },
		func(q querier, before any) (any, error) {
			if before == nil {
				return nil, notFound("system " + name)
			}
			if err := s.none(ctx, q, "system "+name+" still has apps; delete them first", "SELECT 1 FROM apps WHERE system = ?", name); err != nil {
				return nil, err
			}
			return nil, s.exec(ctx, q, "DELETE FROM systems WHERE name = ?", name)
		})
}

func (s *sqlStore) Systems(ctx context.Context) ([]control.System, error) {
	return all(ctx, s, s.db, scanSystem, "SELECT name, description FROM systems ORDER BY name")
}

// Apps.

func scanApp(sc func(...any) error) (control.App, error) {
	var v control.App
	return v, sc(&v.System, &v.Name, &v.Description)
}

func (s *sqlStore) loadApp(ctx context.Context, q querier, system, name string) (any, error) {
	return one(ctx, s, q, scanApp, "SELECT system, name, description FROM apps WHERE system = ? AND name = ?", system, name)
}

func (s *sqlStore) PutApp(ctx context.Context, a control.Actor, v control.App) (control.Operation, error) {
	if err := v.Validate(); err != nil {
		return control.Operation{}, err
	}
	return s.change(ctx, a, "app:"+v.System+"/"+v.Name,
		func(q querier) (any, error) { return s.loadApp(ctx, q, v.System, v.Name) },
		func(q querier, _ any) (any, error) {
			if err := s.need(ctx, q, "system "+v.System, "SELECT 1 FROM systems WHERE name = ?", v.System); err != nil {
				return nil, err
			}
			return v, s.exec(ctx, q, `INSERT INTO apps (system, name, description) VALUES (?, ?, ?)
				ON CONFLICT (system, name) DO UPDATE SET description = excluded.description`, v.System, v.Name, v.Description)
		})
}

func (s *sqlStore) DeleteApp(ctx context.Context, a control.Actor, system, name string) (control.Operation, error) {
	return s.change(ctx, a, "app:"+system+"/"+name,
		func(q querier) (any, error) { return s.loadApp(ctx, q, system, name) },
		func(q querier, before any) (any, error) {
			if before == nil {
				return nil, notFound("app " + system + "/" + name)
			}
			if err := s.none(ctx, q, "app "+system+"/"+name+" still has groups; delete them first",
				"SELECT 1 FROM app_groups WHERE system = ? AND app = ?", system, name); err != nil {
				return nil, err
			}
			return nil, s.exec(ctx, q, "DELETE FROM apps WHERE system = ? AND name = ?", system, name)
		})
}

func (s *sqlStore) Apps(ctx context.Context, system string) ([]control.App, error) {
	return all(ctx, s, s.db, scanApp, "SELECT system, name, description FROM apps WHERE system = ? OR ? = '' ORDER BY system, name", system, system)
}

// Groups.

func scanGroup(sc func(...any) error) (control.Group, error) {
	var v control.Group
	return v, sc(&v.System, &v.App, &v.Name, &v.Env, &v.IDC)
}

const groupCols = "system, app, name, env, idc"

func (s *sqlStore) loadGroup(ctx context.Context, q querier, system, app, name string) (any, error) {
	return one(ctx, s, q, scanGroup, "SELECT "+groupCols+" FROM app_groups WHERE system = ? AND app = ? AND name = ?", system, app, name)
}

func (s *sqlStore) PutGroup(ctx context.Context, a control.Actor, v control.Group) (control.Operation, error) {
	if err := v.Validate(); err != nil {
		return control.Operation{}, err
	}
	return s.change(ctx, a, "group:"+v.System+"/"+v.App+"/"+v.Name,
		func(q querier) (any, error) { return s.loadGroup(ctx, q, v.System, v.App, v.Name) },
		func(q querier, _ any) (any, error) {
			if err := s.need(ctx, q, "app "+v.System+"/"+v.App, "SELECT 1 FROM apps WHERE system = ? AND name = ?", v.System, v.App); err != nil {
				return nil, err
			}
			return v, s.upsertGroup(ctx, q, v)
		})
}

func (s *sqlStore) upsertGroup(ctx context.Context, q querier, v control.Group) error {
	return s.exec(ctx, q, `INSERT INTO app_groups (`+groupCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (system, app, name) DO UPDATE SET env = excluded.env, idc = excluded.idc`, v.System, v.App, v.Name, v.Env, v.IDC)
}

func (s *sqlStore) DeleteGroup(ctx context.Context, a control.Actor, system, app, name string) (control.Operation, error) {
	return s.change(ctx, a, "group:"+system+"/"+app+"/"+name,
		func(q querier) (any, error) { return s.loadGroup(ctx, q, system, app, name) },
		func(q querier, before any) (any, error) {
			if before == nil {
				return nil, notFound("group " + system + "/" + app + "/" + name)
			}
			if err := s.none(ctx, q, "group "+system+"/"+app+"/"+name+" still has instances; delete them first",
				"SELECT 1 FROM instances WHERE system = ? AND app = ? AND group_name = ?", system, app, name); err != nil {
				return nil, err
			}
			return nil, s.exec(ctx, q, "DELETE FROM app_groups WHERE system = ? AND app = ? AND name = ?", system, app, name)
		})
}

func (s *sqlStore) Groups(ctx context.Context, system, app string) ([]control.Group, error) {
	return all(ctx, s, s.db, scanGroup, "SELECT "+groupCols+" FROM app_groups WHERE (system = ? OR ? = '') AND (app = ? OR ? = '') ORDER BY system, app, name",
		system, system, app, app)
}

// Instances.

const instanceCols = "id, system, app, group_name, cluster, namespace, pod_uid, pod, container, container_id, host_ip, node, image, status, started_at, config_version"

func scanInstance(sc func(...any) error) (control.Instance, error) {
	var v control.Instance
	var started int64
	err := sc(&v.ID, &v.System, &v.App, &v.Group, &v.Cluster, &v.Namespace, &v.PodUID, &v.Pod, &v.Container,
		&v.ContainerID, &v.HostIP, &v.Node, &v.Image, &v.Status, &started, &v.ConfigVersion)
	v.StartedAt = fromNanos(started)
	return v, err
}

// nanos stores a time; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeZero is the zero time, as the store reads it back.
var timeZero time.Time

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (s *sqlStore) PutInstance(ctx context.Context, a control.Actor, v control.Instance) (control.Operation, error) {
	if err := v.Validate(); err != nil {
		return control.Operation{}, err
	}
	if y := v.StartedAt.Year(); !v.StartedAt.IsZero() && (y < 1678 || y > 2261) {
		return control.Operation{}, control.Invalidf("started_at %s is out of range (1678-2261)", v.StartedAt)
	}
	v.StartedAt = fromNanos(nanos(v.StartedAt))
	return s.change(ctx, a, "instance:"+v.ID,
		func(q querier) (any, error) {
			return one(ctx, s, q, scanInstance, "SELECT "+instanceCols+" FROM instances WHERE id = ?", v.ID)
		},
		func(q querier, _ any) (any, error) {
			if err := s.need(ctx, q, "group "+v.System+"/"+v.App+"/"+v.Group,
				"SELECT 1 FROM app_groups WHERE system = ? AND app = ? AND name = ?", v.System, v.App, v.Group); err != nil {
				return nil, err
			}
			set := []string{}
			for _, c := range strings.Split(instanceCols, ", ")[1:] {
				set = append(set, c+" = excluded."+c)
			}
			return v, s.exec(ctx, q, "INSERT INTO instances ("+instanceCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "+strings.Join(set, ", "),
				v.ID, v.System, v.App, v.Group, v.Cluster, v.Namespace, v.PodUID, v.Pod, v.Container, v.ContainerID,
				v.HostIP, v.Node, v.Image, v.Status, nanos(v.StartedAt), v.ConfigVersion)
		})
}

func (s *sqlStore) DeleteInstance(ctx context.Context, a control.Actor, id string) (control.Operation, error) {
	return s.change(ctx, a, "instance:"+id,
		func(q querier) (any, error) {
			return one(ctx, s, q, scanInstance, "SELECT "+instanceCols+" FROM instances WHERE id = ?", id)
		},
		func(q querier, before any) (any, error) {
			if before == nil {
				return nil, notFound("instance " + id)
			}
			return nil, s.exec(ctx, q, "DELETE FROM instances WHERE id = ?", id)
		})
}

func (s *sqlStore) Instances(ctx context.Context, f control.InstanceFilter) ([]control.Instance, error) {
	return all(ctx, s, s.db, scanInstance, "SELECT "+instanceCols+` FROM instances
		WHERE (system = ? OR ? = '') AND (app = ? OR ? = '') AND (group_name = ? OR ? = '') AND (node = ? OR ? = '') ORDER BY id`,
		f.System, f.System, f.App, f.App, f.Group, f.Group, f.Node, f.Node)
}

// Topology.

func (s *sqlStore) loadTopology(ctx context.Context, q querier) (string, error) {
	v, err := one(ctx, s, q, func(sc func(...any) error) (string, error) { var b string; return b, sc(&b) },
		"SELECT body FROM topology_file WHERE id = 1")
	if v == nil || err != nil {
		return "", err
	}
	return v.(string), nil
}

// importResult is the after-state of a topology import.
type importResult struct {
	Topology string   `json:"topology"`
	Created  []string `json:"created"`
}

func (s *sqlStore) ImportTopology(ctx context.Context, a control.Actor, t *topology.Topology) (control.Operation, error) {
	body, err := yaml.Marshal(t)
	if err != nil {
		return control.Operation{}, fmt.Errorf("cannot encode topology: %w", err)
	}
	labels := []topology.Labels{t.Default}
	for _, r := range t.Rules {
		labels = append(labels, over(t.Default, r.Labels))
	}
	if a.Who == "" {
		return control.Operation{}, control.Invalidf("a change needs who makes it")
	}
	var op control.Operation
	err = s.tx(ctx, func(tx *sql.Tx) error {
		before, err := s.loadTopology(ctx, tx)
		if err != nil {
			return err
		}
		res := importResult{Topology: string(body), Created: []string{}}
		for _, l := range labels {
			created, err := s.ensure(ctx, tx, l)
			if err != nil {
				return err
			}
			res.Created = append(res.Created, created...)
		}
		if err := s.exec(ctx, tx, `INSERT INTO topology_file (id, body) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body`, string(body)); err != nil {
			return err
		}
		var b any
		if before != "" {
			b = importResult{Topology: before, Created: []string{}}
		}
		op, err = s.record(ctx, tx, a, "topology", "import", b, res)
		return err
	})
	return op, err
}

// over is the labels of a rule laid over the default, as a collector
// resolves them: a label the rule leaves empty keeps the default's.
func over(d, r topology.Labels) topology.Labels {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	return topology.Labels{System: pick(d.System, r.System), App: pick(d.App, r.App), Group: pick(d.Group, r.Group),
		IDC: pick(d.IDC, r.IDC), Env: pick(d.Env, r.Env)}
}

// ensure creates the system, app and group that l names and that do not
// exist yet, returning the targets it created.
func (s *sqlStore) ensure(ctx context.Context, q querier, l topology.Labels) ([]string, error) {
	var created []string
	step := func(target, check string, checkArgs []any, insert string, insertArgs ...any) error {
		ok, err := s.exists(ctx, q, check, checkArgs...)
		if err != nil || ok {
			return err
		}
		created = append(created, target)
		return s.exec(ctx, q, insert, insertArgs...)
	}
	if l.System == "" {
		return nil, nil
	}
	for _, c := range [][2]string{{"system", l.System}, {"app", l.App}, {"group", l.Group}} {
		if c[1] != "" {
			if err := control.CheckName(c[0], c[1]); err != nil {
				return nil, err
			}
		}
	}
	if err := step("system:"+l.System, "SELECT 1 FROM systems WHERE name = ?", []any{l.System},
		"INSERT INTO systems (name, description) VALUES (?, '')", l.System); err != nil || l.App == "" {
		return created, err
	}
	if err := step("app:"+l.System+"/"+l.App, "SELECT 1 FROM apps WHERE system = ? AND name = ?", []any{l.System, l.App},
		"INSERT INTO apps (system, name, description) VALUES (?, ?, '')", l.System, l.App); err != nil || l.Group == "" {
		return created, err
	}
	err := step("group:"+l.System+"/"+l.App+"/"+l.Group, "SELECT 1 FROM app_groups WHERE system = ? AND app = ? AND name = ?",
		[]any{l.System, l.App, l.Group}, "INSERT INTO app_groups ("+groupCols+") VALUES (?, ?, ?, ?, ?)", l.System, l.App, l.Group, l.Env, l.IDC)
	return created, err
}

func (s *sqlStore) Topology(ctx context.Context) (*topology.Topology, error) {
	body, err := s.loadTopology(ctx, s.db)
	if err != nil {
		return nil, err
	}
	t, err := topology.Parse([]byte(body))
	if err != nil {
		return nil, fmt.Errorf("BUG: stored topology does not parse: %w", err)
	}
	return t, nil
}

// Configuration versions.

// versionSummary is a version as operations record it: the files are
// named, their bodies are in the version.
type versionSummary struct {
	Version int64    `json:"version"`
	SHA256  string   `json:"sha256"`
	Message string   `json:"message"`
	Files   []string `json:"files"`
}

func summary(v control.Version) versionSummary {
	s := versionSummary{Version: v.Version, SHA256: v.SHA256, Message: v.Message, Files: []string{}}
	for _, f := range v.Files {
		s.Files = append(s.Files, f.Name)
	}
	return s
}

func (s *sqlStore) CreateVersion(ctx context.Context, a control.Actor, scope control.Scope, files []control.File, message string, parent int64) (control.Version, control.Operation, error) {
	return s.appendVersion(ctx, a, scope, files, message, parent, "config.create")
}

func (s *sqlStore) appendVersion(ctx context.Context, a control.Actor, scope control.Scope, files []control.File, message string, parent int64, action string) (control.Version, control.Operation, error) {
	var (
		v  control.Version
		op control.Operation
	)
	scope, err := scope.Canonical()
	if err != nil {
		return v, op, err
	}
	files, err = control.CheckFiles(files)
	if err != nil {
		return v, op, err
	}
	if a.Who == "" {
		return v, op, control.Invalidf("a change needs who makes it")
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockScope(ctx, tx, scope); err != nil {
			return err
		}
		latest, err := s.version(ctx, tx, scope, 0)
		if err != nil && !errors.Is(err, control.ErrNotFound) {
			return err
		}
		if parent != 0 && parent != latest.Version {
			return fmt.Errorf("%w: version %d of %s is based on %d, but the latest is %d", control.ErrConflict, latest.Version+1, scope, parent, latest.Version)
		}
		v = control.Version{Scope: scope, Version: latest.Version + 1, SHA256: control.Hash(files), Parent: latest.Version,
			Author: a.Who, Message: message, CreatedAt: s.now().UTC(), Files: files}
		if err := s.exec(ctx, tx, `INSERT INTO config_versions (scope, version, sha256, parent, author, message, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, scope.String(), v.Version, v.SHA256, v.Parent, v.Author, v.Message, v.CreatedAt.UnixNano()); err != nil {
			return err
		}
		for _, f := range files {
			if err := s.exec(ctx, tx, "INSERT INTO config_files (scope, version, name, content_type, body) VALUES (?, ?, ?, ?, ?)",
				scope.String(), v.Version, f.Name, f.ContentType, f.Body); err != nil {
				return err
			}
		}
		var before any
		if latest.Version > 0 {
			before = summary(latest)
		}
		op, err = s.record(ctx, tx, a, "config:"+scope.String(), action, before, summary(v))
		return err
	})
	return v, op, err
}

// lockScope makes the writers of scope take turns until tx ends.
func (s *sqlStore) lockScope(ctx context.Context, tx *sql.Tx, scope control.Scope) error {
	if s.d.lockScope == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.bind(s.d.lockScope), scope.String())
	return err
}

func (s *sqlStore) Rollback(ctx context.Context, a control.Actor, scope control.Scope, to int64, message string) (control.Version, control.Operation, error) {
	if to <= 0 {
		return control.Version{}, control.Operation{}, control.Invalidf("rollback needs a version >= 1, got %d", to)
	}
	old, err := s.Version(ctx, scope, to)
	if err != nil {
		return control.Version{}, control.Operation{}, err
	}
	if message == "" {
		message = fmt.Sprintf("rollback to version %d", to)
	}
	return s.appendVersion(ctx, a, scope, old.Files, message, 0, "config.rollback")
}

func (s *sqlStore) Version(ctx context.Context, scope control.Scope, n int64) (control.Version, error) {
	scope, err := scope.Canonical()
	if err != nil {
		return control.Version{}, err
	}
	return s.version(ctx, s.db, scope, n)
}

const versionCols = "scope, version, sha256, parent, author, message, created_at"

func scanVersion(sc func(...any) error) (control.Version, error) {
	var v control.Version
	var scope string
	var created int64
	if err := sc(&scope, &v.Version, &v.SHA256, &v.Parent, &v.Author, &v.Message, &created); err != nil {
		return v, err
	}
	v.CreatedAt = fromNanos(created)
	sc2, err := control.ParseScope(scope)
	v.Scope = sc2
	return v, err
}

// version loads version n of scope with its files, the latest for 0.
func (s *sqlStore) version(ctx context.Context, q querier, scope control.Scope, n int64) (control.Version, error) {
	query := "SELECT " + versionCols + " FROM config_versions WHERE scope = ? AND version = ?"
	args := []any{scope.String(), n}
	if n == 0 {
		query = "SELECT " + versionCols + " FROM config_versions WHERE scope = ? ORDER BY version DESC LIMIT 1"
		args = args[:1]
	}
	got, err := one(ctx, s, q, scanVersion, query, args...)
	if err != nil {
		return control.Version{}, err
	}
	if got == nil {
		if n == 0 {
			return control.Version{}, notFound("no version of " + scope.String())
		}
		return control.Version{}, notFound(fmt.Sprintf("version %d of %s", n, scope))
	}
	v := got.(control.Version)
	v.Files, err = all(ctx, s, q, func(sc func(...any) error) (control.File, error) {
		var f control.File
		return f, sc(&f.Name, &f.ContentType, &f.Body)
	}, "SELECT name, content_type, body FROM config_files WHERE scope = ? AND version = ? ORDER BY name", scope.String(), v.Version)
	return v, err
}

func (s *sqlStore) Versions(ctx context.Context, scope control.Scope, limit int) ([]control.Version, error) {
	scope, err := scope.Canonical()
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > control.MaxOperationLimit {
		limit = control.DefaultOperationLimit
	}
	return all(ctx, s, s.db, scanVersion, "SELECT "+versionCols+" FROM config_versions WHERE scope = ? ORDER BY version DESC LIMIT ?", scope.String(), limit)
}

func (s *sqlStore) NodeScopes(ctx context.Context) ([]control.Scope, error) {
	names, err := all(ctx, s, s.db, func(sc func(...any) error) (string, error) { var n string; return n, sc(&n) },
		"SELECT DISTINCT scope FROM config_versions WHERE scope LIKE 'node:%' ORDER BY scope")
	if err != nil {
		return nil, err
	}
	out := make([]control.Scope, 0, len(names))
	for _, n := range names {
		sc, err := control.ParseScope(n)
		if err != nil {
			return nil, fmt.Errorf("BUG: stored scope %q: %w", n, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// Operations.

const operationCols = "id, at, who, target, action, before_, after_, result, reason"

func scanOperation(sc func(...any) error) (control.Operation, error) {
	var op control.Operation
	var at int64
	err := sc(&op.ID, &at, &op.Who, &op.Target, &op.Action, &op.Before, &op.After, &op.Result, &op.Reason)
	op.At = fromNanos(at)
	return op, err
}

func (s *sqlStore) Operations(ctx context.Context, f control.OperationFilter) ([]control.Operation, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Who != "" {
		add("who = ?", f.Who)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if f.TargetPrefix != "" {
		add("substr(target, 1, ?) = ?", len(f.TargetPrefix))
		args = append(args, f.TargetPrefix)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		add("at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.UnixNano())
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = control.DefaultOperationLimit
	}
	limit = min(limit, control.MaxOperationLimit)
	q := "SELECT " + operationCols + " FROM operations"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return all(ctx, s, s.db, scanOperation, q+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
}

func (s *sqlStore) Pending(ctx context.Context, limit int) ([]control.Operation, error) {
	return all(ctx, s, s.db, scanOperation, "SELECT o."+strings.ReplaceAll(operationCols, ", ", ", o.")+
		" FROM operations o JOIN operations_outbox x ON x.id = o.id ORDER BY o.id LIMIT ?", limit)
}

func (s *sqlStore) Done(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return s.exec(ctx, s.db, "DELETE FROM operations_outbox WHERE id IN (?"+strings.Repeat(", ?", len(ids)-1)+")", args...)
}
