package broker

import (
	"context"
	"slices"
)

// TypeInfo describes an entity type of a tenant, for discovery (GS CIM 009
// clause 5.7.5 to 5.7.8). It is a snapshot the caller owns.
type TypeInfo struct {
	// Type is the canonical type name.
	Type string
	// Count is the number of live entities of the type.
	Count int
	// Attrs are the attributes entities of the type have, sorted by name;
	// their Count is the number of entities of this type that have it.
	Attrs []AttrInfo
}

// AttrInfo describes an attribute name of a tenant.
type AttrInfo struct {
	// Name is the canonical attribute name.
	Name string
	// Count is the number of live entities that have it.
	Count int
	// Kinds are the kinds its instances have (Property, Relationship...),
	// across all the entities that have it.
	Kinds []AttrType
	// Types are the canonical types of the entities that have it, sorted.
	Types []string
}

// Types lists the entity types of a tenant with their attributes, from the
// read model's indexes (no entity is decoded), sorted by type.
func (b *Broker) Types(ctx context.Context, tenantName string) ([]TypeInfo, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return nil, err
	}
	rm := t.rm
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	out := make([]TypeInfo, 0, len(rm.byType))
	for typ, m := range rm.byType {
		ti := TypeInfo{Type: typ, Count: len(m)}
		for name, n := range rm.ix.typeAttrs[typ] {
			ti.Attrs = append(ti.Attrs, AttrInfo{Name: name, Count: n, Kinds: rm.ix.kindsOf(name), Types: []string{typ}})
		}
		slices.SortFunc(ti.Attrs, func(a, b AttrInfo) int { return cmpString(a.Name, b.Name) })
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b TypeInfo) int { return cmpString(a.Type, b.Type) })
	return out, nil
}

// Attributes lists the attribute names of a tenant, sorted by name.
func (b *Broker) Attributes(ctx context.Context, tenantName string) ([]AttrInfo, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return nil, err
	}
	rm := t.rm
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	types := map[string][]string{}
	for typ, attrs := range rm.ix.typeAttrs {
		for a := range attrs {
			types[a] = append(types[a], typ)
		}
	}
	out := make([]AttrInfo, 0, len(rm.ix.attrs))
	for name, ai := range rm.ix.attrs {
		ts := types[name]
		slices.Sort(ts)
		out = append(out, AttrInfo{Name: name, Count: ai.present.len(), Kinds: rm.ix.kindsOf(name), Types: ts})
	}
	slices.SortFunc(out, func(a, b AttrInfo) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

// kindsOf returns the kinds the attribute's instances have.
func (ix *index) kindsOf(name string) []AttrType {
	ai := ix.attrs[name]
	if ai == nil {
		return nil
	}
	var out []AttrType
	for k, n := range ai.kinds {
		if n > 0 && k > 0 {
			out = append(out, AttrType(k))
		}
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
