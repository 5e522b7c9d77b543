package broker

import (
	"context"
	"reflect"
)

// ViewKey names one representation of an entity: everything that shapes
// its bytes besides the entity's state.
type ViewKey struct {
	// Names is the compaction the representation is written with. Keys are
	// compared with ==, so Names must be a comparable value whose methods
	// always give the same answers (a pointer to an immutable @context, or
	// a struct holding one); a Names of a type that is not comparable is
	// never cached.
	Names Names
	// Spec encodes every other choice (format, system attributes, the
	// attributes kept, the media type...), in an encoding of the caller's.
	Spec string
}

// EntityView is one revision of an entity as a tenant's read model holds
// it: the state, and the representations already rendered from that state.
// A later write makes a new revision, so the representations of a view are
// never stale. An EntityView is a value that any number of goroutines may
// use at once.
type EntityView struct {
	// Entity is the state. It is shared with other readers: callers must
	// not modify it.
	Entity *Entity
	entry  *cacheEntry // nil: no entity cache, nothing kept
}

// GetView returns the current revision of an entity, like Get, with its
// cache of rendered representations (see Render).
func (b *Broker) GetView(ctx context.Context, tenantName, id string) (EntityView, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return EntityView{}, err
	}
	r := t.rm.get(id)
	if r == nil {
		return EntityView{}, notFound(id)
	}
	if ce := t.rm.cache.entry(r); ce != nil {
		return EntityView{Entity: ce.e, entry: ce}, nil
	}
	e, err := r.entity()
	if err != nil {
		return EntityView{}, err
	}
	if ce := t.rm.cache.add(r, e); ce != nil {
		return EntityView{Entity: ce.e, entry: ce}, nil
	}
	return EntityView{Entity: e}, nil
}

// Render returns the representation key of the view's revision: the bytes
// rendered for an equal key before, or render's result, which is kept for
// the next reader (a few representations per revision, each up to 16 KiB,
// for as long as the entity cache holds the revision; an empty result is
// not kept). render may return a buffer of its own, which Render then owns. render must depend
// on nothing but the entity and what key names. The bytes are shared:
// callers must not modify them.
func (v EntityView) Render(key ViewKey, render func(*Entity) []byte) []byte {
	if v.entry == nil || (key.Names != nil && !reflect.TypeOf(key.Names).Comparable()) {
		return render(v.Entity)
	}
	if b := v.entry.view(key); b != nil {
		return b
	}
	b := render(v.Entity)
	if len(b) > 0 && len(b) <= maxViewBytes {
		if cap(b)-len(b) > len(b)/8 {
			// Kept for as long as the revision is cached: no spare room.
			b = append([]byte(nil), b...)
		}
		v.entry.addView(key, b)
	}
	return b
}
