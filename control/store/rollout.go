package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tpflow/tpflow/control"
)

// Rollouts keeps rollouts, the agents each wave reached, the versions
// marked bad, and the leadership of the replicas over them.
type Rollouts interface {
	// CreateRollout starts a rollout of version r.Version of r.Scope with
	// r.Waves; ErrConflict when the version is marked bad or the scope
	// has a rollout running or paused.
	CreateRollout(ctx context.Context, a control.Actor, r control.Rollout) (control.Rollout, control.Operation, error)
	// Rollout returns one rollout.
	Rollout(ctx context.Context, id int64) (control.Rollout, error)
	// Rollouts lists the rollouts in any of states (all for none), newest first.
	Rollouts(ctx context.Context, states ...control.RolloutState) ([]control.Rollout, error)
	// StartWave records members as the agents of r's current wave and the
	// wave as started at r.WaveStarted, once: ErrConflict when the stored
	// rollout is no longer at an unstarted wave r.Wave.
	StartWave(ctx context.Context, a control.Actor, r control.Rollout, members []string) (control.Operation, error)
	// UpdateRollout stores r's state, wave, failures and reason, recording
	// action; ErrConflict when the stored rollout is not at before's wave
	// and state (someone else changed it).
	UpdateRollout(ctx context.Context, a control.Actor, before, r control.Rollout, action string) (control.Operation, error)
	// Members returns every agent a rollout's waves reached, with its wave.
	Members(ctx context.Context, id int64) (map[string]int, error)
	// MarkBad marks a version bad: CreateRollout refuses it since.
	MarkBad(ctx context.Context, a control.Actor, scope control.Scope, version int64, reason string) (control.Operation, error)
	// IsBad reports whether a version is marked bad.
	IsBad(ctx context.Context, scope control.Scope, version int64) (bool, error)
	// Lead tries to become the replica that runs rollouts. On PostgreSQL
	// it takes a session advisory lock on a connection of its own, held
	// until release or until the connection is lost (Leader.Held then
	// fails); on SQLite, one process owns the file, and it always leads.
	Lead(ctx context.Context) (Leader, bool, error)
}

// Leader is a held leadership.
type Leader interface {
	// Held is nil while the leadership is still held.
	Held(ctx context.Context) error
	// Release gives it up.
	Release()
}

const rolloutCols = "id, scope, version, sha256, waves, state, wave, wave_started, failures, reason"

func scanRollout(sc func(...any) error) (control.Rollout, error) {
	var r control.Rollout
	var scope, waves, state string
	var started int64
	if err := sc(&r.ID, &scope, &r.Version, &r.SHA256, &waves, &state, &r.Wave, &started, &r.Failures, &r.Reason); err != nil {
		return r, err
	}
	r.State, r.WaveStarted = control.RolloutState(state), fromNanos(started)
	var err error
	if r.Scope, err = control.ParseScope(scope); err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(waves), &r.Waves)
}

func (s *sqlStore) CreateRollout(ctx context.Context, a control.Actor, r control.Rollout) (control.Rollout, control.Operation, error) {
	var op control.Operation
	if a.Who == "" {
		return r, op, control.Invalidf("a change needs who makes it")
	}
	if err := control.CheckWaves(r.Waves); err != nil {
		return r, op, err
	}
	sc, err := r.Scope.Canonical()
	if err != nil {
		return r, op, err
	}
	r.Scope = sc
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockScope(ctx, tx, sc); err != nil {
			return err
		}
		v, err := s.version(ctx, tx, sc, r.Version)
		if err != nil {
			return err
		}
		if bad, err := s.exists(ctx, tx, "SELECT 1 FROM bad_versions WHERE scope = ? AND version = ?", sc.String(), v.Version); err != nil || bad {
			if err == nil {
				err = fmt.Errorf("%w: version %d of %s is marked bad", control.ErrConflict, v.Version, sc)
			}
			return err
		}
		if err := s.none(ctx, tx, "a rollout of "+sc.String()+" is running or paused; abort it first",
			"SELECT 1 FROM rollouts WHERE scope = ? AND state IN ('running', 'paused')", sc.String()); err != nil {
			return err
		}
		r.Version, r.SHA256, r.State, r.Wave, r.Failures, r.Reason = v.Version, v.SHA256, control.RolloutRunning, 0, 0, ""
		r.WaveStarted = timeZero
		waves, _ := json.Marshal(r.Waves)
		if err := tx.QueryRowContext(ctx, s.d.bind(`INSERT INTO rollouts (scope, version, sha256, waves, state, wave, wave_started, failures, reason)
			VALUES (?, ?, ?, ?, ?, 0, 0, 0, '') RETURNING id`), sc.String(), r.Version, r.SHA256, string(waves), string(r.State)).Scan(&r.ID); err != nil {
			return err
		}
		op, err = s.record(ctx, tx, a, rolloutTarget(r.ID), "rollout.create", nil, r)
		return err
	})
	return r, op, err
}

func rolloutTarget(id int64) string { return "rollout:" + strconv.FormatInt(id, 10) }

func (s *sqlStore) Rollout(ctx context.Context, id int64) (control.Rollout, error) {
	got, err := one(ctx, s, s.db, scanRollout, "SELECT "+rolloutCols+" FROM rollouts WHERE id = ?", id)
	if err != nil {
		return control.Rollout{}, err
	}
	if got == nil {
		return control.Rollout{}, notFound("rollout " + strconv.FormatInt(id, 10))
	}
	return got.(control.Rollout), nil
}

func (s *sqlStore) Rollouts(ctx context.Context, states ...control.RolloutState) ([]control.Rollout, error) {
	q := "SELECT " + rolloutCols + " FROM rollouts"
	var args []any
	if len(states) > 0 {
		q += " WHERE state IN (?" + strings.Repeat(", ?", len(states)-1) + ")"
		for _, st := range states {
			args = append(args, string(st))
		}
	}
	return all(ctx, s, s.db, scanRollout, q+" ORDER BY id DESC", args...)
}

// casRollout updates the stored rollout from before to r, or fails with
// ErrConflict when it is not at before any more.
func (s *sqlStore) casRollout(ctx context.Context, q querier, before, r control.Rollout) error {
	res, err := q.ExecContext(ctx, s.d.bind(`UPDATE rollouts SET state = ?, wave = ?, wave_started = ?, failures = ?, reason = ?
		WHERE id = ? AND state = ? AND wave = ? AND wave_started = ?`),
		string(r.State), r.Wave, nanos(r.WaveStarted), r.Failures, r.Reason, r.ID, string(before.State), before.Wave, nanos(before.WaveStarted))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err == nil {
			err = fmt.Errorf("%w: rollout %d changed meanwhile", control.ErrConflict, r.ID)
		}
		return err
	}
	return nil
}

func (s *sqlStore) StartWave(ctx context.Context, a control.Actor, r control.Rollout, members []string) (control.Operation, error) {
	var op control.Operation
	if r.WaveStarted.IsZero() {
		return op, control.Invalidf("BUG: StartWave needs the wave's start time")
	}
	before := r
	before.WaveStarted = timeZero
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.casRollout(ctx, tx, before, r); err != nil {
			return err
		}
		for _, m := range members {
			if err := s.exec(ctx, tx, "INSERT INTO rollout_members (rollout_id, agent, wave) VALUES (?, ?, ?)", r.ID, m, r.Wave); err != nil {
				return err
			}
		}
		var err error
		op, err = s.record(ctx, tx, a, rolloutTarget(r.ID), "rollout.wave", before, struct {
			control.Rollout
			Members []string `json:"members"`
		}{r, members})
		return err
	})
	return op, err
}

func (s *sqlStore) UpdateRollout(ctx context.Context, a control.Actor, before, r control.Rollout, action string) (control.Operation, error) {
	var op control.Operation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.casRollout(ctx, tx, before, r); err != nil {
			return err
		}
		var err error
		op, err = s.record(ctx, tx, a, rolloutTarget(r.ID), action, before, r)
		return err
	})
	return op, err
}

func (s *sqlStore) Members(ctx context.Context, id int64) (map[string]int, error) {
	type m struct {
		agent string
		wave  int
	}
	rows, err := all(ctx, s, s.db, func(sc func(...any) error) (m, error) { var v m; return v, sc(&v.agent, &v.wave) },
		"SELECT agent, wave FROM rollout_members WHERE rollout_id = ?", id)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.agent] = r.wave
	}
	return out, nil
}

func (s *sqlStore) MarkBad(ctx context.Context, a control.Actor, scope control.Scope, version int64, reason string) (control.Operation, error) {
	var op control.Operation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.exec(ctx, tx, `INSERT INTO bad_versions (scope, version, reason, marked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, version) DO UPDATE SET reason = excluded.reason`, scope.String(), version, reason, s.now().UnixNano()); err != nil {
			return err
		}
		var err error
		op, err = s.record(ctx, tx, control.Actor{Who: a.Who, Reason: reason}, fmt.Sprintf("config:%s@%d", scope, version), "config.mark_bad", nil, map[string]any{"bad": true})
		return err
	})
	return op, err
}

func (s *sqlStore) IsBad(ctx context.Context, scope control.Scope, version int64) (bool, error) {
	return s.exists(ctx, s.db, "SELECT 1 FROM bad_versions WHERE scope = ? AND version = ?", scope.String(), version)
}

// leadershipKey is the PostgreSQL advisory lock key of rollout leadership.
const leadershipKey = 7349002

func (s *sqlStore) Lead(ctx context.Context) (Leader, bool, error) {
	if !s.d.numbered { // SQLite
		return alwaysLeader{}, true, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", leadershipKey).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, err
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return &pgLeader{conn: conn}, true, nil
}

type alwaysLeader struct{}

func (alwaysLeader) Held(context.Context) error { return nil }
func (alwaysLeader) Release()                   {}

type pgLeader struct{ conn *sql.Conn }

// Held checks that the connection holding the lock still holds it.
func (l *pgLeader) Held(ctx context.Context) error {
	var n int
	err := l.conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND pid = pg_backend_pid() AND granted", leadershipKey).Scan(&n)
	if err == nil && n == 0 {
		err = errors.New("the advisory lock is no longer held")
	}
	return err
}

func (l *pgLeader) Release() {
	_, _ = l.conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", leadershipKey)
	l.conn.Close()
}
