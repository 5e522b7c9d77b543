package broker

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
)

// The handoff spares the read model the decoding of states this process
// wrote itself: the writer leaves the decoded state beside the bytes it
// publishes, and when the read model applies a message whose bytes are
// exactly those, it takes the decoded state for its indexes and its cache
// instead of parsing the JSON again. States written by other replicas are
// decoded as usual.

// handoffEntry is a state on its way through the log.
type handoffEntry struct {
	data []byte
	ent  *Entity
}

// handoffs maps an entity id to the state its writer is committing.
type handoffs struct{ m sync.Map }

func (h *handoffs) leave(id string, data []byte, e *Entity) *handoffEntry {
	he := &handoffEntry{data: data, ent: e}
	h.m.Store(id, he)
	return he
}

// take returns the decoded state for a message, if this process wrote it.
func (h *handoffs) take(id string, data []byte) *Entity {
	v, ok := h.m.Load(id)
	if !ok {
		return nil
	}
	he := v.(*handoffEntry)
	if !bytes.Equal(he.data, data) {
		return nil
	}
	h.m.CompareAndDelete(id, he)
	return he.ent
}

// forget drops an entry the read model did not take (a lost race, a failed publish).
func (h *handoffs) forget(id string, he *handoffEntry) {
	if he != nil {
		h.m.CompareAndDelete(id, he)
	}
}

// indexOf is readIndex on a decoded state.
func indexOf(e *Entity) *recIndex {
	ri := &recIndex{attrs: make([]recAttr, 0, len(e.Attrs))}
	for name, is := range e.Attrs {
		ra := recAttr{name: name, col: -1}
		for _, a := range is {
			ra.kinds |= 1 << a.Type
		}
		if len(is) == 1 {
			scalarOfAttr(&ra, is[0])
		}
		ri.attrs = append(ri.attrs, ra)
	}
	slices.SortFunc(ri.attrs, func(a, b recAttr) int { return strings.Compare(a.name, b.name) })
	return ri
}

// scalarOfAttr is scalarOf on a decoded attribute.
func scalarOfAttr(ra *recAttr, a *Attribute) {
	m := map[string]any{a.Type.ValueKey(): a.Value}
	scalarOf(ra, a.Type, m)
}

// backfill indexes the attributes of the records the initial load left
// unindexed, a chunk at a time on every core, while the read model serves
// (queries check unindexed records against their full state meanwhile). It
// returns how many records it indexed.
func (rm *readModel) backfill(ctx context.Context) int {
	rm.mu.RLock()
	var todo []*record
	rm.ix.unindexed.each(func(s uint32) bool {
		if r := rm.ix.slots[s]; r != nil {
			todo = append(todo, r)
		}
		return true
	})
	rm.mu.RUnlock()
	if len(todo) == 0 {
		return 0
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var done atomic.Int64
	const chunk = 256
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ris := make([]*recIndex, chunk)
			for start := w * chunk; start < len(todo); start += workers * chunk {
				if ctx.Err() != nil {
					return
				}
				part := todo[start:min(start+chunk, len(todo))]
				for i, r := range part {
					ris[i] = nil
					if data, err := s2.Decode(nil, r.packed); err == nil {
						ris[i] = readIndex(data)
					}
				}
				rm.mu.Lock()
				for i, r := range part {
					if rm.byID[r.id] == r {
						rm.ix.indexLate(r, ris[i])
					}
				}
				rm.mu.Unlock()
				done.Add(int64(len(part)))
			}
		}()
	}
	wg.Wait()
	return int(done.Load())
}
