package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

const (
	smallValues = "../helm/values-small.yaml"
	largeValues = "../helm/values-large.yaml"
)

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart writes; the type is not in
// k8s.io/api, so its fields are spelt out here and decoded as strictly.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   map[string]any     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	Selector  map[string]map[string]string `json:"selector"`
	Endpoints []struct {
		Port     string `json:"port"`
		Path     string `json:"path"`
		Interval string `json:"interval"`
	} `json:"endpoints"`
}

// objects are the rendered objects by kind, each decoded strictly.
type objects struct {
	daemonSets     []appsv1.DaemonSet
	deployments    []appsv1.Deployment
	statefulSets   []appsv1.StatefulSet
	configMaps     []corev1.ConfigMap
	secrets        []corev1.Secret
	services       []corev1.Service
	accounts       []corev1.ServiceAccount
	quotas         []corev1.ResourceQuota
	pdbs           []policyv1.PodDisruptionBudget
	roles          []rbacv1.ClusterRole
	bindings       []rbacv1.ClusterRoleBinding
	namespacedRole []rbacv1.Role
	policies       []networkingv1.NetworkPolicy
	hpas           []autoscalingv2.HorizontalPodAutoscaler
	monitors       []serviceMonitor
	// manifest is the rendered text of each template, by base name.
	manifest map[string]string
}

// decodeStrict decodes one YAML document into v, refusing unknown fields.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// renderObjects renders the chart with values and decodes every object
// into its type, failing on an unknown kind or field.
func renderObjects(t *testing.T, opts Options) *objects {
	t.Helper()
	ms, err := Render(opts)
	if err != nil {
		t.Fatalf("Render(%v): %v", opts.ValuesFiles, err)
	}
	o := &objects{manifest: map[string]string{}}
	for _, m := range ms {
		o.manifest[filepath.Base(m.Path)] = m.Content
		for i, doc := range strings.Split(m.Content, "\n---") {
			doc = strings.TrimSpace(doc)
			if strings.Trim(doc, "-\n ") == "" || allComments(doc) {
				continue
			}
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s document %d: %v\n%s", m.Path, i, err, doc)
			}
			var target any
			switch head.Kind {
			case "DaemonSet":
				o.daemonSets = append(o.daemonSets, appsv1.DaemonSet{})
				target = &o.daemonSets[len(o.daemonSets)-1]
			case "Deployment":
				o.deployments = append(o.deployments, appsv1.Deployment{})
				target = &o.deployments[len(o.deployments)-1]
			case "StatefulSet":
				o.statefulSets = append(o.statefulSets, appsv1.StatefulSet{})
				target = &o.statefulSets[len(o.statefulSets)-1]
			case "ConfigMap":
				o.configMaps = append(o.configMaps, corev1.ConfigMap{})
				target = &o.configMaps[len(o.configMaps)-1]
			case "Secret":
				o.secrets = append(o.secrets, corev1.Secret{})
				target = &o.secrets[len(o.secrets)-1]
			case "Service":
				o.services = append(o.services, corev1.Service{})
				target = &o.services[len(o.services)-1]
			case "ServiceAccount":
				o.accounts = append(o.accounts, corev1.ServiceAccount{})
				target = &o.accounts[len(o.accounts)-1]
			case "ResourceQuota":
				o.quotas = append(o.quotas, corev1.ResourceQuota{})
				target = &o.quotas[len(o.quotas)-1]
			case "PodDisruptionBudget":
				o.pdbs = append(o.pdbs, policyv1.PodDisruptionBudget{})
				target = &o.pdbs[len(o.pdbs)-1]
			case "ClusterRole":
				o.roles = append(o.roles, rbacv1.ClusterRole{})
				target = &o.roles[len(o.roles)-1]
			case "ClusterRoleBinding":
				o.bindings = append(o.bindings, rbacv1.ClusterRoleBinding{})
				target = &o.bindings[len(o.bindings)-1]
			case "Role":
				o.namespacedRole = append(o.namespacedRole, rbacv1.Role{})
				target = &o.namespacedRole[len(o.namespacedRole)-1]
			case "NetworkPolicy":
				o.policies = append(o.policies, networkingv1.NetworkPolicy{})
				target = &o.policies[len(o.policies)-1]
			case "HorizontalPodAutoscaler":
				o.hpas = append(o.hpas, autoscalingv2.HorizontalPodAutoscaler{})
				target = &o.hpas[len(o.hpas)-1]
			case "ServiceMonitor":
				o.monitors = append(o.monitors, serviceMonitor{})
				target = &o.monitors[len(o.monitors)-1]
			default:
				t.Fatalf("%s document %d: kind %q has no type in this test", m.Path, i, head.Kind)
			}
			if err := decodeStrict([]byte(doc), target); err != nil {
				t.Errorf("%s document %d (%s) does not decode strictly: %v", m.Path, i, head.Kind, err)
			}
		}
	}
	return o
}

func allComments(doc string) bool {
	for l := range strings.SplitSeq(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestRenderedObjectsAreSafe renders both values files and asserts the
// chart's invariants on the typed objects.
func TestRenderedObjectsAreSafe(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		// what the site asks for
		replicas map[string]int32 // Deployment replicas; absent: the HPA owns them
		hpa      bool
		monitors int
	}{
		{name: "small", opts: Options{ValuesFiles: []string{smallValues}},
			replicas: map[string]int32{"aggregate": 1, "sink": 1, "alert": 1, "api": 1}},
		{name: "large", opts: Options{ValuesFiles: []string{largeValues}, APIVersions: []string{"external.metrics.k8s.io/v1beta1", "monitoring.coreos.com/v1"}},
			replicas: map[string]int32{"sink": 3, "alert": 1, "api": 3}, hpa: true, monitors: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := renderObjects(t, tc.opts)
			checkCollector(t, o, tc.opts.ValuesFiles[0])
			checkChecksums(t, o)
			checkRBAC(t, o)

			got := map[string]int32{}
			for _, d := range o.deployments {
				c := d.Spec.Template.Labels["app.kubernetes.io/component"]
				if d.Spec.Replicas != nil {
					got[c] = *d.Spec.Replicas
				}
				ctr := d.Spec.Template.Spec.Containers[0]
				if ctr.Resources.Limits.Memory().IsZero() || ctr.Resources.Requests.Cpu().IsZero() {
					t.Errorf("deployment %s: no memory limit or CPU request: %v", d.Name, ctr.Resources)
				}
				if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("deployment %s: root file system writable or privilege escalation allowed", d.Name)
				}
				if ps := d.Spec.Template.Spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
					t.Errorf("deployment %s: may run as root", d.Name)
				}
				if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("deployment %s: no /readyz readiness probe", d.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.replicas) {
				t.Errorf("deployment replicas = %v, want %v", got, tc.replicas)
			}
			// Every Deployment has a PDB that lets a drain go on.
			if len(o.pdbs) != len(o.deployments) {
				t.Errorf("%d PDBs for %d deployments", len(o.pdbs), len(o.deployments))
			}
			for _, p := range o.pdbs {
				if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 {
					t.Errorf("PDB %s blocks every eviction: %v", p.Name, p.Spec.MaxUnavailable)
				}
			}
			if len(o.statefulSets) != 0 {
				t.Errorf("the control plane is rendered though it is off by default")
			}
			if tc.hpa {
				if len(o.hpas) != 1 {
					t.Fatalf("%d HPAs, want the aggregators'", len(o.hpas))
				}
				h := o.hpas[0]
				if h.Spec.ScaleTargetRef.Kind != "Deployment" || !strings.HasSuffix(h.Spec.ScaleTargetRef.Name, "-aggregate") ||
					len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Type != autoscalingv2.ExternalMetricSourceType ||
					h.Spec.Metrics[0].External.Metric.Name != "kafka_consumergroup_lag" {
					t.Errorf("HPA does not scale the aggregators on consumer lag: %+v", h.Spec)
				}
				agg := findDeployment(t, o, "aggregate")
				terms := agg.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
				if len(terms) == 0 || terms[0].PodAffinityTerm.TopologyKey != "topology.kubernetes.io/zone" {
					t.Errorf("aggregators not spread across zones: %+v", agg.Spec.Template.Spec.Affinity)
				}
				api := findDeployment(t, o, "api")
				if a := api.Spec.Template.Spec.Affinity; a == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
					t.Errorf("api replicas not required in distinct zones")
				}
			} else if len(o.hpas) != 0 {
				t.Errorf("an HPA without autoscaling")
			}
			if len(o.monitors) != tc.monitors {
				t.Errorf("%d ServiceMonitors, want %d", len(o.monitors), tc.monitors)
			}
			// Ingress to every workload is limited.
			if want := len(o.deployments) + len(o.daemonSets); len(o.policies) != want {
				t.Errorf("%d NetworkPolicies for %d workloads", len(o.policies), want)
			}
		})
	}
}

func findDeployment(t *testing.T, o *objects, component string) appsv1.Deployment {
	t.Helper()
	for _, d := range o.deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == component {
			return d
		}
	}
	t.Fatalf("no %s deployment", component)
	return appsv1.Deployment{}
}

// checkCollector asserts the DaemonSet's safety on its typed object.
func checkCollector(t *testing.T, o *objects, valuesFile string) {
	t.Helper()
	if len(o.daemonSets) != 1 {
		t.Fatalf("%d DaemonSets, want 1", len(o.daemonSets))
	}
	ds := o.daemonSets[0]
	pod := ds.Spec.Template.Spec
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q", pod.PriorityClassName)
	}
	// Every taint is tolerated ...
	all := slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "" && tl.Operator == corev1.TolerationOpExists && tl.Effect == ""
	})
	if !all {
		t.Errorf("tolerations %v do not tolerate every taint", pod.Tolerations)
	}
	// ... but virtual and Fargate nodes are kept out.
	req := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil || len(req.NodeSelectorTerms) != 1 {
		t.Fatalf("no required node affinity: %+v", pod.Affinity)
	}
	keeps := func(key string, op corev1.NodeSelectorOperator, value string) bool {
		return slices.ContainsFunc(req.NodeSelectorTerms[0].MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			return e.Key == key && e.Operator == op && (value == "" || slices.Contains(e.Values, value))
		})
	}
	if !keeps("type", corev1.NodeSelectorOpNotIn, "virtual-kubelet") || !keeps("eks.amazonaws.com/compute-type", corev1.NodeSelectorOpNotIn, "fargate") ||
		!keeps("virtual-kubelet.io/provider", corev1.NodeSelectorOpDoesNotExist, "") {
		t.Errorf("node affinity does not keep the agent off virtual and Fargate nodes: %+v", req.NodeSelectorTerms[0].MatchExpressions)
	}
	// Surge updates.
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 1 ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("update strategy = %+v, want maxSurge 1, maxUnavailable 0", ds.Spec.UpdateStrategy)
	}
	if pod.HostNetwork || pod.HostPID {
		t.Errorf("hostNetwork or hostPID: an old and a new agent could not run side by side")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	// Limits and GOMEMLIMIT at 80 % of the memory limit.
	lim := c.Resources.Limits.Memory()
	if lim.IsZero() || c.Resources.Limits.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Fatalf("resources = %v, want requests and limits of CPU and memory", c.Resources)
	}
	gml := ""
	host := ""
	for _, e := range c.Env {
		switch e.Name {
		case "GOMEMLIMIT":
			gml = e.Value
		case "NODE_NAME":
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				host = e.ValueFrom.FieldRef.FieldPath
			}
		}
	}
	if want := lim.Value() * 8 / 10; gml != fmt.Sprint(want) {
		t.Errorf("GOMEMLIMIT = %q, want %d (80 %% of the memory limit %s)", gml, want, lim)
	}
	// The host label is the node's name, so the new agent of a surge is
	// the same host as the old one: the same offsets record and
	// transactional ID.
	if host != "spec.nodeName" || !slices.Contains(c.Args, "--host=$(NODE_NAME)") {
		t.Errorf("the agent's host is not the node name: env %v, args %v", c.Env, c.Args)
	}
	// Mounts: every hostPath read-only but the state directory.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	hostRO := map[string]bool{}
	var state string
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		if v.HostPath == nil {
			continue
		}
		if !m.ReadOnly {
			if state != "" {
				t.Errorf("two writable hostPath mounts: %s and %s", state, m.MountPath)
			}
			state = v.HostPath.Path
			if v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
				t.Errorf("state hostPath %s type %v, want DirectoryOrCreate", state, v.HostPath.Type)
			}
			continue
		}
		hostRO[v.HostPath.Path] = true
	}
	for _, p := range []string{"/var/log/pods", "/var/log/containers", "/var/lib/docker/containers", "/proc", "/sys", "/dev/kmsg"} {
		if !hostRO[p] {
			t.Errorf("host path %s is not mounted read-only (read-only: %v)", p, hostRO)
		}
	}
	if state == "" {
		t.Error("no writable state hostPath")
	}
	cfg := o.configMaps[slices.IndexFunc(o.configMaps, func(cm corev1.ConfigMap) bool { return cm.Data["tpflow.yaml"] != "" })].Data["tpflow.yaml"]
	if !strings.Contains(cfg, "state_file: "+state+"/") {
		t.Errorf("collect.state_file is not in the state hostPath %s:\n%s", state, cfg)
	}
	// Only the capability /dev/kmsg needs.
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"SYSLOG"}) {
		t.Errorf("capabilities = %+v, want ALL dropped and SYSLOG only", sc)
	}
	if sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v: privileged, escalating or writable root", sc)
	}
	// Probes: readiness is the pipeline's; liveness does not kill a busy
	// agent within two minutes.
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe = %+v, want /readyz", c.ReadinessProbe)
	}
	lp := c.LivenessProbe
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.PeriodSeconds*lp.FailureThreshold < 120 || lp.TimeoutSeconds < 5 {
		t.Errorf("liveness probe = %+v, want /healthz failing only after 2 minutes", lp)
	}
	// The requests fit every node type's budget in the values file.
	var vals struct {
		NodeBudget struct {
			NodeTypes []struct {
				Name          string  `json:"name"`
				CPUPercent    float64 `json:"cpuPercent"`
				MemoryPercent float64 `json:"memoryPercent"`
				Allocatable   struct {
					CPU    resource.Quantity `json:"cpu"`
					Memory resource.Quantity `json:"memory"`
				} `json:"allocatable"`
			} `json:"nodeTypes"`
		} `json:"nodeBudget"`
	}
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatal(err)
	}
	for _, nt := range vals.NodeBudget.NodeTypes {
		if got, max := c.Resources.Requests.Cpu().MilliValue(), float64(nt.Allocatable.CPU.MilliValue())*nt.CPUPercent/100; float64(got) > max {
			t.Errorf("node type %s: CPU request %dm over the budget %.1fm", nt.Name, got, max)
		}
		if got, max := c.Resources.Requests.Memory().Value(), float64(nt.Allocatable.Memory.Value())*nt.MemoryPercent/100; float64(got) > max {
			t.Errorf("node type %s: memory request %d over the budget %.0f", nt.Name, got, max)
		}
	}
}

// checkChecksums: every workload carries the checksum of the ConfigMap
// and Secret manifests as rendered, so a change of either rolls it.
func checkChecksums(t *testing.T, o *objects) {
	t.Helper()
	want := map[string]string{"checksum/config": sha(o.manifest["configmap.yaml"])}
	if s, ok := o.manifest["secret.yaml"]; ok {
		want["checksum/secret"] = sha(s)
	} // else secrets.existingSecret: a Secret made elsewhere, not the chart's to checksum
	templates := map[string]map[string]string{}
	for _, d := range o.daemonSets {
		templates["daemonset/"+d.Name] = d.Spec.Template.Annotations
	}
	for _, d := range o.deployments {
		templates["deployment/"+d.Name] = d.Spec.Template.Annotations
	}
	for name, ann := range templates {
		for k, v := range want {
			if ann[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, ann[k], v)
			}
		}
	}
}

// checkRBAC: one ClusterRole, reading pods only, bound to the agent's
// ServiceAccount; no other account mounts a token.
func checkRBAC(t *testing.T, o *objects) {
	t.Helper()
	if len(o.roles) != 1 || len(o.bindings) != 1 || len(o.namespacedRole) != 0 {
		t.Fatalf("%d ClusterRoles, %d bindings, %d Roles; want one ClusterRole and its binding", len(o.roles), len(o.bindings), len(o.namespacedRole))
	}
	for _, r := range o.roles[0].Rules {
		if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"pods"}) || len(r.ResourceNames) != 0 || len(r.NonResourceURLs) != 0 {
			t.Errorf("rule %+v reaches beyond pods", r)
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("rule %+v allows %q", r, v)
			}
		}
	}
	b := o.bindings[0]
	if b.RoleRef.Name != o.roles[0].Name || len(b.Subjects) != 1 || b.Subjects[0].Name != o.daemonSets[0].Spec.Template.Spec.ServiceAccountName {
		t.Errorf("binding %+v is not the agent's", b)
	}
	for _, a := range o.accounts {
		mounts := a.AutomountServiceAccountToken == nil || *a.AutomountServiceAccountToken
		if mounts != strings.HasSuffix(a.Name, "-collect") {
			t.Errorf("service account %s mounts a token: %v", a.Name, mounts)
		}
	}
}

// TestConfigChangeRollsThePods: a change of the configuration alone
// changes the checksum annotation of every workload.
func TestConfigChangeRollsThePods(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "more.yaml")
	if err := os.WriteFile(extra, []byte("config:\n  aggregate:\n    flush_interval: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := renderObjects(t, Options{ValuesFiles: []string{smallValues}})
	b := renderObjects(t, Options{ValuesFiles: []string{smallValues, extra}})
	before, after := a.daemonSets[0].Spec.Template.Annotations["checksum/config"], b.daemonSets[0].Spec.Template.Annotations["checksum/config"]
	if before == "" || before == after {
		t.Errorf("checksum/config %q before and %q after a change of config", before, after)
	}
	if x, y := findDeployment(t, a, "aggregate").Spec.Template.Annotations["checksum/config"], findDeployment(t, b, "aggregate").Spec.Template.Annotations["checksum/config"]; x == y {
		t.Errorf("the aggregators' checksum did not change")
	}
}

// TestBadValuesAreRefused: a misspelt key fails naming it (and the key
// meant), requests over the node budget fail with the arithmetic, and a
// bad tpflow configuration fails with its line.
func TestBadValuesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, values string
		want         []string
	}{
		{"typo in a nested key", "collect:\n  resoures:\n    requests: {cpu: 10m}\n",
			[]string{"unknown key collect.resoures", `did you mean "resources"`}},
		{"typo at the top", "colect: {}\n", []string{`unknown key colect (did you mean "collect"?)`}},
		{"typo in a list item", "nodeBudget:\n  nodeTypes:\n    - {name: a, allocatable: {cpu: 4, memory: 16Gi}, cpuPercent: 2, memoryPrecent: 3}\n",
			[]string{"unknown key nodeBudget.nodeTypes[0].memoryPrecent", `"memoryPercent"`}},
		{"not a quantity", "collect:\n  resources:\n    requests: {cpu: lots, memory: 64Mi}\n    limits: {memory: 128Mi}\n",
			[]string{"/collect/resources/requests/cpu"}},
		{"over the budget",
			"collect:\n  resources:\n    requests: {cpu: 100m, memory: 512Mi}\n    limits: {memory: 1Gi}\n",
			[]string{"exceed the node budget",
				"node type general-4cpu-16gi: collect.resources.requests.cpu 100m = 100m > 2% of allocatable cpu 3920m (3920m) = 78.4m",
				"node type general-4cpu-16gi: collect.resources.requests.memory 512Mi = 512.0Mi > 3% of allocatable memory 14Gi (14336Mi) = 430.1Mi"}},
		{"more aggregators than partitions", "aggregate:\n  replicas: 12\n",
			[]string{"aggregate.replicas 12 is over kafka.partitions.calls 8", "4 of them would idle"}},
		{"bad tpflow configuration", "config:\n  aggregator:\n    pane: 7x\n",
			[]string{"invalid tpflow.yaml", `aggregator.pane: cannot parse "7x" as a duration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(f, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Render(Options{ValuesFiles: []string{smallValues, f}})
			if err == nil {
				t.Fatal("Render succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestChartGrafanaIsDeployGrafana: the chart's copy of the Grafana
// provisioning is deploy/grafana (go generate ./deploy refreshes it), and
// every dashboard is in the rendered ConfigMap.
func TestChartGrafanaIsDeployGrafana(t *testing.T) {
	src := "../grafana"
	var n int
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join("../helm/tpflow/files/grafana", rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("deploy/helm/tpflow/files/grafana/%s differs from deploy/grafana/%s (run go generate ./deploy)", rel, rel)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walking deploy/grafana: %v, %d files", err, n)
	}
	o := renderObjects(t, Options{ValuesFiles: []string{smallValues}})
	i := slices.IndexFunc(o.configMaps, func(cm corev1.ConfigMap) bool { return strings.HasSuffix(cm.Name, "-grafana") })
	if i < 0 {
		t.Fatal("no Grafana ConfigMap")
	}
	dash, _ := filepath.Glob(filepath.Join(src, "dashboards", "*.json"))
	for _, p := range dash {
		want, _ := os.ReadFile(p)
		if got := o.configMaps[i].Data[filepath.Base(p)]; strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Errorf("dashboard %s in the ConfigMap differs from the file", filepath.Base(p))
		}
	}
}

// TestControlHasItsPlace: the control plane, off by default, renders as a
// StatefulSet with a volume for SQLite and as a Deployment otherwise.
func TestControlHasItsPlace(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		storage            string
		statefulSets, deps int
	}{{"sqlite", 1, 4}, {"external", 0, 5}} {
		f := filepath.Join(dir, tc.storage+".yaml")
		if err := os.WriteFile(f, []byte("control:\n  enabled: true\n  storage: "+tc.storage+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := renderObjects(t, Options{ValuesFiles: []string{smallValues, f}})
		if len(o.statefulSets) != tc.statefulSets || len(o.deployments) != tc.deps {
			t.Errorf("storage %s: %d StatefulSets and %d Deployments, want %d and %d", tc.storage, len(o.statefulSets), len(o.deployments), tc.statefulSets, tc.deps)
		}
		if tc.storage == "sqlite" && len(o.statefulSets) == 1 {
			ss := o.statefulSets[0]
			if len(ss.Spec.VolumeClaimTemplates) != 1 || *ss.Spec.Replicas != 1 || ss.Spec.Template.Spec.Containers[0].Args[0] != "control" {
				t.Errorf("control StatefulSet: %d volume claims, %d replicas, args %v", len(ss.Spec.VolumeClaimTemplates), *ss.Spec.Replicas, ss.Spec.Template.Spec.Containers[0].Args)
			}
		}
	}
}

// TestHelmLint runs Helm's own linter on the chart's directory, as `helm
// lint -f values-small.yaml` does: Chart.yaml, the schema, the templates
// and deprecated APIs. Any warning or error fails.
func TestHelmLint(t *testing.T) {
	for _, f := range []string{smallValues, largeValues} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := loader.LoadValues(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res := lint.RunAll("../helm/tpflow", vals, "tpflow")
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: helm lint: %s", f, m)
			}
		}
	}
}

// TestWriteDirRemovesStaleTemplates: rendering the small site into the
// directory of the large one removes the large one's autoscaler and
// ServiceMonitors, and leaves other files alone.
func TestWriteDirRemovesStaleTemplates(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "kustomization.yaml")
	if err := os.WriteFile(mine, []byte("resources: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	large, err := Render(Options{ValuesFiles: []string{largeValues}, APIVersions: []string{"external.metrics.k8s.io/v1beta1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDir(dir, large); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hpa.yaml", "servicemonitor.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("the large site did not write %s: %v", f, err)
		}
	}
	small, err := Render(Options{ValuesFiles: []string{smallValues}})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := WriteDir(dir, small)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hpa.yaml", "servicemonitor.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s of the earlier render is still there", f)
		}
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a file that is not the chart's was removed: %v", err)
	}
	if len(paths) != len(small) {
		t.Errorf("%d paths written for %d manifests", len(paths), len(small))
	}
}
