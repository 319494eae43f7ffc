package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Label names every event carries where known. The first six are always set
// (empty when unknown); pod, namespace and container only for containers.
const (
	LabelSystem    = "system"
	LabelApp       = "app"
	LabelGroup     = "group"
	LabelIDC       = "idc"
	LabelEnv       = "env"
	LabelHost      = "host"
	LabelPod       = "pod"
	LabelNamespace = "namespace"
	LabelContainer = "container"
)

// LabelMethod names the called method; it is part of a call key, not of
// an event's labels (a call event carries it in its own field).
const LabelMethod = "method"

// KeyLabel is one label of a call key: its name where people and events
// name it (events, selectors, API parameters, alert rules, dashboard
// variables) and its column in the ClickHouse tables.
type KeyLabel struct {
	Name, Column string
}

// keyLabels is the one list of the call key's labels, outermost first: the
// order keys sort in, reports nest in and the tables' sorting keys use.
var keyLabels = [...]KeyLabel{
	{LabelSystem, "system"},
	{LabelApp, "app"},
	{LabelGroup, "group_name"},
	{LabelIDC, "idc"},
	{LabelMethod, "method"},
}

// KeyLabels returns the call key's labels, outermost first. The resource
// and log keys are its first four (KeyLabels()[:4]): they have no method.
func KeyLabels() []KeyLabel { return slices.Clone(keyLabels[:]) }

// KeyLabelNames returns the names of the first n key labels, outermost
// first; n < 0 means all of them.
func KeyLabelNames(n int) []string {
	if n < 0 || n > len(keyLabels) {
		n = len(keyLabels)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = keyLabels[i].Name
	}
	return out
}

// KeyColumns returns the columns of the first n key labels joined by ", "
// for SQL; n < 0 means all of them.
func KeyColumns(n int) string {
	if n < 0 || n > len(keyLabels) {
		n = len(keyLabels)
	}
	cols := make([]string, n)
	for i := range cols {
		cols[i] = keyLabels[i].Column
	}
	return strings.Join(cols, ", ")
}

// KeyColumn returns the column of the key label called name.
func KeyColumn(name string) (string, bool) {
	if i := KeyLabelIndex(name); i >= 0 {
		return keyLabels[i].Column, true
	}
	return "", false
}

// KeyLabelIndex returns the position of the key label called name in
// KeyLabels, or -1 when name is not a key label.
func KeyLabelIndex(name string) int {
	for i, l := range keyLabels {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// KeyLabelValue returns, of values (a key's label values in the table's
// order, outermost first, as many as the key has), the one of the key
// label called name, and whether name is one of them.
func KeyLabelValue(name string, values ...string) (string, bool) {
	if i := KeyLabelIndex(name); i >= 0 && i < len(values) {
		return values[i], true
	}
	return "", false
}

// SchemaVersion is the EventBatch schema version this build writes and the
// only one it reads.
const SchemaVersion = 1

// Label is one name=value pair.
type Label struct {
	Name, Value string
}

// KeyLabelList returns the key label names for a message: "system, app,
// group, idc or method".
func KeyLabelList() string {
	n := KeyLabelNames(-1)
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// ErrUnsafeLabelValue marks a key label value that holds a control
// character (a newline among them) or a backslash.
var ErrUnsafeLabelValue = errors.New("unsafe label value")

// CheckKeyLabelValue reports a key label value that holds a control
// character or a backslash. Such values are stopped where labels enter
// (the collector's topology file and the methods it parses), so that every
// stored value fits a single-quoted SQL literal whose one escape is \' —
// the form Grafana's ${var:singlequote} writes, which leaves a backslash
// as it is.
func CheckKeyLabelValue(v string) error {
	for _, r := range v {
		switch {
		case r == '\\':
			return fmt.Errorf("%w: holds a backslash", ErrUnsafeLabelValue)
		case unicode.IsControl(r):
			return fmt.Errorf("%w: holds control character %U", ErrUnsafeLabelValue, r)
		}
	}
	return nil
}
