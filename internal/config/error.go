package config

import (
	"fmt"
	"sort"
	"strings"
)

// Issue is one problem found in a configuration file, with where it is.
type Issue struct {
	// File is the file's name as given; empty when no file was read.
	File string
	// Line and Column are 1-based positions in File, 0 when the value is
	// not in the file (or, for Column, when the YAML parser gives none).
	Line, Column int
	// Path is the dotted YAML path of the value, empty for the whole file.
	// For a problem with a key of a mapping (unknown, duplicate) it is the
	// path of the mapping, and Key is the key.
	Path string
	// Key is the offending key of an unknown- or duplicate-key issue.
	Key string
	// Msg says what is wrong.
	Msg string
	// Source says where a value not in the file came from: "default" or
	// "set by --FLAG".
	Source string
}

// String formats the issue as "FILE:LINE:COL: PATH: MSG" ("LINE:COL: PATH:
// MSG" without a file name), naming the source of a value that is not in
// the file.
func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.File)
	if i.Line > 0 {
		if i.File != "" {
			b.WriteString(":")
		}
		fmt.Fprintf(&b, "%d", i.Line)
		if i.Column > 0 {
			fmt.Fprintf(&b, ":%d", i.Column)
		}
	}
	if i.File != "" || i.Line > 0 {
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Msg)
	if i.Source != "" {
		fmt.Fprintf(&b, " (%s)", i.Source)
	}
	return b.String()
}

// Error lists every problem in a configuration, in file order.
type Error struct {
	// Issues are the problems, those with a line first, by line and column.
	Issues []Issue
}

// Error implements error: one issue per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// sortIssues orders issues with a line by line and column, then the
// others, keeping the order of equal ones.
func sortIssues(issues []Issue) {
	sort.SliceStable(issues, func(i, j int) bool {
		a, b := issues[i], issues[j]
		if a.Line == 0 || b.Line == 0 {
			return a.Line != 0 && b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Flatten unwraps errors.Join trees into their leaves.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}
