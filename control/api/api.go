// Package api is the control plane's HTTP JSON API under /api/v1/: the
// topology (with import and export of the collectors' topology file), the
// configuration versions of every scope (create, list, get, diff,
// rollback, effective) and the operation history. Every request is
// authenticated by the shared HTTP layer (pipeline/httpserver, http.auth);
// viewers read, operators and admins write, and every
// accepted write is recorded once in the operation history with who made
// it. control/README.md documents it with curl examples.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/rollout"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/internal/role"
)

// MaxBody bounds a request body.
const MaxBody = 8 << 20

// ReasonHeader carries the reason of a write into its operation record.
const ReasonHeader = "X-Tpflow-Reason"

// API serves the control plane's HTTP API. It is safe for concurrent use.
type API struct {
	store    store.Store
	validate control.Validator
	log      *slog.Logger
	// written is called after every accepted write (the outbox exporter
	// wakes up); nil for none.
	written func()
}

// Options are the API's optional parts.
type Options struct {
	// Logger receives errors the API answers with 500; nil discards.
	Logger *slog.Logger
	// Written is called after every accepted write.
	Written func()
}

// New returns the API over s. validate checks every file of a new
// configuration version before it is stored; nil accepts every file. The
// API serves the callers an httpserver.Auth in front of it authenticated
// (httpserver.PrincipalFrom) and no one else.
func New(s store.Store, validate control.Validator, o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{store: s, validate: validate, log: o.Logger, written: o.Written}
}

// scopePaths are the path prefixes of the configuration scopes.
var scopePaths = []string{
	"/api/v1/config/global",
	"/api/v1/config/system/{system}",
	"/api/v1/config/app/{system}/{app}",
	"/api/v1/config/group/{system}/{app}/{group}",
	"/api/v1/config/node/{selector}",
}

// Routes are the API's paths, each with its method.
func (a *API) Routes() []role.Route {
	var rs []role.Route
	add := func(pattern string, write bool, h func(r *http.Request, p Principal) (any, error)) {
		rs = append(rs, role.Route{Pattern: pattern, Handler: a.handler(write, h)})
	}
	add("GET /api/v1/topology", false, a.getTopology)
	add("GET /api/v1/topology/export", false, a.exportTopology)
	add("POST /api/v1/topology/import", true, a.importTopology)
	add("GET /api/v1/systems", false, func(r *http.Request, _ Principal) (any, error) { return a.store.Systems(r.Context()) })
	add("PUT /api/v1/systems/{system}", true, a.putSystem)
	add("DELETE /api/v1/systems/{system}", true, func(r *http.Request, p Principal) (any, error) {
		return a.store.DeleteSystem(r.Context(), actor(r, p), r.PathValue("system"))
	})
	add("GET /api/v1/systems/{system}/apps", false, func(r *http.Request, _ Principal) (any, error) {
		return a.store.Apps(r.Context(), r.PathValue("system"))
	})
	add("PUT /api/v1/systems/{system}/apps/{app}", true, a.putApp)
	add("DELETE /api/v1/systems/{system}/apps/{app}", true, func(r *http.Request, p Principal) (any, error) {
		return a.store.DeleteApp(r.Context(), actor(r, p), r.PathValue("system"), r.PathValue("app"))
	})
	add("GET /api/v1/systems/{system}/apps/{app}/groups", false, func(r *http.Request, _ Principal) (any, error) {
		return a.store.Groups(r.Context(), r.PathValue("system"), r.PathValue("app"))
	})
	add("PUT /api/v1/systems/{system}/apps/{app}/groups/{group}", true, a.putGroup)
	add("DELETE /api/v1/systems/{system}/apps/{app}/groups/{group}", true, func(r *http.Request, p Principal) (any, error) {
		return a.store.DeleteGroup(r.Context(), actor(r, p), r.PathValue("system"), r.PathValue("app"), r.PathValue("group"))
	})
	add("GET /api/v1/instances", false, func(r *http.Request, _ Principal) (any, error) {
		q := r.URL.Query()
		return a.store.Instances(r.Context(), control.InstanceFilter{System: q.Get("system"), App: q.Get("app"), Group: q.Get("group"), Node: q.Get("node")})
	})
	add("PUT /api/v1/instances/{id}", true, a.putInstance)
	add("DELETE /api/v1/instances/{id}", true, func(r *http.Request, p Principal) (any, error) {
		return a.store.DeleteInstance(r.Context(), actor(r, p), r.PathValue("id"))
	})
	for _, sp := range scopePaths {
		add("GET "+sp+"/versions", false, a.listVersions)
		add("POST "+sp+"/versions", true, a.createVersion)
		add("GET "+sp+"/versions/{version}", false, a.getVersion)
		add("GET "+sp+"/diff", false, a.diff)
		add("POST "+sp+"/rollback", true, a.rollback)
	}
	add("POST /api/v1/rollouts", true, a.createRollout)
	add("GET /api/v1/rollouts", false, a.listRollouts)
	add("GET /api/v1/rollouts/{id}", false, a.getRollout)
	for action, f := range map[string]func(context.Context, store.Store, control.Actor, int64) (control.Rollout, error){
		"pause": rollout.Pause, "resume": rollout.Resume, "abort": rollout.Abort,
	} {
		add("POST /api/v1/rollouts/{id}/"+action, true, func(r *http.Request, p Principal) (any, error) {
			id, err := rolloutID(r)
			if err != nil {
				return nil, err
			}
			return f(r.Context(), a.store, actor(r, p), id)
		})
	}
	add("GET /api/v1/effective", false, a.effective)
	add("GET /api/v1/drift", false, a.drift)
	add("GET /api/v1/operations", false, a.operations)
	return rs
}

// Handler serves Routes on a mux of its own (for tests and embedding).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return mux
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	// Problems lists every validation problem, FILE:LINE:COLUMN: MESSAGE.
	Problems []string `json:"problems,omitempty"`
}

// problems is a validation failure with its list of problems.
type problems struct{ list []string }

func (p problems) Error() string { return "invalid configuration: " + strings.Join(p.list, "; ") }
func (p problems) Unwrap() error { return control.ErrInvalid }

// rawBody is an answer written as is, with its content type.
type rawBody struct {
	contentType string
	body        []byte
}

func (a *API) handler(write bool, h func(r *http.Request, p Principal) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, write)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		v, err := h(r, p)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if write && a.written != nil {
			a.written()
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		if raw, ok := v.(rawBody); ok {
			w.Header().Set("Content-Type", raw.contentType)
			w.WriteHeader(status)
			_, _ = w.Write(raw.body)
			return
		}
		httpserver.WriteJSON(w, status, v)
	})
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var p problems
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		httpserver.WriteJSON(w, http.StatusBadRequest, apiError{Error: "invalid configuration", Problems: p.list})
	case errors.As(err, &tooBig):
		httpserver.WriteJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("request body is larger than %d bytes", MaxBody)})
	case errors.Is(err, control.ErrInvalid):
		httpserver.WriteJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, control.ErrNotFound):
		httpserver.WriteJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, control.ErrConflict):
		httpserver.WriteJSON(w, http.StatusConflict, apiError{Error: err.Error()})
	default:
		a.log.Error("control API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpserver.WriteJSON(w, http.StatusInternalServerError, apiError{Error: "internal error; see the control plane's log"})
	}
}

// decode reads a JSON body strictly into v: unknown fields and trailing
// data are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return control.Invalidf("cannot decode JSON body: %v", err)
	}
	if dec.More() {
		return control.Invalidf("JSON body has data after the object")
	}
	return nil
}

func actor(r *http.Request, p Principal) control.Actor {
	return control.Actor{Who: p.Name, Reason: r.Header.Get(ReasonHeader)}
}

// samePath checks that a name given in the body agrees with the path.
func samePath(field, body, path string) (string, error) {
	if body != "" && body != path {
		return "", control.Invalidf("%s %q in the body differs from %q in the path", field, body, path)
	}
	return path, nil
}

func (a *API) putSystem(r *http.Request, p Principal) (any, error) {
	var v control.System
	if err := decode(r, &v); err != nil {
		return nil, err
	}
	var err error
	if v.Name, err = samePath("name", v.Name, r.PathValue("system")); err != nil {
		return nil, err
	}
	return a.store.PutSystem(r.Context(), actor(r, p), v)
}

func (a *API) putApp(r *http.Request, p Principal) (any, error) {
	var v control.App
	if err := decode(r, &v); err != nil {
		return nil, err
	}
	var err1, err2 error
	v.System, err1 = samePath("system", v.System, r.PathValue("system"))
	v.Name, err2 = samePath("name", v.Name, r.PathValue("app"))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return a.store.PutApp(r.Context(), actor(r, p), v)
}

func (a *API) putGroup(r *http.Request, p Principal) (any, error) {
	var v control.Group
	if err := decode(r, &v); err != nil {
		return nil, err
	}
	var err1, err2, err3 error
	v.System, err1 = samePath("system", v.System, r.PathValue("system"))
	v.App, err2 = samePath("app", v.App, r.PathValue("app"))
	v.Name, err3 = samePath("name", v.Name, r.PathValue("group"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return a.store.PutGroup(r.Context(), actor(r, p), v)
}

func (a *API) putInstance(r *http.Request, p Principal) (any, error) {
	var v control.Instance
	if err := decode(r, &v); err != nil {
		return nil, err
	}
	var err error
	if v.ID, err = samePath("id", v.ID, r.PathValue("id")); err != nil {
		return nil, err
	}
	return a.store.PutInstance(r.Context(), actor(r, p), v)
}

// topologyView is the whole topology with the instance count per group.
type topologyView struct {
	Systems []control.System `json:"systems"`
	Apps    []control.App    `json:"apps"`
	Groups  []groupView      `json:"groups"`
}

type groupView struct {
	control.Group
	Instances int `json:"instances"`
}

func (a *API) getTopology(r *http.Request, _ Principal) (any, error) {
	ctx := r.Context()
	var v topologyView
	var err error
	if v.Systems, err = a.store.Systems(ctx); err != nil {
		return nil, err
	}
	if v.Apps, err = a.store.Apps(ctx, ""); err != nil {
		return nil, err
	}
	groups, err := a.store.Groups(ctx, "", "")
	if err != nil {
		return nil, err
	}
	ins, err := a.store.Instances(ctx, control.InstanceFilter{})
	if err != nil {
		return nil, err
	}
	count := map[[3]string]int{}
	for _, in := range ins {
		count[[3]string{in.System, in.App, in.Group}]++
	}
	v.Groups = make([]groupView, len(groups))
	for i, g := range groups {
		v.Groups[i] = groupView{Group: g, Instances: count[[3]string{g.System, g.App, g.Name}]}
	}
	return v, nil
}

func (a *API) exportTopology(r *http.Request, _ Principal) (any, error) {
	t, err := a.store.Topology(r.Context())
	if err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(t)
	if err != nil {
		return nil, err
	}
	return rawBody{contentType: "application/yaml", body: body}, nil
}

// importTopology takes a topology file (YAML, the collectors' format).
func (a *API) importTopology(r *http.Request, p Principal) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	t, err := topology.Parse(body)
	if err != nil {
		return nil, problems{list: prefixLines("topology.yaml:", err.Error())}
	}
	return a.store.ImportTopology(r.Context(), actor(r, p), t)
}

// prefixLines splits an error's lines and prefixes each.
func prefixLines(prefix, s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return lines
}

// scope is the scope named by the request's path.
func scope(r *http.Request) (control.Scope, error) {
	parts := strings.Split(strings.TrimPrefix(r.Pattern[strings.IndexByte(r.Pattern, ' ')+1:], "/api/v1/config/"), "/")
	kind := control.ScopeKind(parts[0])
	var name string
	switch kind {
	case control.ScopeSystem:
		name = r.PathValue("system")
	case control.ScopeApp:
		name = r.PathValue("system") + "/" + r.PathValue("app")
	case control.ScopeGroup:
		name = r.PathValue("system") + "/" + r.PathValue("app") + "/" + r.PathValue("group")
	case control.ScopeNode:
		name = r.PathValue("selector")
	}
	return control.Scope{Kind: kind, Name: name}.Canonical()
}

// createRequest is the body of POST …/versions.
type createRequest struct {
	Files   []control.File `json:"files"`
	Message string         `json:"message"`
	// Parent, when set, must be the latest version (409 otherwise).
	Parent int64 `json:"parent"`
}

// versionAnswer is a written version with its operation.
type versionAnswer struct {
	Version   control.Version   `json:"version"`
	Operation control.Operation `json:"operation"`
}

func (a *API) createVersion(r *http.Request, p Principal) (any, error) {
	sc, err := scope(r)
	if err != nil {
		return nil, err
	}
	var req createRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	files, err := control.CheckFiles(req.Files)
	if err != nil {
		return nil, err
	}
	if err := a.check(files); err != nil {
		return nil, err
	}
	v, op, err := a.store.CreateVersion(r.Context(), actor(r, p), sc, files, req.Message, req.Parent)
	return versionAnswer{v, op}, err
}

// check validates every file, gathering every problem.
func (a *API) check(files []control.File) error {
	if a.validate == nil {
		return nil
	}
	var list []string
	for _, f := range files {
		if err := a.validate(f.Name, []byte(f.Body)); err != nil {
			list = append(list, strings.Split(strings.TrimSpace(err.Error()), "\n")...)
		}
	}
	if len(list) > 0 {
		return problems{list: list}
	}
	return nil
}

func (a *API) listVersions(r *http.Request, _ Principal) (any, error) {
	sc, err := scope(r)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return nil, err
	}
	return a.store.Versions(r.Context(), sc, int(limit))
}

// versionParam reads a version number, "latest" or absent being 0.
func versionParam(s string) (int64, error) {
	if s == "" || s == "latest" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, control.Invalidf("version %q must be a number >= 1 or latest", s)
	}
	return n, nil
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, control.Invalidf("%s %q must be a number >= 0", name, s)
	}
	return n, nil
}

func (a *API) getVersion(r *http.Request, _ Principal) (any, error) {
	sc, err := scope(r)
	if err != nil {
		return nil, err
	}
	n, err := versionParam(r.PathValue("version"))
	if err != nil {
		return nil, err
	}
	return a.store.Version(r.Context(), sc, n)
}

// diffAnswer is the answer of …/diff.
type diffAnswer struct {
	From  int64              `json:"from"`
	To    int64              `json:"to"`
	Files []control.FileDiff `json:"files"`
}

func (a *API) diff(r *http.Request, _ Principal) (any, error) {
	sc, err := scope(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if q.Get("from") == "" {
		return nil, control.Invalidf("diff needs from=VERSION (and to=VERSION, default latest)")
	}
	from, err := versionParam(q.Get("from"))
	if err != nil {
		return nil, err
	}
	to, err := versionParam(q.Get("to"))
	if err != nil {
		return nil, err
	}
	a1, err := a.store.Version(r.Context(), sc, from)
	if err != nil {
		return nil, err
	}
	b, err := a.store.Version(r.Context(), sc, to)
	if err != nil {
		return nil, err
	}
	return diffAnswer{From: a1.Version, To: b.Version, Files: control.Diff(a1, b)}, nil
}

// rollbackRequest is the body of POST …/rollback.
type rollbackRequest struct {
	To      int64  `json:"to"`
	Message string `json:"message"`
}

func (a *API) rollback(r *http.Request, p Principal) (any, error) {
	sc, err := scope(r)
	if err != nil {
		return nil, err
	}
	var req rollbackRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.To <= 0 {
		return nil, control.Invalidf("rollback needs \"to\": a version >= 1")
	}
	old, err := a.store.Version(r.Context(), sc, req.To)
	if err != nil {
		return nil, err
	}
	// An old version is validated again: the roles' rules may have
	// changed since it was written.
	if err := a.check(old.Files); err != nil {
		return nil, err
	}
	v, op, err := a.store.Rollback(r.Context(), actor(r, p), sc, req.To, req.Message)
	return versionAnswer{v, op}, err
}

// effectiveAnswer is the effective configuration of an agent, with the
// problems the merged files have when validated.
type effectiveAnswer struct {
	control.Effective
	Problems []string `json:"problems"`
}

func (a *API) effective(r *http.Request, _ Principal) (any, error) {
	q := r.URL.Query()
	ag := control.Agent{System: q.Get("system"), App: q.Get("app"), Group: q.Get("group"),
		Cluster: q.Get("cluster"), Env: q.Get("env"), IDC: q.Get("idc"), Node: q.Get("node")}
	nodes, err := a.store.NodeScopes(r.Context())
	if err != nil {
		return nil, err
	}
	eff, err := effectiveOf(r.Context(), a.store, ag, nodes, map[string]*control.Version{})
	if err != nil {
		return nil, err
	}
	ans := effectiveAnswer{Effective: eff, Problems: []string{}}
	var p problems
	if err := a.check(eff.Files); errors.As(err, &p) {
		ans.Problems = p.list
	}
	return ans, nil
}

// effectiveOf merges the latest versions of ag's scopes; latest caches
// them by scope (nil for a scope without versions) across calls.
func effectiveOf(ctx context.Context, st store.Store, ag control.Agent, nodes []control.Scope, latest map[string]*control.Version) (control.Effective, error) {
	scopes, err := ag.Scopes(nodes)
	if err != nil {
		return control.Effective{}, err
	}
	var versions []control.Version
	for _, sc := range scopes {
		v, ok := latest[sc.String()]
		if !ok {
			got, err := st.Version(ctx, sc, 0)
			switch {
			case errors.Is(err, control.ErrNotFound):
			case err != nil:
				return control.Effective{}, err
			default:
				v = &got
			}
			latest[sc.String()] = v
		}
		if v != nil {
			versions = append(versions, *v)
		}
	}
	return control.Merge(versions)
}

// DriftRow counts a group's instances in one IDC by what they run.
type DriftRow struct {
	System string `json:"system"`
	App    string `json:"app"`
	Group  string `json:"group"`
	IDC    string `json:"idc"`
	// Instances is every instance; Latest those that run their effective
	// configuration, Behind those that run another, Unknown those that
	// report none.
	Instances int `json:"instances"`
	Latest    int `json:"latest"`
	Behind    int `json:"behind"`
	Unknown   int `json:"unknown"`
	// BehindIDs names up to MaxBehindIDs of the instances behind.
	BehindIDs []string `json:"behind_ids"`
}

// MaxBehindIDs bounds the instances a drift row names.
const MaxBehindIDs = 50

func (a *API) drift(r *http.Request, _ Principal) (any, error) {
	q := r.URL.Query()
	return Drift(r.Context(), a.store, control.InstanceFilter{System: q.Get("system"), App: q.Get("app"), Group: q.Get("group")})
}

// Drift counts, per group and IDC, the instances of f that run (as they
// report it) the effective configuration of their scopes.
func Drift(ctx context.Context, st store.Store, f control.InstanceFilter) ([]DriftRow, error) {
	ins, err := st.Instances(ctx, f)
	if err != nil {
		return nil, err
	}
	groups, err := st.Groups(ctx, "", "")
	if err != nil {
		return nil, err
	}
	byName := map[[3]string]control.Group{}
	for _, g := range groups {
		byName[[3]string{g.System, g.App, g.Name}] = g
	}
	nodes, err := st.NodeScopes(ctx)
	if err != nil {
		return nil, err
	}
	latest := map[string]*control.Version{}
	effective := map[control.Agent]string{}
	rows := map[[4]string]*DriftRow{}
	var order [][4]string
	for _, in := range ins {
		g := byName[[3]string{in.System, in.App, in.Group}]
		ag := control.Agent{System: in.System, App: in.App, Group: in.Group, Cluster: in.Cluster, Env: g.Env, IDC: g.IDC, Node: in.Node}
		sha, ok := effective[ag]
		if !ok {
			eff, err := effectiveOf(ctx, st, ag, nodes, latest)
			if err != nil {
				return nil, err
			}
			sha = eff.SHA256
			effective[ag] = sha
		}
		k := [4]string{in.System, in.App, in.Group, g.IDC}
		row := rows[k]
		if row == nil {
			row = &DriftRow{System: k[0], App: k[1], Group: k[2], IDC: k[3], BehindIDs: []string{}}
			rows[k] = row
			order = append(order, k)
		}
		row.Instances++
		switch in.ConfigVersion {
		case "":
			row.Unknown++
		case sha:
			row.Latest++
		default:
			row.Behind++
			if len(row.BehindIDs) < MaxBehindIDs {
				row.BehindIDs = append(row.BehindIDs, in.ID)
			}
		}
	}
	slices.SortFunc(order, func(a, b [4]string) int { return slices.Compare(a[:], b[:]) })
	out := make([]DriftRow, len(order))
	for i, k := range order {
		out[i] = *rows[k]
	}
	return out, nil
}

func (a *API) operations(r *http.Request, _ Principal) (any, error) {
	q := r.URL.Query()
	f := control.OperationFilter{Who: q.Get("who"), Target: q.Get("target"), TargetPrefix: q.Get("target_prefix"), Action: q.Get("action")}
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(t.name); s != "" {
			if *t.dst, err = time.Parse(time.RFC3339, s); err != nil || t.dst.Year() < 1678 || t.dst.Year() > 2261 {
				return nil, control.Invalidf("%s %q must be an RFC 3339 time between the years 1678 and 2261, such as 2026-12-03T10:00:00Z", t.name, s)
			}
		}
	}
	before, err := intParam(r, "before_id", 0)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return nil, err
	}
	if limit > control.MaxOperationLimit {
		return nil, control.Invalidf("limit %d is above %d", limit, control.MaxOperationLimit)
	}
	f.BeforeID, f.Limit = before, int(limit)
	return a.store.Operations(r.Context(), f)
}

// rolloutRequest is the body of POST /api/v1/rollouts.
type rolloutRequest struct {
	// Scope is KIND or KIND:NAME ("group:shop/cart/blue").
	Scope string `json:"scope"`
	// Version is the version to roll out; 0 is the latest.
	Version int64 `json:"version"`
	// Waves default to control.DefaultWaves.
	Waves []control.Wave `json:"waves"`
}

func (a *API) createRollout(r *http.Request, p Principal) (any, error) {
	var req rolloutRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	sc, err := control.ParseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	if req.Version < 0 {
		return nil, control.Invalidf("version %d must be >= 1, or 0 for the latest", req.Version)
	}
	if len(req.Waves) == 0 {
		req.Waves = control.DefaultWaves()
	}
	ro, op, err := a.store.CreateRollout(r.Context(), actor(r, p), control.Rollout{Scope: sc, Version: req.Version, Waves: req.Waves})
	return struct {
		Rollout   control.Rollout   `json:"rollout"`
		Operation control.Operation `json:"operation"`
	}{ro, op}, err
}

func (a *API) listRollouts(r *http.Request, _ Principal) (any, error) {
	var states []control.RolloutState
	if s := r.URL.Query().Get("state"); s != "" {
		for _, st := range strings.Split(s, ",") {
			switch st := control.RolloutState(st); st {
			case control.RolloutRunning, control.RolloutPaused, control.RolloutDone, control.RolloutAborted:
				states = append(states, st)
			default:
				return nil, control.Invalidf("state %q must be running, paused, done or aborted", st)
			}
		}
	}
	return a.store.Rollouts(r.Context(), states...)
}

// rolloutView is a rollout with how many agents each wave reached.
type rolloutView struct {
	control.Rollout
	WaveAgents []int `json:"wave_agents"`
}

func (a *API) getRollout(r *http.Request, _ Principal) (any, error) {
	id, err := rolloutID(r)
	if err != nil {
		return nil, err
	}
	ro, err := a.store.Rollout(r.Context(), id)
	if err != nil {
		return nil, err
	}
	m, err := a.store.Members(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := rolloutView{Rollout: ro, WaveAgents: make([]int, len(ro.Waves))}
	for _, w := range m {
		if w >= 0 && w < len(v.WaveAgents) {
			v.WaveAgents[w]++
		}
	}
	return v, nil
}

func rolloutID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, control.Invalidf("rollout id %q must be a number >= 1", r.PathValue("id"))
	}
	return id, nil
}
