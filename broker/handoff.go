package broker

import (
	"bytes"
	"slices"
	"strings"
	"sync"

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

// newRecordOf makes a record from a state already decoded.
func newRecordOf(id, subjType string, types []string, seq uint64, stored []byte, e *Entity) *record {
	return &record{id: id, subjType: subjType, types: types, seq: seq, packed: s2.Encode(nil, stored), pending: indexOf(e)}
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
