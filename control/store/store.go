// Package store keeps the control plane's state: the topology, the
// configuration versions and the operation history, in SQLite
// (modernc.org/sqlite, the default) or PostgreSQL (pgx), behind the one
// Store interface. Every write records its operation in the same
// transaction, together with an outbox row from which the operations are
// exported to ClickHouse (see Outbox).
package store

import (
	"context"

	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/control"
)

// Store is the control plane's state. Every method that changes state
// takes the actor, writes one operation record with the state before and
// after in the same transaction, and returns it. Errors wrap
// control.ErrNotFound, control.ErrConflict or control.ErrInvalid where
// those apply. A Store is safe for concurrent use.
type Store interface {
	PutSystem(ctx context.Context, a control.Actor, s control.System) (control.Operation, error)
	DeleteSystem(ctx context.Context, a control.Actor, name string) (control.Operation, error)
	Systems(ctx context.Context) ([]control.System, error)

	PutApp(ctx context.Context, a control.Actor, app control.App) (control.Operation, error)
	DeleteApp(ctx context.Context, a control.Actor, system, name string) (control.Operation, error)
	Apps(ctx context.Context, system string) ([]control.App, error)

	PutGroup(ctx context.Context, a control.Actor, g control.Group) (control.Operation, error)
	DeleteGroup(ctx context.Context, a control.Actor, system, app, name string) (control.Operation, error)
	Groups(ctx context.Context, system, app string) ([]control.Group, error)

	PutInstance(ctx context.Context, a control.Actor, in control.Instance) (control.Operation, error)
	DeleteInstance(ctx context.Context, a control.Actor, id string) (control.Operation, error)
	Instances(ctx context.Context, f control.InstanceFilter) ([]control.Instance, error)

	// ImportTopology stores t as the placement rules and creates every
	// system, app and group its labels name that does not exist yet.
	ImportTopology(ctx context.Context, a control.Actor, t *topology.Topology) (control.Operation, error)
	// Topology returns the stored placement rules; an empty topology
	// when none were imported.
	Topology(ctx context.Context) (*topology.Topology, error)

	// CreateVersion appends a version of scope with files (as
	// control.CheckFiles returns them). A non-zero parent must be the
	// scope's latest version (ErrConflict otherwise), so two people
	// editing the same version do not overwrite each other.
	CreateVersion(ctx context.Context, a control.Actor, scope control.Scope, files []control.File, message string, parent int64) (control.Version, control.Operation, error)
	// Rollback appends a version with the files of version to.
	Rollback(ctx context.Context, a control.Actor, scope control.Scope, to int64, message string) (control.Version, control.Operation, error)
	// Version returns a version with its files; n = 0 is the latest.
	Version(ctx context.Context, scope control.Scope, n int64) (control.Version, error)
	// Versions lists a scope's versions newest first, without files.
	Versions(ctx context.Context, scope control.Scope, limit int) ([]control.Version, error)
	// NodeScopes lists every node selector scope that has a version.
	NodeScopes(ctx context.Context) ([]control.Scope, error)

	// Operations lists operations newest first.
	Operations(ctx context.Context, f control.OperationFilter) ([]control.Operation, error)

	// Outbox is the queue of operations not yet exported to ClickHouse.
	Outbox
	// Rollouts keeps the rollouts and their leadership.
	Rollouts

	Close() error
}

// Outbox is the queue of operations waiting to be exported.
type Outbox interface {
	// Pending returns up to limit queued operations, oldest first.
	Pending(ctx context.Context, limit int) ([]control.Operation, error)
	// Done removes the operations with ids from the queue.
	Done(ctx context.Context, ids []int64) error
}
