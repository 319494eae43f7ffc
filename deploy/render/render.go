// Package render renders tpflow's Helm chart (package deploy) to plain
// Kubernetes manifests with Helm's own engine, as `helm template` would:
// the values are checked against the chart's values.schema.json (a
// misspelt key is an error naming it) and the chart's own checks run (the
// node budget of the collect agent fails with its arithmetic).
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"

	"github.com/tpflow/tpflow/deploy"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/internal/config/sections"
)

// Options say what to render.
type Options struct {
	// ValuesFiles are merged over the chart's values.yaml in order, like
	// helm's -f.
	ValuesFiles []string
	// Release names the release (object names start with it); empty is
	// "tpflow".
	Release string
	// Namespace of the release; empty is "default".
	Namespace string
	// APIVersions are API groups/versions the target cluster serves
	// besides the built-in ones (helm's --api-versions), e.g.
	// external.metrics.k8s.io/v1beta1 for the aggregators' autoscaler.
	APIVersions []string
	// KubeVersion is the target cluster's version; empty is Helm's default.
	KubeVersion string
}

// Manifest is one rendered template: its path in the chart
// (tpflow/templates/collect-daemonset.yaml) and its YAML, possibly several
// documents.
type Manifest struct {
	Path    string
	Content string
}

// LoadChart loads the embedded chart.
func LoadChart() (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(deploy.Chart(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(deploy.Chart(), p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: p, Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the embedded chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("cannot load the embedded chart: %w", err)
	}
	return c, nil
}

// Render renders the chart with opts and returns its non-empty manifests
// sorted by path. An error names the values file, the key the schema
// refused, or the chart's own check that failed; the tpflow.yaml the
// chart writes (with the values' config merged in) is then validated as
// every role validates it at start.
func Render(opts Options) ([]Manifest, error) {
	c, err := LoadChart()
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	for _, f := range opts.ValuesFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read values: %w", err)
		}
		v, err := loader.LoadValues(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.APIVersions = append(append(common.VersionSet{}, caps.APIVersions...), opts.APIVersions...)
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("bad Kubernetes version %q: %w", opts.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	rel := common.ReleaseOptions{Name: opts.Release, Namespace: opts.Namespace, IsInstall: true, Revision: 1}
	if rel.Name == "" {
		rel.Name = "tpflow"
	}
	if rel.Namespace == "" {
		rel.Namespace = "default"
	}
	top, err := chartutil.ToRenderValues(c, vals, rel, caps)
	if err != nil {
		return nil, fmt.Errorf("values %s:\n%w", strings.Join(opts.ValuesFiles, ", "), explain(tidy(err), c.Schema))
	}
	out, err := engine.Render(c, top)
	if err != nil {
		return nil, tidy(err)
	}
	var ms []Manifest
	for p, s := range out {
		if path.Base(p) == "NOTES.txt" || strings.HasPrefix(path.Base(p), "_") {
			continue
		}
		if strings.TrimSpace(strings.ReplaceAll(s, "---", "")) == "" {
			continue
		}
		ms = append(ms, Manifest{Path: p, Content: s})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Path < ms[j].Path })
	if err := checkConfig(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// configKey is the key of tpflow.yaml in the chart's ConfigMap.
const configKey = "tpflow.yaml"

// checkConfig validates the tpflow.yaml of the rendered ConfigMap as the
// roles load it. The password files are mounted from the Secret in the
// pods only, so they are taken as present: each password_file is replaced
// by a password before the check.
func checkConfig(ms []Manifest) error {
	for _, m := range ms {
		for doc := range strings.SplitSeq(m.Content, "\n---") {
			var cm struct {
				Kind string            `json:"kind"`
				Data map[string]string `json:"data"`
			}
			if yaml.Unmarshal([]byte(doc), &cm) != nil || cm.Kind != "ConfigMap" {
				continue
			}
			body, ok := cm.Data[configKey]
			if !ok {
				continue
			}
			body, err := withoutPasswordFiles(body)
			if err != nil {
				return fmt.Errorf("BUG: render: the chart's %s does not parse: %v", configKey, err)
			}
			if _, err := sections.Load(configKey, []byte(body), nil); err != nil {
				// %v, not %w: the listing the lines refer to goes with it.
				return fmt.Errorf("the values key config makes an invalid %s:\n%v\n%s as rendered:\n%s", configKey, err, configKey, numbered(body))
			}
			return nil
		}
	}
	return errors.New("BUG: render: the chart rendered no ConfigMap with " + configKey)
}

// withoutPasswordFiles returns the YAML configuration body with every
// password_file of the kafka.sasl and clickhouse sections replaced by a
// password.
func withoutPasswordFiles(body string) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(body), &cfg); err != nil {
		return "", err
	}
	for _, p := range [][]string{{"kafka", "sasl"}, {"clickhouse"}} {
		sec := cfg
		for _, k := range p {
			sec, _ = sec[k].(map[string]any)
		}
		if _, ok := sec["password_file"]; ok {
			delete(sec, "password_file")
			sec["password"] = "mounted-from-the-secret"
		}
	}
	b, err := yaml.Marshal(cfg)
	return string(b), err
}

// numbered returns s with line numbers, for an error that points at them.
func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

var unknownKeys = regexp.MustCompile(`(?m)^( *)- at '([^']*)': additional properties (.+) not allowed$`)

// explain rewrites the schema's "additional properties" errors as the
// unknown keys they are, with their place in the values and the nearest
// key the schema knows there.
func explain(err error, schema []byte) error {
	var root map[string]any
	if json.Unmarshal(schema, &root) != nil {
		return err
	}
	msg := unknownKeys.ReplaceAllStringFunc(err.Error(), func(line string) string {
		m := unknownKeys.FindStringSubmatch(line)
		node, where := root, []string{}
		for _, seg := range strings.Split(strings.Trim(m[2], "/"), "/") {
			if seg == "" {
				continue
			}
			if _, err := strconv.Atoi(seg); err == nil {
				node, _ = node["items"].(map[string]any)
				where = append(where, "["+seg+"]")
				continue
			}
			props, _ := node["properties"].(map[string]any)
			node, _ = props[seg].(map[string]any)
			where = append(where, "."+seg)
		}
		var known []string
		props, _ := node["properties"].(map[string]any)
		for k := range props {
			known = append(known, k)
		}
		sort.Strings(known)
		var out []string
		for _, q := range strings.Split(m[3], ", ") {
			key := strings.Trim(q, "'")
			full := strings.TrimPrefix(strings.Join(where, "")+"."+key, ".")
			hint := ""
			if s := config.Suggest(key, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			} else if len(known) > 0 {
				hint = " (known keys there: " + strings.Join(known, ", ") + ")"
			}
			out = append(out, fmt.Sprintf("%s- unknown key %s%s", m[1], full, hint))
		}
		return strings.Join(out, "\n")
	})
	return errors.New(strings.TrimSpace(msg))
}

// tidy trims what Helm puts before the chart's own failures (the template
// location) and before a schema error (a header naming the chart), which
// say nothing to a user of this one chart.
func tidy(err error) error {
	s := err.Error()
	for _, cut := range []string{"error calling fail: ", "following chart(s):\ntpflow:\n"} {
		if i := strings.Index(s, cut); i >= 0 {
			return errors.New(s[i+len(cut):])
		}
	}
	if strings.HasPrefix(s, "execution error at (") {
		if i := strings.Index(s, "): "); i >= 0 {
			return errors.New(s[i+3:])
		}
	}
	return err
}

// WriteDir writes each manifest to dir under its template's file name
// (collect-daemonset.yaml, ...), creating dir, and removes the files of
// the chart's other templates left there by an earlier render (an
// autoscaler since turned off would otherwise still be applied with the
// directory); files of other names are left alone. It returns the paths
// written.
func WriteDir(dir string, ms []Manifest) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	written := map[string]bool{}
	var paths []string
	for _, m := range ms {
		p := filepath.Join(dir, path.Base(m.Path))
		if err := os.WriteFile(p, []byte(strings.TrimLeft(m.Content, "\n")), 0o644); err != nil {
			return paths, fmt.Errorf("cannot write %s: %w", p, err)
		}
		written[path.Base(m.Path)] = true
		paths = append(paths, p)
	}
	tpls, err := fs.Glob(deploy.Chart(), "templates/*.yaml")
	if err != nil {
		return paths, err
	}
	for _, t := range tpls {
		if name := path.Base(t); !written[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return paths, fmt.Errorf("cannot remove the stale %s: %w", filepath.Join(dir, name), err)
			}
		}
	}
	return paths, nil
}
