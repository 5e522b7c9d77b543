package broker

import (
	"bytes"
	"sync"
	"time"
)

// The pure parts of the write operations: each takes the current state (a
// clone the caller owns) and the request, and returns the next state.

// NotUpdated names an attribute an operation left alone, and why.
type NotUpdated struct {
	Attr      string // canonical name
	DatasetID string
	Reason    string
}

// stamp sets an attribute instance's system times: created when it first
// appeared (old), modified now.
func stamp(a, old *Attribute, ts time.Time) {
	if old != nil && !old.CreatedAt.IsZero() {
		a.CreatedAt = old.CreatedAt
	} else {
		a.CreatedAt = ts
	}
	a.ModifiedAt = ts
}

// newState prepares a created entity.
func newState(e *Entity, ts time.Time) *Entity {
	e.CreatedAt, e.ModifiedAt = ts, ts
	for _, is := range e.Attrs {
		for _, a := range is {
			stamp(a, nil, ts)
		}
	}
	return e
}

// replaceState replaces every attribute of cur by next's (PUT, upsert).
func replaceState(cur, next *Entity, ts time.Time) *Entity {
	out := next
	out.ID = cur.ID
	out.CreatedAt, out.ModifiedAt = cur.CreatedAt, ts
	if len(out.Types) == 0 {
		// A copy: cur may be a state shared with readers.
		out.Types = append([]string(nil), cur.Types...)
	}
	for name, is := range out.Attrs {
		old := cur.Attrs[name]
		for _, a := range is {
			stamp(a, old.Instance(a.DatasetID), ts)
		}
	}
	return out
}

// addTypes adds the fragment's types to the entity's (types are never removed
// by a partial update).
func addTypes(e *Entity, types []string) {
	for _, t := range types {
		if !e.HasType(t) {
			e.Types = append(e.Types, t)
		}
	}
}

// appendState adds or overwrites attributes (POST .../attrs, batch update,
// upsert with options=update). With noOverwrite, existing instances stay and
// are reported as not updated.
func appendState(cur, frag *Entity, noOverwrite bool, ts time.Time) (*Entity, []NotUpdated) {
	var nu []NotUpdated
	addTypes(cur, frag.Types)
	if frag.Scope != nil {
		if noOverwrite {
			cur.Scope = unionScopes(cur.Scope, frag.Scope)
		} else {
			cur.Scope = frag.Scope
		}
	}
	for _, name := range frag.AttrNames() {
		for _, a := range frag.Attrs[name] {
			old := cur.Attrs[name].Instance(a.DatasetID)
			if old != nil && noOverwrite {
				nu = append(nu, NotUpdated{Attr: name, DatasetID: a.DatasetID, Reason: "the attribute exists and noOverwrite was asked"})
				continue
			}
			stamp(a, old, ts)
			cur.Attrs[name] = cur.Attrs[name].put(a)
		}
	}
	cur.ModifiedAt = ts
	return cur, nu
}

// updateState updates attributes (PATCH .../attrs): an instance the
// entity has (same name and datasetId) is overwritten, one it does not have
// is appended, as the ETSI conformance suite expects of GS CIM 009 V1.9.1
// clause 5.6.2 (011_01_03); an NGSI-LD Null deletes the instance it names,
// and one that names nothing is reported as not updated. A scope is
// updated only if the entity has one (011_05_02).
func updateState(cur, frag *Entity, ts time.Time) (*Entity, []NotUpdated) {
	var nu []NotUpdated
	addTypes(cur, frag.Types)
	if frag.Scope != nil {
		if cur.Scope == nil {
			nu = append(nu, NotUpdated{Attr: "scope", Reason: "the entity has no scope"})
		} else {
			cur.Scope = frag.Scope
		}
	}
	for _, name := range frag.AttrNames() {
		for _, a := range frag.Attrs[name] {
			old := cur.Attrs[name].Instance(a.DatasetID)
			if old != nil && a.Delete {
				// The NGSI-LD Null deletes the instance.
				if cur.Attrs[name] = cur.Attrs[name].without(a.DatasetID); len(cur.Attrs[name]) == 0 {
					delete(cur.Attrs, name)
				}
				continue
			}
			if old == nil && a.Delete {
				reason := "the entity has no such attribute to delete"
				if a.DatasetID != "" {
					reason = "the entity has no instance of the attribute with this datasetId to delete"
				}
				nu = append(nu, NotUpdated{Attr: name, DatasetID: a.DatasetID, Reason: reason})
				continue
			}
			stamp(a, old, ts)
			cur.Attrs[name] = cur.Attrs[name].put(a)
		}
	}
	cur.ModifiedAt = ts
	return cur, nu
}

// mergeState merges a fragment (PATCH /entities/{id}, batch merge): new
// attributes are added, existing ones merged member by member, sub-attributes
// merged, and null values delete what they name.
func mergeState(cur, frag *Entity, ts time.Time) *Entity {
	addTypes(cur, frag.Types)
	if frag.Scope != nil {
		cur.Scope = frag.Scope
	}
	for _, name := range frag.AttrNames() {
		for _, a := range frag.Attrs[name] {
			old := cur.Attrs[name].Instance(a.DatasetID)
			if a.Delete {
				if old != nil {
					cur.Attrs[name] = cur.Attrs[name].without(a.DatasetID)
					if len(cur.Attrs[name]) == 0 {
						delete(cur.Attrs, name)
					}
				}
				continue
			}
			merged := mergeAttr(old, a)
			stamp(merged, old, ts)
			cur.Attrs[name] = cur.Attrs[name].put(merged)
		}
	}
	cur.ModifiedAt = ts
	return cur
}

// mergeAttr merges the members of patch into old: the value and the
// metadata given replace old's, sub-attributes are merged, null sub-attributes
// removed. A patch of another kind replaces the attribute's kind and value.
func mergeAttr(old, patch *Attribute) *Attribute {
	if old == nil {
		out := patch.clone()
		dropDeletedSubs(out)
		return out
	}
	out := old.clone()
	if patch.Type != 0 {
		out.Type, out.Value = patch.Type, patch.Value
		if patch.Type != Relationship && patch.Type != ListRelationship {
			out.ObjectType = nil
		}
	}
	if patch.ObjectType != nil {
		out.ObjectType = patch.ObjectType
	}
	if patch.ObservedAt != "" {
		out.ObservedAt = patch.ObservedAt
	}
	if patch.UnitCode != "" {
		out.UnitCode = patch.UnitCode
	}
	for k, s := range patch.Sub {
		if out.Sub == nil {
			out.Sub = make(map[string]*Attribute)
		}
		if s.Delete {
			delete(out.Sub, k)
			continue
		}
		out.Sub[k] = mergeAttr(out.Sub[k], s)
	}
	if len(out.Sub) == 0 {
		out.Sub = nil
	}
	return out
}

func dropDeletedSubs(a *Attribute) {
	for k, s := range a.Sub {
		if s.Delete {
			delete(a.Sub, k)
		}
	}
	if len(a.Sub) == 0 {
		a.Sub = nil
	}
}

// unionScopes adds the scopes of b that a lacks.
func unionScopes(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		found := false
		for _, x := range out {
			found = found || x == s
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

// sameContent reports whether two states hold the same data, system times aside.
func sameContent(a, b *Entity) bool {
	if len(a.Attrs) != len(b.Attrs) || len(a.Types) != len(b.Types) {
		return false
	}
	switch compareStates(a, b) {
	case same:
		return true
	case differ:
		return false
	}
	bufs := compareBufs.Get().(*[2][]byte)
	o := RenderOptions{Format: Normalized}
	bufs[0] = AppendEntity(bufs[0][:0], a, o)
	bufs[1] = AppendEntity(bufs[1][:0], b, o)
	same := bytes.Equal(bufs[0], bufs[1])
	compareBufs.Put(bufs)
	return same
}

// compareBufs are scratch buffers for sameContent.
var compareBufs = sync.Pool{New: func() any { return new([2][]byte) }}
