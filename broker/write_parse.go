package broker

import (
	"time"

	"github.com/piazza-city/piazza/broker/internal/fastjson"
)

// The write path reads every entity twice: the request's, and the stored
// state it replaces (unless the read model's cache holds it). Both are
// nearly always normalized entities whose attributes are single objects
// with a type, a value and a few plain members. ParseEntityBytes reads that
// shape straight from the JSON text, without a map per object and the
// lookups into it; anything else it leaves to DecodeJSON and ParseEntity,
// which also explain what is wrong with an input.

// ParseEntityBytes reads a whole entity in the normalized representation
// from its JSON text, giving exactly what ParseEntity gives for the decoded
// text, when the entity has the common shape: an id, one type, and
// attributes that are each one object with a "type" member and no
// sub-attributes, objectType or scope. It returns ok false for any other
// input (valid or not) and for options other than Names: the caller then
// decodes the text with DecodeJSON and calls ParseEntity. The entity keeps
// no part of data. It is safe for concurrent use.
func ParseEntityBytes(data []byte, o ParseOptions) (e *Entity, ok bool) {
	if o.KeyValues || o.Fragment || o.AllowNull || o.attrPatch {
		return nil, false
	}
	if o.Names == nil {
		o.Names = CanonicalNames
	}
	var it fastjson.Iter
	it.Reset(data)
	defer it.Release()
	e, ok = parseEntityIter(&it, o, attrsHint(len(data)))
	if !ok || !it.Done() {
		return nil, false
	}
	return e, true
}

// EntityHead reads the "id" and "@context" members of an entity's JSON
// text, as DecodeJSON would give them (the last of duplicate members), so
// that a caller can resolve the entity's context before ParseEntityBytes. id
// is "" when the member is missing or not a string. ok is false when data is
// not one well-formed JSON object.
func EntityHead(data []byte) (id string, context any, hasContext, ok bool) {
	var it fastjson.Iter
	it.Reset(data)
	defer it.Release()
	if !it.Object() {
		return "", nil, false, false
	}
	for {
		k, more, ok := it.Member()
		if !ok {
			return "", nil, false, false
		}
		if !more {
			break
		}
		switch k {
		case "id":
			v, ok := it.Value()
			if !ok {
				return "", nil, false, false
			}
			id, _ = v.(string)
		case "@context":
			if context, ok = it.Value(); !ok {
				return "", nil, false, false
			}
			hasContext = true
		default:
			if !it.Skip() {
				return "", nil, false, false
			}
		}
	}
	if !it.Done() {
		return "", nil, false, false
	}
	return id, context, hasContext, true
}

// Members seen, to refuse duplicates (Decode keeps the last of duplicate
// members; the general path handles them).
const (
	seenID = 1 << iota
	seenType
	seenCreated
	seenModified
)

// attrsHint is the size to make an entity's attribute map with, from the
// length of its JSON text: Go's map keeps 8 attributes in its smallest form
// and 14 in a table of 16 slots, where the hint of 16 it had made a table of
// 32 (about 700 bytes more for a 10-attribute AirQualityObserved, on every
// entity read, written and matched). An attribute takes at least about 35
// bytes of JSON, and a text under 512 bytes rarely holds more than 8.
func attrsHint(n int) int {
	if n < 512 {
		return 8
	}
	return 14
}

func parseEntityIter(it *fastjson.Iter, o ParseOptions, hint int) (*Entity, bool) {
	if !it.Object() {
		return nil, false
	}
	e := &Entity{Attrs: make(map[string]Instances, hint)}
	// The attributes and their one-instance lists are cut from shared
	// blocks: a few allocations for an entity instead of two per
	// attribute. Each list has its own capacity, so appending to one
	// copies it.
	var al attrAlloc
	seen := 0
	once := func(bit int) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	for {
		k, more, ok := it.Member()
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
		switch k {
		case "id":
			s, ok := it.String()
			if !ok || !once(seenID) || !ValidURI(s) {
				return nil, false
			}
			e.ID = s
		case "type":
			s, ok := it.String()
			if !ok || !once(seenType) {
				return nil, false
			}
			types, err := parseTypes(s, o.Names)
			if err != nil {
				return nil, false
			}
			e.Types = types
		case "createdAt", "modifiedAt":
			// Read in the stored form, ignored in a request's.
			bit := seenCreated
			if k == "modifiedAt" {
				bit = seenModified
			}
			v, ok := it.Value()
			if !ok || !o.stored || !once(bit) {
				return nil, false
			}
			if bit == seenCreated {
				e.CreatedAt = parseSysTime(v)
			} else {
				e.ModifiedAt = parseSysTime(v)
			}
		case "@context":
			if !o.SkipContext || !it.Skip() {
				return nil, false
			}
		default:
			if entityMembers[k] || !validName(k) {
				return nil, false
			}
			name, err := canonName(o.Names, k, entityMembers)
			if err != nil {
				return nil, false
			}
			if _, dup := e.Attrs[name]; dup {
				return nil, false
			}
			a, ok := parseAttrIter(it, name, o, &al)
			if !ok {
				return nil, false
			}
			e.Attrs[name] = al.instances(a)
		}
	}
	if seen&(seenID|seenType) != seenID|seenType {
		return nil, false
	}
	return e, true
}

// valueMembers are the members that hold a value, by their index in
// attrIter.vals.
var valueMembers = [...]string{"value", "object", "languageMap", "vocab", "valueList", "objectList", "json"}

func valueMemberIndex(k string) int {
	for i, m := range valueMembers {
		if m == k {
			return i
		}
	}
	return -1
}

// parseAttrIter reads an attribute that is one object with a "type", as
// parseAttr would (without sub-attributes or objectType).
func parseAttrIter(it *fastjson.Iter, name string, o ParseOptions, al *attrAlloc) (*Attribute, bool) {
	if !it.Object() {
		return nil, false
	}
	var (
		vals                               [len(valueMembers)]any
		typ, observedAt, unitCode, dataset string
		created, modified                  any
		seen                               uint32
	)
	const (
		bitType = 1 << (len(valueMembers) + iota)
		bitObserved
		bitUnit
		bitDataset
		bitCreated
		bitModified
	)
	for {
		k, more, ok := it.Member()
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
		var bit uint32
		switch k {
		case "type":
			bit = bitType
			typ, ok = it.String()
		case "observedAt":
			bit = bitObserved
			observedAt, ok = it.String()
		case "unitCode":
			bit = bitUnit
			unitCode, ok = it.String()
		case "datasetId":
			bit = bitDataset
			dataset, ok = it.String()
		case "createdAt", "modifiedAt":
			if !o.stored {
				return nil, false
			}
			if k == "createdAt" {
				bit = bitCreated
				created, ok = it.Value()
			} else {
				bit = bitModified
				modified, ok = it.Value()
			}
		default:
			i := valueMemberIndex(k)
			if i < 0 {
				// Sub-attributes, objectType and the rarer members.
				return nil, false
			}
			bit = 1 << i
			vals[i], ok = it.Value()
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if seen&bitType == 0 {
		return nil, false
	}
	a := al.attr()
	a.Type = attrTypeByName(typ)
	if a.Type == 0 || geoAttrs[name] && a.Type != GeoProperty {
		return nil, false
	}
	i := valueMemberIndex(a.Type.ValueKey())
	if seen&(1<<len(valueMembers)-1) != 1<<i {
		// No value, or members of another kind.
		return nil, false
	}
	if isNullValue(a.Type, vals[i]) {
		return nil, false
	}
	var err error
	if a.Value, err = parseValue(a.Type, vals[i], o); err != nil {
		return nil, false
	}
	if seen&bitDataset != 0 {
		if !ValidURI(dataset) {
			return nil, false
		}
		a.DatasetID = dataset
	}
	if seen&bitObserved != 0 {
		if _, err := time.Parse(time.RFC3339Nano, observedAt); err != nil {
			return nil, false
		}
		a.ObservedAt = observedAt
	}
	if seen&bitUnit != 0 {
		if unitCode == "" {
			return nil, false
		}
		a.UnitCode = unitCode
	}
	if o.stored {
		a.CreatedAt = parseSysTime(created)
		a.ModifiedAt = parseSysTime(modified)
	}
	return a, true
}

// attrAlloc hands out attributes and one-instance lists from blocks that
// double in size (4, 8, 16...), so that little is left unused.
type attrAlloc struct {
	attrs []Attribute
	lists []*Attribute
	n     int // attributes handed out
}

// blockSize is the size of the next block after n attributes.
func blockSize(n int) int { return min(max(4, 2*n), 64) }

func (al *attrAlloc) attr() *Attribute {
	if len(al.attrs) == 0 {
		al.attrs = make([]Attribute, blockSize(al.n))
	}
	a := &al.attrs[0]
	al.attrs = al.attrs[1:]
	al.n++
	return a
}

func (al *attrAlloc) instances(a *Attribute) Instances {
	if len(al.lists) == 0 {
		al.lists = make([]*Attribute, blockSize(al.n))
	}
	is := Instances(al.lists[0:1:1])
	is[0] = a
	al.lists = al.lists[1:]
	return is
}
