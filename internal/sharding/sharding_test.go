package sharding

import (
	"errors"
	"fmt"
	"testing"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		index, total int
		ok           bool
	}{
		{0, 1, true}, {1, 2, true}, {3, 4, true},
		{0, 0, false}, {-1, 2, false}, {2, 2, false}, {5, 4, false},
	} {
		_, err := New(tc.index, tc.total)
		if (err == nil) != tc.ok {
			t.Errorf("New(%d, %d): error %v, want ok=%t", tc.index, tc.total, err, tc.ok)
		}
	}
}

// Every namespace belongs to exactly one shard, the split is stable, and namespaces spread over all the
// shards.
func TestOwnsPartitions(t *testing.T) {
	for _, total := range []int{1, 2, 3, 7} {
		perShard := make([]int, total)
		for i := range 2000 {
			ns := fmt.Sprintf("team-%d", i)
			owners := 0
			for index := range total {
				if (Shard{Index: index, Total: total}).Owns(ns) {
					owners++
					perShard[index]++
				}
			}
			if owners != 1 {
				t.Fatalf("%d shards: namespace %s is owned by %d shards", total, ns, owners)
			}
			if Of(ns, total) != Of(ns, total) {
				t.Fatalf("Of is not stable")
			}
		}
		for index, n := range perShard {
			// 2000 namespaces: each shard gets its share within a wide margin (a hash, not a round robin).
			if want := 2000 / total; n < want/2 || n > want*3/2 {
				t.Errorf("%d shards: shard %d owns %d namespaces, want about %d", total, index, n, want)
			}
		}
	}
	if !(Shard{}).Owns("anything") || (Shard{}).Sharded() || !(Shard{}).Counts() {
		t.Error("the zero Shard is not the whole cluster")
	}
}

// The split is FNV-1a of the namespace name: pinned, since replicas of different builds must agree.
func TestOfPinned(t *testing.T) {
	// Computed independently (Python: h ^= byte; h *= 0x01000193, from 0x811c9dc5, 32 bits).
	for ns, want := range map[string]int{"default": 2, "kube-system": 2} {
		if got := Of(ns, 4); got != want {
			t.Errorf("Of(%q, 4) = %d, want %d", ns, got, want)
		}
	}
	// fnv32a("a") = 0xe40c292c; mod 3 = 3826002220 % 3 = 1.
	if got := Of("a", 3); got != 1 {
		t.Errorf(`Of("a", 3) = %d, want 1 (FNV-1a 32)`, got)
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		index, total int
		pod          string
		want         Shard
		err          bool
	}{
		{0, 1, "", Shard{0, 1}, false},
		{-1, 1, "", Shard{0, 1}, false}, // unsharded: no pod name needed
		{1, 3, "", Shard{1, 3}, false},
		{-1, 3, "sigwatch-2", Shard{2, 3}, false},
		{-1, 3, "sigwatch-shard-0", Shard{0, 3}, false},
		{-1, 3, "sigwatch-3", Shard{}, true}, // ordinal past the shards
		{-1, 3, "sigwatch", Shard{}, true},
		{-1, 3, "sigwatch-", Shard{}, true},
		{-1, 3, "sigwatch-01", Shard{}, true},
		{-1, 3, "sigwatch-x", Shard{}, true},
		{-1, 3, "", Shard{}, true},
	} {
		got, err := Resolve(tc.index, tc.total, tc.pod)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Resolve(%d, %d, %q) = %v, %v; want %v, error %t", tc.index, tc.total, tc.pod, got, err, tc.want, tc.err)
		}
	}
	if _, err := Resolve(-1, 2, ""); !errors.Is(err, ErrNoOrdinal) {
		t.Errorf("no pod name: %v, want ErrNoOrdinal", err)
	}
}
