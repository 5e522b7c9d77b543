package broker

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// The unchanged check of the write path compares two states as the
// normalized rendering without system times would (sameContent). Rendering
// both costs two encodings per write, so the states are first compared as
// values: most writes are decided there, and only the cases the value
// comparison cannot settle are rendered.

// likeness is what comparing two states (or parts of them) as values proves.
type likeness int8

const (
	// unsure: the value comparison cannot tell; render and compare bytes.
	unsure likeness = iota
	// same: the renderings are certainly equal.
	same
	// differ: the renderings certainly differ.
	differ
)

// compareStates compares two states as their normalized renderings without
// system times would compare. same holds only when every member that the
// rendering writes is equal; differ only when one attribute that both
// render at the same place (a single instance under the same name) has a
// member whose rendering differs.
func compareStates(a, b *Entity) likeness {
	v := same
	if a.ID != b.ID || !slices.Equal(a.Types, b.Types) || !slices.Equal(a.Scope, b.Scope) || len(a.Attrs) != len(b.Attrs) {
		v = unsure
	}
	for name, ia := range a.Attrs {
		ib, ok := b.Attrs[name]
		if !ok || len(ia) != len(ib) {
			v = unsure
			continue
		}
		single := len(ia) == 1
		for i := range ia {
			switch attrVerdict(ia[i], ib[i]) {
			case differ:
				if single {
					return differ
				}
				// Instances render sorted by datasetId: the i-th of
				// each need not land in the same place.
				v = unsure
			case unsure:
				v = unsure
			}
		}
	}
	return v
}

// attrVerdict compares two attribute instances rendered at the same place.
func attrVerdict(x, y *Attribute) likeness {
	if x.Type == 0 || y.Type == 0 {
		return unsure
	}
	if x.Type != y.Type {
		return differ // "type" is written in the normalized form
	}
	v := same
	join := func(w likeness) bool {
		switch w {
		case differ:
			v = differ
			return true
		case unsure:
			v = unsure
		}
		return false
	}
	val := valueVerdict(x.Value, y.Value)
	if x.Type == VocabProperty && val != same {
		// Vocab values are written as terms: equal values are written
		// alike, different ones may not be.
		val = unsure
	}
	if join(val) ||
		join(stringMember(x.DatasetID, y.DatasetID)) ||
		join(stringMember(x.ObservedAt, y.ObservedAt)) ||
		join(stringMember(x.UnitCode, y.UnitCode)) {
		return differ
	}
	if ot := valueVerdict(x.ObjectType, y.ObjectType); ot != same {
		// Object types are written as terms too.
		v = unsure
	}
	if len(x.Sub) != len(y.Sub) {
		v = unsure
	}
	for k, sx := range x.Sub {
		sy, ok := y.Sub[k]
		if !ok {
			v = unsure
			continue
		}
		if join(attrVerdict(sx, sy)) {
			return differ
		}
	}
	return v
}

// stringMember compares an optional string member (written only when not
// empty): strings of valid UTF-8 are written differently when they differ.
func stringMember(a, b string) likeness {
	switch {
	case a == b:
		return same
	case utf8.ValidString(a) && utf8.ValidString(b):
		return differ
	}
	return unsure
}

// valueVerdict compares two decoded JSON values as appendValue writes them.
func valueVerdict(a, b any) likeness {
	switch x := a.(type) {
	case nil:
		if b == nil {
			return same
		}
	case bool:
		if y, ok := b.(bool); ok {
			if x == y {
				return same
			}
			return differ
		}
	case string:
		if y, ok := b.(string); ok {
			if x == y {
				return same
			}
			if utf8.ValidString(x) && utf8.ValidString(y) {
				return differ
			}
		}
	case json.Number:
		if y, ok := b.(json.Number); ok {
			if x == y {
				return same
			}
			if x != "" && y != "" { // an empty Number is written as 0
				return differ
			}
		}
	case []any:
		if y, ok := b.([]any); ok && len(x) == len(y) {
			v := same
			for i := range x {
				switch valueVerdict(x[i], y[i]) {
				case differ:
					return differ
				case unsure:
					v = unsure
				}
			}
			return v
		}
	case map[string]any:
		if y, ok := b.(map[string]any); ok && len(x) == len(y) {
			v := same
			for k, xv := range x {
				yv, ok := y[k]
				if !ok {
					v = unsure
					continue
				}
				switch valueVerdict(xv, yv) {
				case differ:
					return differ
				case unsure:
					v = unsure
				}
			}
			return v
		}
	}
	return unsure
}
