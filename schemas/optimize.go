package schemas

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Compile-time rewrites of the trees handed to gojsonschema. They never
// change what a schema accepts under its own draft; Model.Schema still
// returns the document as loaded.

// olderDrafts are the $schema URLs (without "#") of the drafts gojsonschema
// implements natively; documents declaring them are compiled as they are.
var olderDrafts = map[string]bool{
	"http://json-schema.org/draft-04/schema":  true,
	"http://json-schema.org/draft-06/schema":  true,
	"http://json-schema.org/draft-07/schema":  true,
	"https://json-schema.org/draft-04/schema": true,
	"https://json-schema.org/draft-06/schema": true,
	"https://json-schema.org/draft-07/schema": true,
}

// modernDraft reports whether a schema document is to be read with draft
// 2019-09/2020-12 rules: it declares one of them, or no draft at all.
func modernDraft(tree any) bool {
	m, _ := tree.(map[string]any)
	s, _ := m["$schema"].(string)
	return !olderDrafts[strings.TrimSuffix(s, "#")]
}

// rewriteModern translates the draft 2019-09/2020-12 keywords that have an
// exact draft-07 equivalent, in every schema of the tree:
//   - a $ref with sibling keywords: 2020-12 applies both, draft-07 (and
//     gojsonschema) ignores the siblings; the $ref moves into allOf, so that
//     both apply and JSON pointers to the siblings stay valid;
//   - dependentRequired and dependentSchemas become dependencies;
//   - prefixItems (with items for the rest) becomes items (array form) and
//     additionalItems.
//
// It returns an error for a translation that would clash with a keyword
// already present.
func rewriteModern(node any, where *schemaPath) error {
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	if err := forEachSubschema(m, where, rewriteModern); err != nil {
		return err
	}
	if ref, ok := m["$ref"]; ok && hasAssertionSiblings(m) {
		all, _ := m["allOf"].([]any)
		if _, exists := m["allOf"]; exists && all == nil {
			return fmt.Errorf("%w: at #%.200s: allOf must be an array", ErrInvalidSchema, where)
		}
		m["allOf"] = append(all, map[string]any{"$ref": ref})
		delete(m, "$ref")
	}
	for _, k := range []string{"dependentRequired", "dependentSchemas"} {
		dm, ok := m[k].(map[string]any)
		if !ok {
			continue
		}
		deps, _ := m["dependencies"].(map[string]any)
		if _, exists := m["dependencies"]; exists && deps == nil {
			return fmt.Errorf("%w: at #%.200s: dependencies must be an object", ErrInvalidSchema, where)
		}
		if deps == nil {
			deps = make(map[string]any, len(dm))
		}
		for name, v := range dm {
			if _, clash := deps[name]; clash {
				return fmt.Errorf("%w: at #%.200s: property %q is in both dependentRequired and dependentSchemas (or dependencies)", ErrUnsupportedKeyword, where, name)
			}
			deps[name] = v
		}
		m["dependencies"] = deps
		delete(m, k)
	}
	if prefix, ok := m["prefixItems"].([]any); ok {
		if _, clash := m["additionalItems"]; clash {
			return fmt.Errorf("%w: at #%.200s: prefixItems beside additionalItems", ErrUnsupportedKeyword, where)
		}
		if rest, ok := m["items"]; ok {
			m["additionalItems"] = rest
		}
		m["items"] = prefix
		delete(m, "prefixItems")
	}
	return nil
}

// annotationKeywords do not assert anything; a $ref beside only these needs
// no rewrite.
var annotationKeywords = map[string]bool{
	"$ref": true, "$id": true, "$schema": true, "$comment": true, "$anchor": true,
	"title": true, "description": true, "default": true, "examples": true,
	"deprecated": true, "readOnly": true, "writeOnly": true,
	"definitions": true, "$defs": true,
}

func hasAssertionSiblings(m map[string]any) bool {
	for k := range m {
		if !annotationKeywords[k] {
			return true
		}
	}
	return false
}

// schemaPath is a JSON pointer built only when an error message needs it.
type schemaPath struct {
	parent *schemaPath
	tokens []string // unescaped
}

func (p *schemaPath) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(p.parent.String())
	for _, t := range p.tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

// forEachSubschema calls fn on every direct subschema of m.
func forEachSubschema(m map[string]any, where *schemaPath, fn func(any, *schemaPath) error) error {
	for _, k := range schemaMapKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			for name, v := range sub {
				if err := fn(v, &schemaPath{parent: where, tokens: []string{k, name}}); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range schemaKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			if err := fn(sub, &schemaPath{parent: where, tokens: []string{k}}); err != nil {
				return err
			}
		}
	}
	for _, k := range schemaListKeywords {
		if list, ok := m[k].([]any); ok {
			for i, v := range list {
				if err := fn(v, &schemaPath{parent: where, tokens: []string{k, strconv.Itoa(i)}}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

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
