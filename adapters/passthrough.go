package adapters

import (
	"fmt"
	"strings"
)

// A passthrough mapping (`passthrough: true`) takes each record as an
// NGSI-LD entity in normalized form: fields "id" and "type", optionally
// "@context", and one attribute object per other field. Sources that
// convert entities themselves (ngsiv2) and JSON Lines dumps of NGSI-LD
// entities use it. The entity is checked (an id that is a URI, a type, an
// attribute object with a known "type" for every other field) but not
// changed; skip rules apply as usual.

var attrTypes = []string{"Property", "Relationship", "GeoProperty", "LanguageProperty", "VocabProperty", "JsonProperty", "ListProperty", "ListRelationship"}

func (m *Mapping) mapPassthrough(rec *Record) ([]Entity, error) {
	if rec.Header == nil {
		return nil, recordError(rec, -1, fmt.Errorf("%w: empty record", ErrInvalidEntity))
	}
	e := make(Entity, rec.Header.Len()+1)
	for i := 0; i < rec.Header.Len() && i < len(rec.Values); i++ {
		name, v := rec.Header.Name(i), rec.Values[i]
		switch name {
		case "id":
			id, ok := v.(string)
			if !ok {
				return nil, recordError(rec, i, fmt.Errorf("%w: id must be a string, got %T", ErrInvalidEntity, v))
			}
			if err := checkURI(id); err != nil {
				return nil, recordError(rec, i, fmt.Errorf("%w: id %q: %v", ErrInvalidEntity, id, err))
			}
			e["id"] = id
		case "type":
			t, ok := v.(string)
			if !ok || strings.TrimSpace(t) == "" || strings.ContainsAny(t, " {}") {
				return nil, recordError(rec, i, fmt.Errorf("%w: type must be a name or a URI, got %v", ErrInvalidEntity, v))
			}
			e["type"] = t
		case "@context":
			e["@context"] = v
		default:
			a, ok := v.(map[string]any)
			if !ok {
				return nil, recordError(rec, i, fmt.Errorf("%w: attribute %s must be an object with a type (Property, Relationship...), got %T", ErrInvalidEntity, name, v))
			}
			t, _ := a["type"].(string)
			known := false
			for _, k := range attrTypes {
				known = known || t == k
			}
			if !known {
				return nil, recordError(rec, i, fmt.Errorf("%w: attribute %s: type %q is not an NGSI-LD attribute type", ErrInvalidEntity, name, t))
			}
			e[name] = a
		}
	}
	if e["id"] == nil || e["type"] == nil {
		return nil, recordError(rec, -1, fmt.Errorf("%w: a passthrough record needs id and type", ErrInvalidEntity))
	}
	if e["@context"] == nil {
		e["@context"] = m.context
	}
	return []Entity{e}, nil
}
