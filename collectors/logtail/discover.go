package logtail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrOutsideRoot is wrapped by Discover for a path that resolves, through
// symbolic links, to a file outside every configured root.
var ErrOutsideRoot = errors.New("path resolves outside the configured roots")

// Layouts of a Target.
const (
	LayoutFile       = "file"       // any other file
	LayoutKubernetes = "kubernetes" // /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log
	LayoutDocker     = "docker"     // /var/lib/docker/containers/<id>/<id>-json.log
)

// Target is one file to tail with what its path says about its source.
type Target struct {
	// Path is the resolved path, without symbolic links; two globs that
	// reach the same file yield one Target.
	Path string
	// Layout is LayoutFile, LayoutKubernetes or LayoutDocker.
	Layout string
	// Namespace, Pod, PodUID and Container are set for LayoutKubernetes.
	Namespace, Pod, PodUID, Container string
	// ContainerID is set for LayoutDocker. A Docker log reached through a
	// kubelet /var/log/containers link also gets Namespace, Pod and
	// Container from the link's name.
	ContainerID string
	// Root is the resolved root Path lies in; the Tailer of the target
	// opens files only through it (Tailer.ConfineTo).
	Root string
}

// KubernetesGlobs returns the globs of the kubelet's log layout under base
// ("/" on a node): the pod log files and the /var/log/containers links to
// them.
func KubernetesGlobs(base string) []string {
	return []string{
		filepath.Join(base, "var/log/pods/*/*/*.log"),
		filepath.Join(base, "var/log/containers/*.log"),
	}
}

// DockerGlobs returns the glob of Docker's json-file logs under base.
func DockerGlobs(base string) []string {
	return []string{filepath.Join(base, "var/lib/docker/containers/*/*-json.log")}
}

// Discover expands globs, resolves symbolic links and keeps the files that
// lie inside one of roots. Each refused or unresolvable path is one error in
// the returned slice (len is the count to report); the refusal wraps
// ErrOutsideRoot. Line content never reaches Discover: paths come only from
// configuration and the file system. Targets are sorted by Path.
func Discover(globs, roots []string) ([]Target, []error) {
	var errs []error
	realRoots := make([]string, 0, len(roots))
	for _, r := range roots {
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot resolve root %s: %w", r, err))
			continue
		}
		realRoots = append(realRoots, rr)
	}
	seen := make(map[string]bool)
	var out []Target
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot expand glob %q: %w", g, err))
			continue
		}
		for _, m := range matches {
			real, err := filepath.EvalSymlinks(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("cannot resolve %s: %w", m, err))
				continue
			}
			root, ok := rootOf(real, realRoots)
			if !ok {
				errs = append(errs, fmt.Errorf("cannot tail %s (-> %s): %w", m, real, ErrOutsideRoot))
				continue
			}
			if seen[real] {
				continue
			}
			seen[real] = true
			tg := classify(real)
			tg.Root = root
			if tg.Layout != LayoutKubernetes {
				linkLabels(m, &tg)
			}
			out = append(out, tg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, errs
}

func within(p string, roots []string) bool {
	_, ok := rootOf(p, roots)
	return ok
}

// rootOf returns the first of roots that holds p.
func rootOf(p string, roots []string) (string, bool) {
	for _, r := range roots {
		rel, err := filepath.Rel(r, p)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			return r, true
		}
	}
	return "", false
}

// classify reads labels from the last path elements of a resolved path.
func classify(p string) Target {
	t := Target{Path: p, Layout: LayoutFile}
	parts := strings.Split(filepath.ToSlash(p), "/")
	n := len(parts)
	// .../pods/<namespace>_<pod>_<uid>/<container>/<n>.log
	if n >= 4 && parts[n-4] == "pods" && strings.HasSuffix(parts[n-1], ".log") {
		// Namespaces and pod names are DNS labels and subdomains: no '_'.
		if f := strings.Split(parts[n-3], "_"); len(f) == 3 && f[0] != "" && f[1] != "" && parts[n-2] != "" {
			t.Layout = LayoutKubernetes
			t.Namespace, t.Pod, t.PodUID, t.Container = f[0], f[1], f[2], parts[n-2]
			return t
		}
	}
	// .../containers/<id>/<id>-json.log
	if n >= 3 && parts[n-3] == "containers" && parts[n-2] != "" && parts[n-1] == parts[n-2]+"-json.log" {
		t.Layout = LayoutDocker
		t.ContainerID = parts[n-2]
	}
	return t
}

// linkLabels fills the Kubernetes labels from the name of a kubelet link
// .../containers/<pod>_<namespace>_<container>-<container id>.log, for a
// link that leads to a file of another layout (a Docker json log).
func linkLabels(p string, t *Target) {
	dir, name := filepath.Split(p)
	if filepath.Base(filepath.Clean(dir)) != "containers" || !strings.HasSuffix(name, ".log") {
		return
	}
	f := strings.Split(strings.TrimSuffix(name, ".log"), "_")
	if len(f) != 3 || f[0] == "" || f[1] == "" {
		return
	}
	i := strings.LastIndexByte(f[2], '-')
	if i <= 0 {
		return
	}
	t.Pod, t.Namespace, t.Container = f[0], f[1], f[2][:i]
	if t.ContainerID == "" {
		t.ContainerID = f[2][i+1:]
	}
}

// GlobDirs returns the existing directories in which a new match of the
// globs can appear: each glob's directory, expanded, and every directory
// on the way to it from its fixed prefix, where a new entry (a pod's
// directory, a container's) brings new matches. Watching them finds a new
// file when it is created instead of at the next rescan. Sorted.
func GlobDirs(globs []string) []string {
	set := map[string]bool{}
	for _, g := range globs {
		dir := filepath.Dir(filepath.Clean(g))
		var pats []string
		for hasMeta(dir) {
			pats = append(pats, dir)
			dir = filepath.Dir(dir)
		}
		if isDir(dir) {
			set[dir] = true
		}
		for _, p := range pats {
			matches, _ := filepath.Glob(p) // the pattern was validated with the config
			for _, m := range matches {
				if isDir(m) {
					set[m] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
