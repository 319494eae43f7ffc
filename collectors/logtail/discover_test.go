package logtail

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mkfile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverPresets(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	mkfile(t, filepath.Join(outside, "secret.log"))
	mkfile(t, filepath.Join(outside, "app", "0.log"))

	pod := filepath.Join(base, "var/log/pods/shop_cart-7d9f_0a1b-2c3d/server/0.log")
	mkfile(t, pod)
	mkfile(t, filepath.Join(base, "var/log/pods/shop_cart-7d9f_0a1b-2c3d/server/1.log"))
	// The kubelet's link to the same file: one target.
	symlink(t, "../pods/shop_cart-7d9f_0a1b-2c3d/server/0.log", filepath.Join(base, "var/log/containers/cart-7d9f_shop_server-abc123.log"))
	const id = "4f2a9c"
	dock := filepath.Join(base, "var/lib/docker/containers", id, id+"-json.log")
	mkfile(t, dock)
	// A kubelet link to a Docker log: labels from the link name.
	symlink(t, dock, filepath.Join(base, "var/log/containers/web-1_prod_nginx-"+id+".log"))
	// Escapes: a file link and a directory link that lead outside the roots.
	symlink(t, filepath.Join(outside, "secret.log"), filepath.Join(base, "var/log/containers/evil_ns_c-1.log"))
	symlink(t, outside, filepath.Join(base, "var/log/pods/ns2_p2_u2"))
	// A dangling link.
	symlink(t, filepath.Join(base, "nowhere.log"), filepath.Join(base, "var/log/containers/gone_ns_c-2.log"))

	globs := append(KubernetesGlobs(base), DockerGlobs(base)...)
	roots := []string{filepath.Join(base, "var/log"), filepath.Join(base, "var/lib/docker/containers")}
	got, errs := Discover(globs, roots)

	real := func(p string) string {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := []Target{
		{Path: real(pod), Layout: LayoutKubernetes, Namespace: "shop", Pod: "cart-7d9f", PodUID: "0a1b-2c3d", Container: "server", Root: real(roots[0])},
		{Path: real(filepath.Join(filepath.Dir(pod), "1.log")), Layout: LayoutKubernetes, Namespace: "shop", Pod: "cart-7d9f", PodUID: "0a1b-2c3d", Container: "server", Root: real(roots[0])},
		{Path: real(dock), Layout: LayoutDocker, ContainerID: id, Namespace: "prod", Pod: "web-1", Container: "nginx", Root: real(roots[1])},
	}
	// The Docker target is found first through the link (KubernetesGlobs
	// come first), so it carries the link's labels.
	if len(got) != len(want) {
		t.Fatalf("targets %+v", got)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %+v in %+v", w, got)
		}
	}
	outsideRoot, other := 0, 0
	for _, err := range errs {
		if errors.Is(err, ErrOutsideRoot) {
			outsideRoot++
		} else {
			other++
		}
	}
	// secret.log via the file link, app/0.log via the directory link; the
	// dangling link cannot be resolved.
	if outsideRoot != 2 || other != 1 {
		t.Fatalf("errors %v", errs)
	}
}

func TestDiscoverPlainAndBadGlob(t *testing.T) {
	base := t.TempDir()
	mkfile(t, filepath.Join(base, "a.log"))
	mkfile(t, filepath.Join(base, "sub", "b.log"))
	got, errs := Discover([]string{filepath.Join(base, "*.log"), filepath.Join(base, "*/*.log"), "[", filepath.Join(base, "a.log")}, []string{base, filepath.Join(base, "missing")})
	if len(got) != 2 || got[0].Layout != LayoutFile || got[1].Layout != LayoutFile {
		t.Fatalf("targets %+v", got)
	}
	if len(errs) != 2 { // the bad glob and the missing root
		t.Fatalf("errors %v", errs)
	}
	// Nothing is allowed without a root.
	if got, errs := Discover([]string{filepath.Join(base, "*.log")}, nil); len(got) != 0 || len(errs) != 1 {
		t.Fatalf("no roots: %v %v", got, errs)
	}
}

func TestClassify(t *testing.T) {
	for p, want := range map[string]Target{
		"/var/log/pods/kube-system_coredns-1_u-1/coredns/12.log": {Layout: LayoutKubernetes, Namespace: "kube-system", Pod: "coredns-1", PodUID: "u-1", Container: "coredns"},
		"/var/log/pods/bad/coredns/0.log":                        {Layout: LayoutFile},
		"/var/lib/docker/containers/abc/abc-json.log":            {Layout: LayoutDocker, ContainerID: "abc"},
		"/var/lib/docker/containers/abc/def-json.log":            {Layout: LayoutFile},
		"/var/log/syslog": {Layout: LayoutFile},
	} {
		want.Path = p
		if got := classify(p); got != want {
			t.Errorf("%s: %+v, want %+v", p, got, want)
		}
	}
}
