package collect

import (
	"slices"
	"testing"
)

// TestFindContainers finds the container cgroups of the v1 and v2 test
// trees of collectors/metrics with their ids and pod UIDs.
func TestFindContainers(t *testing.T) {
	f := func(root string, want []containerCgroup) {
		t.Helper()
		got := findContainers(root)
		slices.SortFunc(got, func(a, b containerCgroup) int {
			if a.id < b.id {
				return -1
			}
			if a.id > b.id {
				return 1
			}
			return 0
		})
		if !slices.Equal(got, want) {
			t.Errorf("findContainers(%s) = %+v, want %+v", root, got, want)
		}
	}
	f("../metrics/testdata/cgroupv1/memory", []containerCgroup{
		{rel: "kubepods/burstable/pod1234/abc", id: "abc", podUID: "1234"},
		{rel: "kubepods/besteffort/pod99/def", id: "def", podUID: "99"},
	})
	f("../metrics/testdata/cgroupv2", []containerCgroup{
		{rel: "kubepods.slice/kubepods-burstable.slice/cri-containerd-abc.scope", id: "abc"},
		{rel: "kubepods.slice/kubepods-besteffort.slice/cri-containerd-def.scope", id: "def"},
	})
	f("/nonexistent", nil)
}
