// Package sharding splits the namespaces of a cluster between the replicas of the manager: each replica
// (shard) handles the pods, SignedImages and Events of the namespaces that hash to it, as
// kube-state-metrics shards its objects. The split depends only on the namespace name and the number of
// shards, so every replica computes the same one without talking to the others.
package sharding

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one replica's part: Index of Total (0 ≤ Index < Total). The zero value, like Total 1, is the
// whole cluster.
type Shard struct {
	Index, Total int
}

// Whole is the shard of an unsharded manager.
var Whole = Shard{Index: 0, Total: 1}

// New returns shard index of total, or an error naming what is wrong.
func New(index, total int) (Shard, error) {
	if total < 1 {
		return Shard{}, fmt.Errorf("the number of shards must be at least 1, not %d", total)
	}
	if index < 0 || index >= total {
		return Shard{}, fmt.Errorf("the shard must be between 0 and %d (one less than the number of shards), not %d", total-1, index)
	}
	return Shard{Index: index, Total: total}, nil
}

// Of returns the shard index a namespace belongs to among total shards: FNV-1a of its name, modulo
// total.
func Of(namespace string, total int) int {
	if total <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace))
	return int(h.Sum32() % uint32(total))
}

// Owns reports whether the namespace is this shard's.
func (s Shard) Owns(namespace string) bool {
	return s.Total <= 1 || Of(namespace, s.Total) == s.Index
}

// Sharded reports whether the cluster is split between more than one replica.
func (s Shard) Sharded() bool { return s.Total > 1 }

// Counts reports whether this shard keeps the cluster-wide figures (the policies' image counts and
// conditions, the policy metrics): shard 0, so that no two replicas write the same field.
func (s Shard) Counts() bool { return s.Index == 0 }

func (s Shard) String() string {
	if !s.Sharded() {
		return "0/1"
	}
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Total)
}

// FromOrdinal returns the ordinal of a StatefulSet pod's name ("sigwatch-2" is 2), the shard of that
// replica.
func FromOrdinal(podName string) (int, error) {
	i := strings.LastIndexByte(podName, '-')
	if i < 0 || i == len(podName)-1 {
		return 0, fmt.Errorf("pod name %q does not end in -<ordinal>, as a StatefulSet's pods do", podName)
	}
	n, err := strconv.Atoi(podName[i+1:])
	if err != nil || n < 0 || strconv.Itoa(n) != podName[i+1:] {
		return 0, fmt.Errorf("pod name %q does not end in -<ordinal>, as a StatefulSet's pods do", podName)
	}
	return n, nil
}

// ErrNoOrdinal is returned by Resolve when the shard is to come from the pod name and there is none.
var ErrNoOrdinal = errors.New("the shard is taken from the StatefulSet ordinal of the pod name, but the pod name is not known (set POD_NAME from metadata.name)")

// Resolve returns the shard from the flags: index ≥ 0 as given; index < 0 the whole cluster when total is
// 1, else the ordinal of podName (replicas of one template must not all default to shard 0, leaving
// the other shards' namespaces unwatched).
func Resolve(index, total int, podName string) (Shard, error) {
	if total < 1 {
		return New(index, total)
	}
	if index < 0 && total == 1 {
		return Whole, nil
	}
	if index < 0 {
		if podName == "" {
			return Shard{}, ErrNoOrdinal
		}
		n, err := FromOrdinal(podName)
		if err != nil {
			return Shard{}, err
		}
		index = n
	}
	return New(index, total)
}
