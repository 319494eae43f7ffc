// Package storetest is the one test suite every control store
// implementation passes: Run it with a function that hands out the DSN of
// a new, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/store"
)

// Run runs the suite; newDSN returns the DSN of a new, empty store that
// belongs to the test it is given.
func Run(t *testing.T, newDSN func(t *testing.T) string) {
	tests := []struct {
		name string
		f    func(t *testing.T, c *suite)
	}{
		{"Topology", testTopology},
		{"TopologyRefusals", testTopologyRefusals},
		{"ImportExport", testImportExport},
		{"Versions", testVersions},
		{"VersionRefusals", testVersionRefusals},
		{"ConcurrentVersions", testConcurrentVersions},
		{"Operations", testOperations},
		{"Outbox", testOutbox},
		{"Reopen", testReopen},
		{"Rollouts", testRollouts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDSN(t)
			c := &suite{t: t, dsn: dsn, clock: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
			c.s = c.open()
			tc.f(t, c)
		})
	}
}

type suite struct {
	t   *testing.T
	dsn string
	s   store.Store

	mu    sync.Mutex
	clock time.Time
}

// now advances a second on every call, so each operation has its time.
func (c *suite) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock = c.clock.Add(time.Second)
	return c.clock
}

func (c *suite) open() store.Store {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, c.dsn, c.now)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

var (
	ctx   = context.Background()
	alice = control.Actor{Who: "alice", Reason: "setup"}
	bob   = control.Actor{Who: "bob"}
)

// result is a value and the error that came with it; ok fails the test
// on the error.
type result[T any] struct {
	v   T
	err error
}

func res[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) ok(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

type result2[A, B any] struct {
	a   A
	b   B
	err error
}

func res2[A, B any](a A, b B, err error) result2[A, B] { return result2[A, B]{a, b, err} }

func (r result2[A, B]) ok(t *testing.T) (A, B) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.a, r.b
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

func (c *suite) seed(t *testing.T) {
	t.Helper()
	res(c.s.PutSystem(ctx, alice, control.System{Name: "shop", Description: "the shop"})).ok(t)
	res(c.s.PutApp(ctx, alice, control.App{System: "shop", Name: "cart"})).ok(t)
	res(c.s.PutGroup(ctx, alice, control.Group{System: "shop", App: "cart", Name: "blue", Env: "prod", IDC: "dc1"})).ok(t)
}

func testTopology(t *testing.T, c *suite) {
	c.seed(t)
	started := time.Date(2026, 12, 1, 8, 0, 0, 123456789, time.UTC)
	in := control.Instance{ID: "c0ffee", System: "shop", App: "cart", Group: "blue", Cluster: "k1", Namespace: "shop",
		PodUID: "uid-1", Pod: "cart-7d9f-abc", Container: "cart", ContainerID: "containerd://c0ffee", HostIP: "10.0.0.5",
		Node: "n1", Image: "cart:1.2", Status: "running", StartedAt: started, ConfigVersion: "abc123"}
	res(c.s.PutInstance(ctx, alice, in)).ok(t)
	res(c.s.PutInstance(ctx, alice, control.Instance{ID: "other", System: "shop", App: "cart", Group: "blue", Node: "n2"})).ok(t)

	if got := res(c.s.Systems(ctx)).ok(t); !slices.Equal(got, []control.System{{Name: "shop", Description: "the shop"}}) {
		t.Errorf("Systems = %+v", got)
	}
	if got := res(c.s.Apps(ctx, "shop")).ok(t); len(got) != 1 || got[0].Name != "cart" {
		t.Errorf("Apps = %+v", got)
	}
	if got := res(c.s.Groups(ctx, "shop", "cart")).ok(t); len(got) != 1 || got[0] != (control.Group{System: "shop", App: "cart", Name: "blue", Env: "prod", IDC: "dc1"}) {
		t.Errorf("Groups = %+v", got)
	}
	got := res(c.s.Instances(ctx, control.InstanceFilter{Node: "n1"})).ok(t)
	if len(got) != 1 || !got[0].StartedAt.Equal(started) {
		t.Fatalf("Instances(node n1) = %+v", got)
	}
	got[0].StartedAt = started
	if got[0] != in {
		t.Errorf("instance round trip:\n got %+v\nwant %+v", got[0], in)
	}
	if n := len(res(c.s.Instances(ctx, control.InstanceFilter{System: "shop", App: "cart", Group: "blue"})).ok(t)); n != 2 {
		t.Errorf("Instances(group) = %d, want 2", n)
	}

	// An update records the state before and after.
	op := res(c.s.PutGroup(ctx, bob, control.Group{System: "shop", App: "cart", Name: "blue", Env: "prod", IDC: "dc2"})).ok(t)
	if op.Action != "update" || op.Who != "bob" || op.Target != "group:shop/cart/blue" ||
		!strings.Contains(op.Before, `"idc":"dc1"`) || !strings.Contains(op.After, `"idc":"dc2"`) || op.Result != control.ResultOK {
		t.Errorf("update operation = %+v", op)
	}
	op = res(c.s.DeleteInstance(ctx, bob, "other")).ok(t)
	if op.Action != "delete" || op.After != "" || !strings.Contains(op.Before, `"node":"n2"`) {
		t.Errorf("delete operation = %+v", op)
	}
	if n := len(res(c.s.Instances(ctx, control.InstanceFilter{})).ok(t)); n != 1 {
		t.Errorf("%d instances after delete, want 1", n)
	}
}

func testTopologyRefusals(t *testing.T, c *suite) {
	c.seed(t)
	_, err := c.s.PutApp(ctx, alice, control.App{System: "nosuch", Name: "x"})
	wantErr(t, err, control.ErrConflict, "app of a missing system")
	_, err = c.s.PutGroup(ctx, alice, control.Group{System: "shop", App: "nosuch", Name: "g"})
	wantErr(t, err, control.ErrConflict, "group of a missing app")
	_, err = c.s.PutInstance(ctx, alice, control.Instance{ID: "i", System: "shop", App: "cart", Group: "nosuch"})
	wantErr(t, err, control.ErrConflict, "instance of a missing group")
	_, err = c.s.DeleteSystem(ctx, alice, "shop")
	wantErr(t, err, control.ErrConflict, "system with apps")
	_, err = c.s.DeleteApp(ctx, alice, "shop", "cart")
	wantErr(t, err, control.ErrConflict, "app with groups")
	_, err = c.s.DeleteSystem(ctx, alice, "nosuch")
	wantErr(t, err, control.ErrNotFound, "missing system")
	_, err = c.s.DeleteGroup(ctx, alice, "shop", "cart", "nosuch")
	wantErr(t, err, control.ErrNotFound, "missing group")
	for _, name := range []string{"", "a b", "-x", "x/y", strings.Repeat("a", 64), "\xff", "名前"} {
		_, err = c.s.PutSystem(ctx, alice, control.System{Name: name})
		wantErr(t, err, control.ErrInvalid, fmt.Sprintf("system %q", name))
	}
	for _, id := range []string{"", "a b", "\x00", strings.Repeat("x", 256)} {
		_, err = c.s.PutInstance(ctx, alice, control.Instance{ID: id, System: "shop", App: "cart", Group: "blue"})
		wantErr(t, err, control.ErrInvalid, fmt.Sprintf("instance id %q", id))
	}
	for _, ts := range []time.Time{time.Unix(-1<<62, 0), time.Unix(1<<62, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, err = c.s.PutInstance(ctx, alice, control.Instance{ID: "i", System: "shop", App: "cart", Group: "blue", StartedAt: ts})
		wantErr(t, err, control.ErrInvalid, "started_at "+ts.String())
	}
	_, err = c.s.PutSystem(ctx, control.Actor{}, control.System{Name: "anon"})
	wantErr(t, err, control.ErrInvalid, "a change without who")
	// Nothing refused was written or recorded.
	if ops := res(c.s.Operations(ctx, control.OperationFilter{})).ok(t); len(ops) != 3 {
		t.Errorf("%d operations after refusals, want the 3 of the seed", len(ops))
	}
}

func testImportExport(t *testing.T, c *suite) {
	if got := res(c.s.Topology(ctx)).ok(t); len(got.Rules) != 0 || got.Default != (topology.Labels{}) {
		t.Errorf("empty store's topology = %+v", got)
	}
	src := `default:
  system: shop
  idc: dc1
rules:
  - match: {namespace: shop, pod: "cart-*"}
    labels: {app: cart, group: blue, env: prod}
  - match: {container: pay}
    labels: {app: pay}
`
	top := res(topology.Parse([]byte(src))).ok(t)
	op := res(c.s.ImportTopology(ctx, alice, top)).ok(t)
	if op.Target != "topology" || op.Action != "create" && op.Action != "import" {
		t.Errorf("import operation = %+v", op)
	}
	for _, want := range []string{"system:shop", "app:shop/cart", "group:shop/cart/blue", "app:shop/pay"} {
		if !strings.Contains(op.After, `"`+want+`"`) {
			t.Errorf("import operation's after %s does not list %s as created", op.After, want)
		}
	}
	if g := res(c.s.Groups(ctx, "shop", "cart")).ok(t); len(g) != 1 || g[0].Env != "prod" || g[0].IDC != "dc1" {
		t.Errorf("imported groups = %+v", g)
	}
	got := res(c.s.Topology(ctx)).ok(t)
	if got.Default != top.Default || len(got.Rules) != 2 || got.Rules[0] != top.Rules[0] || got.Rules[1] != top.Rules[1] {
		t.Errorf("exported topology = %+v, want %+v", got, top)
	}
	// A second import replaces the rules and creates only what is new.
	top2 := res(topology.Parse([]byte("rules:\n  - match: {pod: x}\n    labels: {system: shop, app: cart, group: green}\n"))).ok(t)
	op = res(c.s.ImportTopology(ctx, bob, top2)).ok(t)
	if !strings.Contains(op.After, `"created":["group:shop/cart/green"]`) || !strings.Contains(op.Before, "cart-*") {
		t.Errorf("second import operation = %+v", op)
	}
	if got := res(c.s.Topology(ctx)).ok(t); len(got.Rules) != 1 || got.Rules[0].Labels.Group != "green" {
		t.Errorf("topology after second import = %+v", got)
	}
}

var (
	global = control.Scope{Kind: control.ScopeGlobal}
	group  = control.Scope{Kind: control.ScopeGroup, Name: "shop/cart/blue"}
)

func files(body string) []control.File {
	return []control.File{{Name: "tpflow.yaml", Body: body}}
}

func testVersions(t *testing.T, c *suite) {
	var made []control.Version
	for i, body := range []string{"a: 1\n", "a: 2\n", "a: 3\n"} {
		v, op := res2(c.s.CreateVersion(ctx, alice, global, files(body), fmt.Sprintf("v%d", i+1), int64(i))).ok(t)
		if v.Version != int64(i+1) || v.Parent != int64(i) || v.SHA256 != control.Hash(v.Files) || v.Author != "alice" ||
			v.Files[0].ContentType != control.ContentYAML {
			t.Errorf("version %d = %+v", i+1, v)
		}
		if op.Target != "config:global" || op.Action != "config.create" || !strings.Contains(op.After, v.SHA256) {
			t.Errorf("version %d operation = %+v", i+1, op)
		}
		made = append(made, v)
	}
	// Scopes count separately.
	gv, _ := res2(c.s.CreateVersion(ctx, bob, group, files("b: 1\n"), "", 0)).ok(t)
	if gv.Version != 1 {
		t.Errorf("first version of another scope = %d, want 1", gv.Version)
	}
	latest := res(c.s.Version(ctx, global, 0)).ok(t)
	if latest.Version != 3 || latest.Files[0].Body != "a: 3\n" || !latest.CreatedAt.Equal(made[2].CreatedAt) {
		t.Errorf("latest = %+v", latest)
	}
	list := res(c.s.Versions(ctx, global, 0)).ok(t)
	if len(list) != 3 || list[0].Version != 3 || list[2].Version != 1 || list[0].Files != nil || list[1].Message != "v2" {
		t.Errorf("Versions = %+v", list)
	}
	// Rollback writes version 1's files as version 4.
	rb, op := res2(c.s.Rollback(ctx, bob, global, 1, "")).ok(t)
	if rb.Version != 4 || rb.Parent != 3 || rb.SHA256 != made[0].SHA256 || rb.Files[0].Body != "a: 1\n" || rb.Message != "rollback to version 1" {
		t.Errorf("rollback = %+v", rb)
	}
	if op.Action != "config.rollback" || !strings.Contains(op.Before, made[2].SHA256) || !strings.Contains(op.After, made[0].SHA256) {
		t.Errorf("rollback operation = %+v", op)
	}
	d := control.Diff(res(c.s.Version(ctx, global, 2)).ok(t), res(c.s.Version(ctx, global, 4)).ok(t))
	if len(d) != 1 || d[0].Change != "modified" || !strings.Contains(d[0].Unified, "-a: 2") || !strings.Contains(d[0].Unified, "+a: 1") {
		t.Errorf("diff 2..4 = %+v", d)
	}
	// Node selectors are stored canonically and listed.
	res2(c.s.CreateVersion(ctx, alice, control.Scope{Kind: control.ScopeNode, Name: "node=n1,idc=dc1"}, files("c: 1\n"), "", 0)).ok(t)
	ns := res(c.s.NodeScopes(ctx)).ok(t)
	if len(ns) != 1 || ns[0].Name != "idc=dc1,node=n1" {
		t.Errorf("NodeScopes = %+v", ns)
	}
	if v := res(c.s.Version(ctx, control.Scope{Kind: control.ScopeNode, Name: "idc=dc1,node=n1"}, 1)).ok(t); v.Files[0].Body != "c: 1\n" {
		t.Errorf("node scope version = %+v", v)
	}
}

func testVersionRefusals(t *testing.T, c *suite) {
	res2(c.s.CreateVersion(ctx, alice, global, files("a: 1\n"), "", 0)).ok(t)
	res2(c.s.CreateVersion(ctx, alice, global, files("a: 2\n"), "", 1)).ok(t)
	_, _, err := c.s.CreateVersion(ctx, bob, global, files("a: 3\n"), "stale", 1)
	wantErr(t, err, control.ErrConflict, "a parent that is not the latest")
	_, err = c.s.Version(ctx, global, 9)
	wantErr(t, err, control.ErrNotFound, "missing version")
	_, err = c.s.Version(ctx, group, 0)
	wantErr(t, err, control.ErrNotFound, "latest of an empty scope")
	_, _, err = c.s.Rollback(ctx, bob, global, 7, "")
	wantErr(t, err, control.ErrNotFound, "rollback to a missing version")
	_, _, err = c.s.Rollback(ctx, bob, global, 0, "")
	wantErr(t, err, control.ErrInvalid, "rollback to 0")
	bad := map[string][]control.File{
		"no files":          nil,
		"not UTF-8":         {{Name: "a.yaml", Body: "\xff\xfe"}},
		"duplicate name":    {{Name: "a.yaml"}, {Name: "a.yaml"}},
		"absolute name":     {{Name: "/etc/passwd"}},
		"dot-dot name":      {{Name: "../x"}},
		"unclean name":      {{Name: "a//b"}},
		"bad content type":  {{Name: "a", ContentType: "image/png"}},
		"too large":         {{Name: "a", Body: strings.Repeat("x", control.MaxFileSize+1)}},
		"control character": {{Name: "a\nb"}},
	}
	for what, fs := range bad {
		_, _, err := c.s.CreateVersion(ctx, alice, global, fs, "", 0)
		wantErr(t, err, control.ErrInvalid, what)
	}
	for _, sc := range []control.Scope{{Kind: "team", Name: "x"}, {Kind: control.ScopeGlobal, Name: "x"},
		{Kind: control.ScopeApp, Name: "shop"}, {Kind: control.ScopeGroup, Name: "a/b/c/d"}, {Kind: control.ScopeNode, Name: "rack=1"},
		{Kind: control.ScopeNode, Name: "node=a,node=b"}, {Kind: control.ScopeNode}} {
		_, _, err := c.s.CreateVersion(ctx, alice, sc, files("a: 1\n"), "", 0)
		wantErr(t, err, control.ErrInvalid, "scope "+sc.String())
	}
	if v := res(c.s.Version(ctx, global, 0)).ok(t); v.Version != 2 {
		t.Errorf("latest after refusals = %d, want 2", v.Version)
	}
}

// testConcurrentVersions writes versions of one scope from several
// goroutines: every write succeeds and the numbers are 1..n, each once.
func testConcurrentVersions(t *testing.T, c *suite) {
	const n = 12
	other := c.open() // a second handle, as a second replica would have
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := c.s
		if i%2 == 1 {
			s = other
		}
		wg.Go(func() {
			_, _, err := s.CreateVersion(ctx, alice, group, files(fmt.Sprintf("n: %d\n", i)), "", 0)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list := res(c.s.Versions(ctx, group, 0)).ok(t)
	if len(list) != n {
		t.Fatalf("%d versions, want %d", len(list), n)
	}
	for i, v := range list {
		if v.Version != int64(n-i) || v.Parent != v.Version-1 {
			t.Errorf("version %d: %+v", i, v)
		}
	}
	if ops := res(c.s.Operations(ctx, control.OperationFilter{Target: "config:" + group.String()})).ok(t); len(ops) != n {
		t.Errorf("%d operations, want %d", len(ops), n)
	}
}

func testOperations(t *testing.T, c *suite) {
	c.seed(t)
	res2(c.s.CreateVersion(ctx, bob, group, files("a: 1\n"), "", 0)).ok(t)
	res(c.s.PutSystem(ctx, bob, control.System{Name: "bank"})).ok(t)
	all := res(c.s.Operations(ctx, control.OperationFilter{})).ok(t)
	if len(all) != 5 {
		t.Fatalf("%d operations, want 5", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID || !all[i].At.Before(all[i-1].At) {
			t.Errorf("operations not newest first: %+v then %+v", all[i-1], all[i])
		}
	}
	if all[4].Who != "alice" || all[4].Reason != "setup" || all[4].Target != "system:shop" || all[4].Action != "create" ||
		all[4].Before != "" || all[4].After != `{"name":"shop","description":"the shop"}` {
		t.Errorf("first operation = %+v", all[4])
	}
	count := func(f control.OperationFilter) int { return len(res(c.s.Operations(ctx, f)).ok(t)) }
	cases := []struct {
		f    control.OperationFilter
		want int
	}{
		{control.OperationFilter{Who: "bob"}, 2},
		{control.OperationFilter{Target: "system:bank"}, 1},
		{control.OperationFilter{TargetPrefix: "system:"}, 2},
		{control.OperationFilter{TargetPrefix: "group:shop/cart/"}, 1},
		{control.OperationFilter{Action: "config.create"}, 1},
		{control.OperationFilter{Since: all[1].At}, 2},
		{control.OperationFilter{Until: all[1].At}, 3},
		{control.OperationFilter{BeforeID: all[1].ID}, 3},
		{control.OperationFilter{Limit: 2}, 2},
		{control.OperationFilter{Who: "bob", Action: "create"}, 1},
		{control.OperationFilter{Who: "nobody"}, 0},
	}
	for _, tc := range cases {
		if got := count(tc.f); got != tc.want {
			t.Errorf("Operations(%+v) = %d, want %d", tc.f, got, tc.want)
		}
	}
}

func testOutbox(t *testing.T, c *suite) {
	c.seed(t)
	p := res(c.s.Pending(ctx, 10)).ok(t)
	if len(p) != 3 || p[0].Target != "system:shop" || p[2].Target != "group:shop/cart/blue" {
		t.Fatalf("Pending = %+v", p)
	}
	if err := c.s.Done(ctx, []int64{p[0].ID, p[1].ID}); err != nil {
		t.Fatal(err)
	}
	p2 := res(c.s.Pending(ctx, 10)).ok(t)
	if len(p2) != 1 || p2[0].ID != p[2].ID {
		t.Errorf("Pending after Done = %+v", p2)
	}
	if got := res(c.s.Pending(ctx, 1)).ok(t); len(got) != 1 {
		t.Errorf("Pending(1) = %d", len(got))
	}
	// The history keeps what the outbox let go.
	if n := len(res(c.s.Operations(ctx, control.OperationFilter{})).ok(t)); n != 3 {
		t.Errorf("%d operations, want 3", n)
	}
}

func testReopen(t *testing.T, c *suite) {
	c.seed(t)
	v, _ := res2(c.s.CreateVersion(ctx, alice, global, files("a: 1\n"), "", 0)).ok(t)
	if err := c.s.Close(); err != nil {
		t.Fatal(err)
	}
	s := c.open() // migrations run again and find everything applied
	got := res(s.Version(ctx, global, 0)).ok(t)
	if got.SHA256 != v.SHA256 || got.Version != 1 {
		t.Errorf("after reopen: %+v", got)
	}
	if n := len(res(s.Operations(ctx, control.OperationFilter{})).ok(t)); n != 4 {
		t.Errorf("%d operations after reopen, want 4", n)
	}
}

func testRollouts(t *testing.T, c *suite) {
	waves := []control.Wave{{Percent: 10, Soak: time.Minute, FailureBudget: 1}, {Percent: 100, Soak: 0, FailureBudget: 2}}
	v, _ := res2(c.s.CreateVersion(ctx, alice, group, files("a: 1\n"), "", 0)).ok(t)
	_, _, err := c.s.CreateRollout(ctx, alice, control.Rollout{Scope: group, Version: 9, Waves: waves})
	wantErr(t, err, control.ErrNotFound, "rollout of a missing version")
	_, _, err = c.s.CreateRollout(ctx, alice, control.Rollout{Scope: group, Version: 1, Waves: []control.Wave{{Percent: 50, FailureBudget: 1}}})
	wantErr(t, err, control.ErrInvalid, "waves short of 100 percent")
	r, op := res2(c.s.CreateRollout(ctx, alice, control.Rollout{Scope: group, Version: 1, Waves: waves})).ok(t)
	if r.ID == 0 || r.SHA256 != v.SHA256 || r.State != control.RolloutRunning || op.Action != "rollout.create" {
		t.Errorf("created rollout %+v, operation %+v", r, op)
	}
	_, _, err = c.s.CreateRollout(ctx, alice, control.Rollout{Scope: group, Version: 1, Waves: waves})
	wantErr(t, err, control.ErrConflict, "a second rollout of one scope")

	started := r
	started.WaveStarted = c.now().UTC()
	res(c.s.StartWave(ctx, alice, started, []string{"a1", "a2"})).ok(t)
	_, err = c.s.StartWave(ctx, bob, started, []string{"a3"})
	wantErr(t, err, control.ErrConflict, "starting a started wave again")
	if m := res(c.s.Members(ctx, r.ID)).ok(t); len(m) != 2 || m["a1"] != 0 {
		t.Errorf("members = %v", m)
	}
	next := started
	next.Wave, next.WaveStarted = 1, time.Time{}
	res(c.s.UpdateRollout(ctx, alice, started, next, "rollout.next_wave")).ok(t)
	_, err = c.s.UpdateRollout(ctx, bob, started, next, "rollout.next_wave")
	wantErr(t, err, control.ErrConflict, "an update from a stale state")
	got := res(c.s.Rollout(ctx, r.ID)).ok(t)
	if got.Wave != 1 || !got.WaveStarted.IsZero() || len(got.Waves) != 2 || got.Waves[0].Soak != time.Minute {
		t.Errorf("stored rollout = %+v", got)
	}
	if l := res(c.s.Rollouts(ctx, control.RolloutRunning)).ok(t); len(l) != 1 {
		t.Errorf("%d running rollouts, want 1", len(l))
	}
	if l := res(c.s.Rollouts(ctx, control.RolloutDone)).ok(t); len(l) != 0 {
		t.Errorf("%d done rollouts, want 0", len(l))
	}
	if bad := res(c.s.IsBad(ctx, group, 1)).ok(t); bad {
		t.Error("a version is bad before it is marked")
	}
	res(c.s.MarkBad(ctx, alice, group, 1, "wave 1 failed")).ok(t)
	if bad := res(c.s.IsBad(ctx, group, 1)).ok(t); !bad {
		t.Error("a marked version is not bad")
	}
	done := got
	done.State = control.RolloutAborted
	res(c.s.UpdateRollout(ctx, alice, got, done, "rollout.abort")).ok(t)
	_, _, err = c.s.CreateRollout(ctx, alice, control.Rollout{Scope: group, Version: 1, Waves: waves})
	wantErr(t, err, control.ErrConflict, "a rollout of a bad version")
	if ops := res(c.s.Operations(ctx, control.OperationFilter{TargetPrefix: "rollout:"})).ok(t); len(ops) != 4 {
		t.Errorf("%d rollout operations, want 4", len(ops))
	}
}
