package kafka

import (
	"fmt"
	"testing"
)

func TestGroupByPartition(t *testing.T) {
	// 200 items over 7 partitions: every item in the group of the
	// partition PartitionOf picks for its key, groups in partition order,
	// each keeping its items' order, keyed by its first item's key.
	keys := make([][]byte, 200)
	for i := range keys {
		keys[i] = CallKey("sys", fmt.Sprintf("app%d", i%23), "m")
	}
	gs := GroupByPartition(len(keys), 7, func(i int) []byte { return keys[i] })
	seen := 0
	for j, g := range gs {
		if j > 0 && g.Partition <= gs[j-1].Partition {
			t.Errorf("group %d: partition %d after %d", j, g.Partition, gs[j-1].Partition)
		}
		if string(g.Key) != string(keys[g.Idx[0]]) {
			t.Errorf("partition %d: key is not its first item's", g.Partition)
		}
		for n, i := range g.Idx {
			if p := PartitionOf(keys[i], 7); p != g.Partition {
				t.Errorf("item %d (partition %d) in the group of %d", i, p, g.Partition)
			}
			if n > 0 && i <= g.Idx[n-1] {
				t.Errorf("partition %d: item %d after %d", g.Partition, i, g.Idx[n-1])
			}
		}
		seen += len(g.Idx)
	}
	if seen != len(keys) || len(gs) < 2 {
		t.Errorf("%d items in %d groups, want %d in several", seen, len(gs), len(keys))
	}
	if gs := GroupByPartition(0, 7, nil); len(gs) != 0 {
		t.Errorf("no items: %d groups", len(gs))
	}
}
