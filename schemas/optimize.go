package schemas

import (
	"encoding/json"
)

// Compile-time rewrites of the trees handed to gojsonschema. They never
// change what a schema accepts; Model.Schema still returns the document as
// loaded.

// rewriteExclusiveOneOf replaces, in a schema tree, every "oneOf" whose
// alternatives exclude each other by construction with the equivalent
// "anyOf", and returns how many it replaced.
//
// gojsonschema validates a value against every alternative of a oneOf (to
// check that exactly one matches) and formats an error message for each
// alternative that fails; it stops an anyOf at the first match. The Smart
// Data Models' location (GeoJSON Point, LineString, Polygon, MultiPoint,
// MultiLineString, MultiPolygon, told apart by their "type") is such a oneOf,
// and it costs about two thirds of the validation of an AirQualityObserved.
// When the alternatives cannot both match, "exactly one" and "at least one"
// are the same test. A failure is then reported with the keyword anyOf.
func rewriteExclusiveOneOf(node any) int {
	m, ok := node.(map[string]any)
	if !ok {
		return 0
	}
	n := 0
	for _, k := range schemaMapKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			for _, v := range sub {
				n += rewriteExclusiveOneOf(v)
			}
		}
	}
	for _, k := range schemaKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			n += rewriteExclusiveOneOf(sub)
		}
	}
	for _, k := range schemaListKeywords {
		if list, ok := m[k].([]any); ok {
			for _, v := range list {
				n += rewriteExclusiveOneOf(v)
			}
		}
	}
	if list, ok := m["oneOf"].([]any); ok && len(list) > 1 {
		if _, taken := m["anyOf"]; !taken && mutuallyExclusive(list) {
			m["anyOf"] = list
			delete(m, "oneOf")
			n++
		}
	}
	return n
}

// mutuallyExclusive reports whether no value can match two of the
// alternatives: each is an object schema (without $ref, whose siblings
// gojsonschema may ignore) that requires the same property and restricts it,
// with enum or const, to values that no other alternative allows.
func mutuallyExclusive(alternatives []any) bool {
	first, ok := alternatives[0].(map[string]any)
	if !ok {
		return false
	}
	required, _ := first["required"].([]any)
	for _, r := range required {
		p, ok := r.(string)
		if !ok {
			continue
		}
		if discriminates(alternatives, p) {
			return true
		}
	}
	return false
}

// discriminates reports whether property p tells the alternatives apart.
func discriminates(alternatives []any, p string) bool {
	seen := make(map[string]int)
	for i, a := range alternatives {
		m, ok := a.(map[string]any)
		if !ok || m["type"] != "object" {
			return false
		}
		if _, ok := m["$ref"]; ok {
			return false
		}
		if !containsString(m["required"], p) {
			return false
		}
		props, _ := m["properties"].(map[string]any)
		ps, ok := props[p].(map[string]any)
		if !ok {
			return false
		}
		if _, ok := ps["$ref"]; ok {
			return false
		}
		var values []any
		if enum, ok := ps["enum"].([]any); ok && len(enum) > 0 {
			values = enum
		} else if c, ok := ps["const"]; ok {
			values = []any{c}
		} else {
			return false
		}
		for _, v := range values {
			b, err := json.Marshal(v)
			if err != nil {
				return false
			}
			key := string(b)
			if j, dup := seen[key]; dup && j != i {
				return false
			}
			seen[key] = i
		}
	}
	return true
}

func containsString(list any, s string) bool {
	l, _ := list.([]any)
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
