package broker

import (
	"sync"
)

// entityCache keeps the decoded state of recently read records, so that
// hot entities are not decompressed and parsed on every read. Entries are
// keyed by record: a write makes a new record, so an entry can never be
// stale. The cached entities are shared and must not be modified; writers
// work on clones. The cache is bounded; when a shard is full an arbitrary
// entry leaves (Go's map iteration order), which costs nothing to track.
type entityCache struct {
	shards [cacheShards]cacheShard
	max    int // per shard
}

const cacheShards = 32

type cacheShard struct {
	mu sync.Mutex
	m  map[*record]*Entity
}

func newEntityCache(size int) *entityCache {
	if size <= 0 {
		return nil
	}
	c := &entityCache{max: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[*record]*Entity)
	}
	return c
}

func (c *entityCache) shard(r *record) *cacheShard {
	return &c.shards[r.seq%cacheShards]
}

func (c *entityCache) get(r *record) *Entity {
	if c == nil {
		return nil
	}
	s := c.shard(r)
	s.mu.Lock()
	e := s.m[r]
	s.mu.Unlock()
	return e
}

func (c *entityCache) put(r *record, e *Entity) {
	if c == nil {
		return
	}
	s := c.shard(r)
	s.mu.Lock()
	if len(s.m) >= c.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[r] = e
	s.mu.Unlock()
}

// drop forgets a record that the read model replaced or deleted.
func (c *entityCache) drop(r *record) {
	if c == nil {
		return
	}
	s := c.shard(r)
	s.mu.Lock()
	delete(s.m, r)
	s.mu.Unlock()
}
