package control

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"
	"gopkg.in/yaml.v3"
)

// File is one file of a configuration version.
type File struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
}

// Content types a file may have; YAML files merge key by key across
// scopes, the others are replaced whole by a narrower scope.
const (
	ContentYAML = "application/yaml"
	ContentText = "text/plain"
	ContentJSON = "application/json"
)

// File limits.
const (
	MaxFiles    = 64
	MaxFileSize = 1 << 20
)

// Version is one immutable configuration version of a scope.
type Version struct {
	Scope Scope `json:"scope"`
	// Version counts the scope's versions from 1, for people ("1398").
	Version int64 `json:"version"`
	// SHA256 is the hex sha256 of the files (see Hash), for agents.
	SHA256 string `json:"sha256"`
	// Parent is the version that was the latest when this one was
	// written; 0 for the first.
	Parent    int64     `json:"parent"`
	Author    string    `json:"author"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"created_at"`
	// Files are sorted by name; lists of versions leave them out.
	Files []File `json:"files,omitempty"`
}

// CheckFiles validates the shape of files (names, content types, sizes,
// UTF-8 text) and returns them sorted by name with default content types
// filled in: .yaml and .yml are YAML, .json JSON, the rest text.
func CheckFiles(files []File) ([]File, error) {
	if len(files) == 0 {
		return nil, Invalidf("a version needs at least one file")
	}
	if len(files) > MaxFiles {
		return nil, Invalidf("%d files; at most %d", len(files), MaxFiles)
	}
	out := slices.Clone(files)
	for i := range out {
		f := &out[i]
		if f.Name == "" || len(f.Name) > 255 || strings.HasPrefix(f.Name, "/") || path.Clean(f.Name) != f.Name ||
			strings.HasPrefix(f.Name, "../") || f.Name == ".." || !printable(f.Name) {
			return nil, Invalidf("file name %q must be a relative path without '..', at most 255 printable characters", f.Name)
		}
		if len(f.Body) > MaxFileSize {
			return nil, Invalidf("file %s is %d bytes; at most %d", f.Name, len(f.Body), MaxFileSize)
		}
		if !utf8.ValidString(f.Body) {
			return nil, Invalidf("file %s is not UTF-8 text", f.Name)
		}
		switch f.ContentType {
		case "":
			f.ContentType = contentTypeOf(f.Name)
		case ContentYAML, ContentText, ContentJSON:
		default:
			return nil, Invalidf("file %s: content type %q must be %s, %s or %s", f.Name, f.ContentType, ContentYAML, ContentJSON, ContentText)
		}
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, Invalidf("file %s is given twice", out[i].Name)
		}
	}
	return out, nil
}

func contentTypeOf(name string) string {
	switch path.Ext(name) {
	case ".yaml", ".yml":
		return ContentYAML
	case ".json":
		return ContentJSON
	}
	return ContentText
}

// Hash returns the hex sha256 of files as CheckFiles returns them: each
// file's name, content type and body, length-prefixed, in name order, so
// that no two different sets of files share a hash.
func Hash(files []File) string {
	h := sha256.New()
	for _, f := range files {
		for _, s := range []string{f.Name, f.ContentType, f.Body} {
			h.Write([]byte(strconv.Itoa(len(s))))
			h.Write([]byte{':'})
			h.Write([]byte(s))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileDiff is how one file differs between two versions.
type FileDiff struct {
	Name string `json:"name"`
	// Change is added, removed, modified or unchanged.
	Change string `json:"change"`
	// Unified is the unified diff of the bodies (empty when unchanged).
	Unified string `json:"unified,omitempty"`
}

// Diff compares the files of from and to, by file name in order.
func Diff(from, to Version) []FileDiff {
	a, b := filesByName(from.Files), filesByName(to.Files)
	names := make([]string, 0, len(a)+len(b))
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]FileDiff, 0, len(names))
	for _, n := range names {
		fa, inA := a[n]
		fb, inB := b[n]
		d := FileDiff{Name: n}
		switch {
		case !inA:
			d.Change = "added"
		case !inB:
			d.Change = "removed"
		case fa == fb:
			d.Change = "unchanged"
		default:
			d.Change = "modified"
		}
		if d.Change != "unchanged" {
			d.Unified = unified(n, from, to, fa.Body, fb.Body)
		}
		out = append(out, d)
	}
	return out
}

func unified(name string, from, to Version, a, b string) string {
	s, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(a),
		B:        difflib.SplitLines(b),
		FromFile: fmt.Sprintf("%s@%d/%s", from.Scope, from.Version, name),
		ToFile:   fmt.Sprintf("%s@%d/%s", to.Scope, to.Version, name),
		Context:  3,
	})
	if err != nil {
		panic("BUG: difflib writes to a buffer: " + err.Error())
	}
	return s
}

func filesByName(fs []File) map[string]File {
	m := make(map[string]File, len(fs))
	for _, f := range fs {
		m[f.Name] = f
	}
	return m
}

// Effective is an agent's configuration: the merge of the latest versions
// of its scopes.
type Effective struct {
	// Scopes are the versions merged, widest first.
	Scopes []Version `json:"scopes"`
	// SHA256 is Hash of Files: what the agent reports running.
	SHA256 string `json:"sha256"`
	Files  []File `json:"files"`
}

// Merge merges versions, widest first: a file of a narrower scope replaces
// the file of the same name, except that two YAML files merge mapping by
// mapping (a narrower key wins; lists and scalars are replaced whole), so
// that a group can override one key of the global configuration.
func Merge(versions []Version) (Effective, error) {
	merged := map[string]File{}
	for _, v := range versions {
		for _, f := range v.Files {
			prev, ok := merged[f.Name]
			if ok && prev.ContentType == ContentYAML && f.ContentType == ContentYAML {
				body, err := mergeYAML(prev.Body, f.Body)
				if err != nil {
					return Effective{}, Invalidf("cannot merge %s of %s@%d: %v", f.Name, v.Scope, v.Version, err)
				}
				f.Body = body
			}
			merged[f.Name] = f
		}
	}
	e := Effective{Scopes: versions, Files: make([]File, 0, len(merged))}
	for _, f := range merged {
		e.Files = append(e.Files, f)
	}
	slices.SortFunc(e.Files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	e.SHA256 = Hash(e.Files)
	return e, nil
}

// mergeYAML lays the document over over base.
func mergeYAML(base, over string) (string, error) {
	var a, b yaml.Node
	if err := yaml.Unmarshal([]byte(base), &a); err != nil {
		return "", err
	}
	if err := yaml.Unmarshal([]byte(over), &b); err != nil {
		return "", err
	}
	if len(b.Content) == 0 {
		return base, nil
	}
	if len(a.Content) == 0 {
		return over, nil
	}
	out := mergeNode(a.Content[0], b.Content[0])
	data, err := yaml.Marshal(out)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// mergeNode merges mapping b into mapping a; any other b replaces a.
func mergeNode(a, b *yaml.Node) *yaml.Node {
	if a.Kind != yaml.MappingNode || b.Kind != yaml.MappingNode {
		return b
	}
	out := *a
	out.Content = slices.Clone(a.Content)
	for i := 0; i+1 < len(b.Content); i += 2 {
		k, v := b.Content[i], b.Content[i+1]
		found := false
		for j := 0; j+1 < len(out.Content); j += 2 {
			if out.Content[j].Value == k.Value {
				out.Content[j+1] = mergeNode(out.Content[j+1], v)
				found = true
				break
			}
		}
		if !found {
			out.Content = append(out.Content, k, v)
		}
	}
	return &out
}

// Validator checks a file of a configuration version with the function
// the roles run when they load it; the error lists every problem as
// FILE:LINE:COLUMN: PATH: MESSAGE. It returns nil for a file it has no
// rules for only if such files are allowed.
type Validator func(name string, body []byte) error
