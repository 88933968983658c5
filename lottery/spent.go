package lottery

import (
	"hash/maphash"
	"sync"
)

// spentSet remembers which users used up their takes in an activity, so
// that their next draw reads the store first instead of reserving stock
// for a take the store will refuse. It is a hint, never an answer: a user
// in the set goes through the store read (which reuses an unused take or
// answers ErrLimitReached), and a user missing from it (evicted, or spent on
// another edge) costs one refused take whose units are given back. It is
// bounded: a shard that reaches its share of the capacity starts over.
type spentSet struct {
	seed   maphash.Seed
	shards [spentShards]spentShard
	max    int // entries per shard
}

const (
	spentShards   = 16
	spentCapacity = 1 << 18 // about 30 MB at most
)

type spentKey struct {
	activity int64
	user     string
}

type spentShard struct {
	mu sync.RWMutex
	m  map[spentKey]struct{}
}

func newSpentSet(capacity int) *spentSet {
	s := &spentSet{seed: maphash.MakeSeed(), max: max(capacity/spentShards, 1)}
	for i := range s.shards {
		s.shards[i].m = make(map[spentKey]struct{})
	}
	return s
}

func (s *spentSet) shard(k spentKey) *spentShard {
	return &s.shards[maphash.String(s.seed, k.user)%spentShards]
}

func (s *spentSet) has(activity int64, user string) bool {
	k := spentKey{activity, user}
	sh := s.shard(k)
	sh.mu.RLock()
	_, ok := sh.m[k]
	sh.mu.RUnlock()
	return ok
}

func (s *spentSet) add(activity int64, user string) {
	k := spentKey{activity, user}
	sh := s.shard(k)
	sh.mu.Lock()
	if len(sh.m) >= s.max {
		sh.m = make(map[spentKey]struct{})
	}
	sh.m[k] = struct{}{}
	sh.mu.Unlock()
}
