package broker

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
)

// record is the read model's view of one live entity: what the indexes
// need, and the stored form itself (decoded on demand). Records are
// immutable once published in the maps; a change replaces the record.
type record struct {
	id       string
	subjType string   // the type token of its subject (first type at creation)
	types    []string // every canonical type
	seq      uint64   // stream sequence of the message that holds this state
	// packed is the stored form (normalized, canonical names, system
	// times), S2-compressed: the repeated member names and times of
	// NGSI-LD JSON shrink it to about 40%, and the read model holds
	// every live entity.
	packed []byte
	// slot is the record's number in the indexes (set when applied).
	slot uint32
	// attrs are the attributes the indexes hold it under (interned).
	attrs []attrRef
	// pending is what the indexes need, read from the stored form when the
	// record is made; the index takes it when the record is applied.
	pending *recIndex
}

func newRecord(id, subjType string, types []string, seq uint64, stored []byte) *record {
	return makeRecord(id, subjType, types, seq, stored, readIndex(stored))
}

// makeRecord makes a record whose index data is ri: read from the stored
// form (newRecord), taken from a decoded state (indexOf), or nil for a
// record whose attributes are indexed later (backfill).
func makeRecord(id, subjType string, types []string, seq uint64, stored []byte, ri *recIndex) *record {
	return &record{id: id, subjType: subjType, types: types, seq: seq, packed: pack(stored), pending: ri}
}

// pack compresses a stored form into a slice of its exact size: the read
// model keeps it, and s2.Encode's own buffer is sized for the worst case
// (larger than the input, about three times the compressed size).
func pack(stored []byte) []byte {
	buf := packBufs.Get().(*[]byte)
	if n := s2.MaxEncodedLen(len(stored)); cap(*buf) < n {
		*buf = make([]byte, n)
	}
	out := bytes.Clone(s2.Encode((*buf)[:cap(*buf)], stored))
	if cap(*buf) <= maxPackBuf {
		packBufs.Put(buf)
	}
	return out
}

// unpack decompresses a record's stored form into a scratch buffer, for
// readers that do not keep it; release gives the buffer back.
func unpack(packed []byte) (data []byte, release func(), err error) {
	buf := packBufs.Get().(*[]byte)
	n, err := s2.DecodedLen(packed)
	if err != nil {
		packBufs.Put(buf)
		return nil, nil, err
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	data, err = s2.Decode((*buf)[:cap(*buf)], packed)
	release = func() {
		if cap(*buf) <= maxPackBuf {
			packBufs.Put(buf)
		}
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return data, release, nil
}

// packBufs are scratch buffers for pack and unpack; a buffer that grew
// past maxPackBuf for a large entity is not kept.
var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPackBuf = 1 << 16

// shared returns the record's state, from the cache when it is there. The
// entity is shared: callers must not modify it.
func (rm *readModel) shared(r *record) (*Entity, error) {
	if e := rm.cache.get(r); e != nil {
		return e, nil
	}
	e, err := r.entity()
	if err == nil {
		rm.cache.put(r, e)
	}
	return e, err
}

// entity decodes the record's state into a new Entity the caller owns.
func (r *record) entity() (*Entity, error) {
	data, release, err := unpack(r.packed)
	if err != nil {
		return nil, fmt.Errorf("%w: read model record of %s: %v", ErrInternal, r.id, err)
	}
	defer release()
	// The decoded entity keeps no part of data (DecodeJSON copies).
	return decodeStored(data)
}

// readModel is one tenant's current state, applied from its stream in
// order by a single goroutine and read by any number of requests.
type readModel struct {
	mu     sync.RWMutex
	byID   map[string]*record
	byType map[string]map[string]*record
	// ix holds the secondary indexes (index.go), under mu like the maps.
	ix *index

	// interned type lists, shared by the records of entities of the same
	// types; the loading workers share it, hence internMu.
	internMu  sync.Mutex
	typeLists map[string][]string

	// cache holds decoded states of hot records (nil: no cache).
	cache *entityCache

	applied atomic.Uint64 // highest stream sequence applied
	waiters atomic.Int32
	waitMu  sync.Mutex
	waitCh  chan struct{} // closed when applied moves while someone waits
}

func newReadModel(cacheSize int) *readModel {
	return &readModel{
		cache:     newEntityCache(cacheSize),
		byID:      make(map[string]*record),
		byType:    make(map[string]map[string]*record),
		ix:        newIndex(),
		typeLists: make(map[string][]string),
		waitCh:    make(chan struct{}),
	}
}

// internTypes returns a shared copy of a list of types.
func (rm *readModel) internTypes(types []string) []string {
	key := types[0]
	if len(types) > 1 {
		key = strings.Join(types, "\x00")
	}
	rm.internMu.Lock()
	defer rm.internMu.Unlock()
	if l, ok := rm.typeLists[key]; ok {
		return l
	}
	l := make([]string, len(types))
	for i, t := range types {
		l[i] = strings.Clone(t)
	}
	if len(rm.typeLists) < 100000 {
		rm.typeLists[key] = l
	}
	return l
}

// put applies a live state; del applies a tombstone. Both move applied.
func (rm *readModel) put(r *record) {
	rm.mu.Lock()
	if old := rm.byID[r.id]; old != nil {
		rm.unindex(old)
		rm.cache.drop(old)
	}
	rm.byID[r.id] = r
	for _, t := range r.types {
		m := rm.byType[t]
		if m == nil {
			m = make(map[string]*record)
			rm.byType[t] = m
		}
		m[r.id] = r
	}
	rm.ix.add(r)
	rm.mu.Unlock()
	rm.advance(r.seq)
}

func (rm *readModel) del(id string, seq uint64) {
	rm.mu.Lock()
	if old := rm.byID[id]; old != nil && old.seq < seq {
		rm.unindex(old)
		rm.cache.drop(old)
		delete(rm.byID, id)
	}
	rm.mu.Unlock()
	rm.advance(seq)
}

func (rm *readModel) unindex(r *record) {
	rm.ix.remove(r)
	for _, t := range r.types {
		if m := rm.byType[t]; m != nil {
			delete(m, r.id)
			if len(m) == 0 {
				delete(rm.byType, t)
			}
		}
	}
}

func (rm *readModel) advance(seq uint64) {
	if seq > rm.applied.Load() {
		rm.applied.Store(seq)
	}
	if rm.waiters.Load() > 0 {
		rm.waitMu.Lock()
		close(rm.waitCh)
		rm.waitCh = make(chan struct{})
		rm.waitMu.Unlock()
	}
}

// waitApplied blocks until the read model has applied seq, or ctx ends.
func (rm *readModel) waitApplied(ctx context.Context, seq uint64) error {
	if rm.applied.Load() >= seq {
		return nil
	}
	rm.waiters.Add(1)
	defer rm.waiters.Add(-1)
	for {
		rm.waitMu.Lock()
		ch := rm.waitCh
		rm.waitMu.Unlock()
		if rm.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (rm *readModel) get(id string) *record {
	rm.mu.RLock()
	r := rm.byID[id]
	rm.mu.RUnlock()
	return r
}

// count is the number of live entities.
func (rm *readModel) count() int {
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	return len(rm.byID)
}

// selectRecords returns the records that pass keep, among those of the
// given types (any of them) or all, sorted by id.
func (rm *readModel) selectRecords(types []string, ids []string, keep func(*record) bool) []*record {
	rm.mu.RLock()
	var out []*record
	switch {
	case len(ids) > 0:
		for _, id := range ids {
			if r := rm.byID[id]; r != nil && keep(r) {
				out = append(out, r)
			}
		}
	case len(types) > 0:
		seen := map[string]bool{}
		for _, t := range types {
			for id, r := range rm.byType[t] {
				if len(types) > 1 {
					if seen[id] {
						continue
					}
					seen[id] = true
				}
				if keep(r) {
					out = append(out, r)
				}
			}
		}
	default:
		for _, r := range rm.byID {
			if keep(r) {
				out = append(out, r)
			}
		}
	}
	rm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
