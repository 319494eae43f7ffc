// Package control is the control plane's model: the topology (system →
// app → group → instance), versioned configuration per scope, the
// operation history, and the pure functions over them (scopes, hashes,
// diffs, the effective configuration of an agent). The store is in
// control/store, the HTTP API in control/api and the role in
// control/plane. DESIGN.md next to this file records the guarantees.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Errors the store and the API branch on.
var (
	// ErrNotFound: the object named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write does not fit the stored state (a parent
	// version that is no longer the latest, a system that still has apps).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed or fails validation.
	ErrInvalid = errors.New("invalid")
)

// Invalidf returns an error that wraps ErrInvalid.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// nameRe is what a system, app or group name may be: the characters of a
// Kubernetes label value, so that names travel as labels unchanged.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// CheckName returns an ErrInvalid error naming what when s is not a valid
// object name.
func CheckName(what, s string) error {
	if !nameRe.MatchString(s) {
		return Invalidf("%s %q must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit", what, s)
	}
	return nil
}

// System is the top of the topology: a business system.
type System struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Validate checks the name.
func (s System) Validate() error { return CheckName("system", s.Name) }

// App is an application of a system.
type App struct {
	System      string `json:"system"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Validate checks the names.
func (a App) Validate() error {
	return errors.Join(CheckName("system", a.System), CheckName("app", a.Name))
}

// Group is a deployment group of an app in one environment and IDC; it
// has a configuration scope of its own.
type Group struct {
	System string `json:"system"`
	App    string `json:"app"`
	Name   string `json:"name"`
	Env    string `json:"env"`
	IDC    string `json:"idc"`
}

// Validate checks the names; env and IDC may be empty.
func (g Group) Validate() error {
	return errors.Join(CheckName("system", g.System), CheckName("app", g.App), CheckName("group", g.Name),
		checkLabel("env", g.Env), checkLabel("idc", g.IDC))
}

func checkLabel(what, s string) error {
	if s == "" {
		return nil
	}
	return CheckName(what, s)
}

// Instance is one container of a group as an agent reports it.
type Instance struct {
	// ID identifies the instance: the container ID when known, otherwise
	// POD_UID/CONTAINER.
	ID          string    `json:"id"`
	System      string    `json:"system"`
	App         string    `json:"app"`
	Group       string    `json:"group"`
	Cluster     string    `json:"cluster"`
	Namespace   string    `json:"namespace"`
	PodUID      string    `json:"pod_uid"`
	Pod         string    `json:"pod"`
	Container   string    `json:"container"`
	ContainerID string    `json:"container_id"`
	HostIP      string    `json:"host_ip"`
	Node        string    `json:"node"`
	Image       string    `json:"image"`
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"started_at"`
	// ConfigVersion is the effective configuration the instance's agent
	// reports running (its sha256), empty when unknown.
	ConfigVersion string `json:"config_version"`
}

// Validate checks that the instance has an ID of printable characters
// and names an existing-looking group.
func (i Instance) Validate() error {
	var errs []error
	if i.ID == "" || len(i.ID) > 255 || !printable(i.ID) {
		errs = append(errs, Invalidf("instance id %q must be 1-255 printable characters", i.ID))
	}
	errs = append(errs, CheckName("system", i.System), CheckName("app", i.App), CheckName("group", i.Group))
	return errors.Join(errs...)
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// InstanceFilter selects instances; empty fields match everything.
type InstanceFilter struct {
	System, App, Group, Node string
}

// Operation is one record of the append-only operation history: every
// accepted change, who made it and what it changed.
type Operation struct {
	ID     int64     `json:"id"`
	Who    string    `json:"who"`
	At     time.Time `json:"at"`
	Target string    `json:"target"`
	Action string    `json:"action"`
	// Before and After are the JSON of the target before and after the
	// change; empty for a target that did not exist or no longer does.
	Before string `json:"before"`
	After  string `json:"after"`
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// Result of an operation the store records.
const ResultOK = "ok"

// Actor is who makes a change and why, as the API hands it to the store.
type Actor struct {
	Who    string
	Reason string
}

// OperationFilter selects operations; zero fields match everything.
// Operations are listed newest first.
type OperationFilter struct {
	Who, Target, Action string
	// TargetPrefix matches targets that start with it ("group:shop/").
	TargetPrefix string
	Since, Until time.Time
	// BeforeID lists operations with a smaller id (paging).
	BeforeID int64
	// Limit bounds the answer; 0 is DefaultOperationLimit.
	Limit int
}

// Operation list bounds.
const (
	DefaultOperationLimit = 100
	MaxOperationLimit     = 1000
)

// MarshalJSON writes Before and After as the JSON objects they hold (null
// when empty) rather than as strings of JSON.
func (o Operation) MarshalJSON() ([]byte, error) {
	raw := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(s)
	}
	type plain Operation
	return json.Marshal(struct {
		plain
		Before json.RawMessage `json:"before"`
		After  json.RawMessage `json:"after"`
	}{plain(o), raw(o.Before), raw(o.After)})
}
