package broker

import (
	"sync"
	"sync/atomic"
)

// entityCache keeps the decoded state of recently read records, so that
// hot entities are not decompressed and parsed on every read, together with
// the representations already rendered from that state (read_view.go).
// Entries are keyed by record: a write makes a new record, so an entry, and
// every representation it holds, can never be stale. The cached entities
// are shared and must not be modified; writers work on clones. The cache is
// bounded; when a shard is full an arbitrary entry leaves (Go's map
// iteration order), which costs nothing to track.
type entityCache struct {
	shards [cacheShards]cacheShard
	max    int // per shard
}

const cacheShards = 32

type cacheShard struct {
	mu sync.Mutex
	m  map[*record]*cacheEntry
}

// cacheEntry is one record's decoded state and its rendered views. The
// entity is set once; views is replaced whole (copy on write), so readers
// load it without a lock.
type cacheEntry struct {
	e     *Entity
	views atomic.Pointer[[]renderedView]
}

// renderedView is one representation of a record's state.
type renderedView struct {
	key  ViewKey
	body []byte
}

// Bounds of the rendered views an entry keeps: the entity cache holds up to
// EntityCache entries per tenant, so these bound the memory the views add
// (maxViews times maxViewBytes per entry at worst; a 600-byte entity renders
// to about 1 KB normalized). Larger representations are rendered each time.
const (
	maxViews     = 3
	maxViewBytes = 16 << 10
)

func newEntityCache(size int) *entityCache {
	if size <= 0 {
		return nil
	}
	c := &entityCache{max: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[*record]*cacheEntry)
	}
	return c
}

func (c *entityCache) shard(r *record) *cacheShard {
	return &c.shards[r.seq%cacheShards]
}

func (c *entityCache) get(r *record) *Entity {
	if ce := c.entry(r); ce != nil {
		return ce.e
	}
	return nil
}

// entry returns the cache entry of r, or nil.
func (c *entityCache) entry(r *record) *cacheEntry {
	if c == nil {
		return nil
	}
	s := c.shard(r)
	s.mu.Lock()
	ce := s.m[r]
	s.mu.Unlock()
	return ce
}

func (c *entityCache) put(r *record, e *Entity) {
	c.add(r, e)
}

// add caches e as the state of r and returns its entry: the entry already
// there if a concurrent reader added one first (its state is the same
// record's), nil if there is no cache.
func (c *entityCache) add(r *record, e *Entity) *cacheEntry {
	if c == nil {
		return nil
	}
	s := c.shard(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ce := s.m[r]; ce != nil {
		return ce
	}
	if len(s.m) >= c.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	ce := &cacheEntry{e: e}
	s.m[r] = ce
	return ce
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

// view returns the rendered view of key, or nil.
func (ce *cacheEntry) view(key ViewKey) []byte {
	if vs := ce.views.Load(); vs != nil {
		for i := range *vs {
			if (*vs)[i].key == key {
				return (*vs)[i].body
			}
		}
	}
	return nil
}

// addView keeps body as the view of key, the newest first; the oldest
// leaves past maxViews. Concurrent adders retry on the newer list, so none
// is lost but the ones pushed out.
func (ce *cacheEntry) addView(key ViewKey, body []byte) {
	for {
		old := ce.views.Load()
		var cur []renderedView
		if old != nil {
			cur = *old
		}
		next := make([]renderedView, 0, min(len(cur)+1, maxViews))
		next = append(next, renderedView{key: key, body: body})
		for _, v := range cur {
			if len(next) == maxViews {
				break
			}
			if v.key != key {
				next = append(next, v)
			}
		}
		if ce.views.CompareAndSwap(old, &next) {
			return
		}
	}
}
