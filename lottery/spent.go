package lottery

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// spentSet remembers which users used up their takes in an activity, so
// that their next draw reads the store first instead of reserving stock
// for a take the store will refuse. It is a hint, never an answer: a user
// in the set goes through the store read (which reuses an unused take or
// answers ErrLimitReached), and a user missing from it (evicted, or spent on
// another edge) costs one refused take whose units are given back. It holds
// 64-bit hashes of (activity, user), not the ids: no pointers for the
// garbage collector to scan, and a collision only sends a user through the
// read. It is bounded: a shard that reaches its share of the capacity
// starts over.
type spentSet struct {
	seed   maphash.Seed
	shards [spentShards]spentShard
	max    int // entries per shard
}

const (
	spentShards   = 16
	spentCapacity = 1 << 20 // about 20 MB at most
)

type spentShard struct {
	mu sync.RWMutex
	m  map[uint64]struct{}
}

func newSpentSet(capacity int) *spentSet {
	s := &spentSet{seed: maphash.MakeSeed(), max: max(capacity/spentShards, 1)}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]struct{})
	}
	return s
}

// key is the set's hash of (activity, user), for has and add.
func (s *spentSet) key(activity int64, user string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(activity))
	h.Write(b[:])
	h.WriteString(user)
	return h.Sum64()
}

func (s *spentSet) has(k uint64) bool {
	sh := &s.shards[k%spentShards]
	sh.mu.RLock()
	_, ok := sh.m[k]
	sh.mu.RUnlock()
	return ok
}

func (s *spentSet) add(k uint64) {
	sh := &s.shards[k%spentShards]
	sh.mu.Lock()
	if len(sh.m) >= s.max {
		sh.m = make(map[uint64]struct{})
	}
	sh.m[k] = struct{}{}
	sh.mu.Unlock()
}
