package broker

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/piazza-city/piazza/broker/internal/fastjson"
)

// Names converts between the terms of a request's @context and the broker's
// canonical names (an IRI compacted with the core context alone). It is
// implemented over a JSON-LD context; see NewNames.
type Names interface {
	// Canon turns a term of the request's context into a canonical name.
	Canon(term string) string
	// Term turns a canonical name into the request's term for it.
	Term(name string) string
}

// canonicalNames is the identity: the stored form is already canonical.
type canonicalNames struct{}

func (canonicalNames) Canon(t string) string { return t }
func (canonicalNames) Term(n string) string  { return n }

// CanonicalNames are the Names of the stored form (and of a request that
// sends only the core context).
var CanonicalNames Names = canonicalNames{}

// ParseOptions say how to read an entity or a fragment.
type ParseOptions struct {
	// Names resolves the request's terms. Nil means CanonicalNames.
	Names Names
	// KeyValues reads every attribute as the simplified form: its value alone.
	KeyValues bool
	// Fragment allows a body without id and type (an attribute patch).
	Fragment bool
	// AllowNull reads null and "urn:ngsi-ld:null" as deletions (merge).
	AllowNull bool
	// SkipContext lets ParseEntityBytes read an entity with an @context
	// member (ParseEntity always passes over it), for callers that have
	// resolved it (EntityHead); otherwise ParseEntityBytes leaves such an
	// entity to ParseEntity, so that a caller can refuse an @context it did
	// not expect.
	SkipContext bool
	// stored reads the broker's own stored form: system times are kept.
	stored bool
	// attrPatch reads a partial attribute update, which may leave out the
	// value (then the attribute's Type is 0).
	attrPatch bool
}

// DecodeJSON decodes one JSON document with numbers kept exactly. Trailing
// data after the document is an error.
func DecodeJSON(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("empty body: a JSON document is required")
	}
	v, err := fastjson.Decode(data)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ParseEntity reads an entity (or, with o.Fragment, a fragment of one) from
// its decoded JSON form in any of the normalized, concise or simplified
// representations. The error is an *Error of kind ErrBadRequestData that
// names the member at fault.
func ParseEntity(v any, o ParseOptions) (*Entity, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badData("an entity must be a JSON object, got %s", jsonKind(v))
	}
	if o.Names == nil {
		o.Names = CanonicalNames
	}
	e := &Entity{Attrs: make(map[string]Instances, len(m))}
	if idv, has := m["id"]; has {
		id, ok := idv.(string)
		if !ok {
			return nil, badData("id must be a string (a URI), got %s", jsonKind(idv))
		}
		if !ValidURI(id) {
			return nil, &Error{Kind: ErrBadRequestData, Detail: fmt.Sprintf("id %q is not a valid URI", id), Entity: id}
		}
		e.ID = id
	} else if !o.Fragment {
		return nil, badData("the entity has no id")
	}
	fail := func(format string, args ...any) error {
		return &Error{Kind: ErrBadRequestData, Detail: fmt.Sprintf(format, args...), Entity: e.ID}
	}
	if tv, has := m["type"]; has {
		types, err := parseTypes(tv, o.Names)
		if err != nil {
			return nil, fail("type: %v", err)
		}
		e.Types = types
	} else if !o.Fragment {
		return nil, fail("the entity %s has no type", e.ID)
	}
	if sv, has := m["scope"]; has {
		scope, err := parseScope(sv)
		if err != nil {
			return nil, fail("scope: %v", err)
		}
		e.Scope = scope
	}
	if o.stored {
		e.CreatedAt = parseSysTime(m["createdAt"])
		e.ModifiedAt = parseSysTime(m["modifiedAt"])
	}
	for k, av := range m {
		if entityMembers[k] {
			continue
		}
		if !validName(k) {
			return nil, fail("attribute name %q is not valid (empty, starting with @, or containing whitespace or one of <>\"'=;()\\)", k)
		}
		name, err := canonName(o.Names, k, entityMembers)
		if err != nil {
			return nil, fail("attribute %v", err)
		}
		is, err := parseInstances(av, name, o)
		if err != nil {
			return nil, fail("attribute %s: %v", k, err)
		}
		if prev, dup := e.Attrs[name]; dup {
			// Two terms of the request expand to the same attribute.
			for _, a := range is {
				if prev.Instance(a.DatasetID) != nil {
					return nil, fail("attribute %s appears twice (under two names that expand to the same IRI)", k)
				}
			}
			is = append(prev, is...)
		}
		e.Attrs[name] = is
	}
	return e, nil
}

func parseTypes(v any, names Names) ([]string, error) {
	var raw []any
	switch t := v.(type) {
	case string:
		raw = []any{t}
	case []any:
		if len(t) == 0 {
			return nil, fmt.Errorf("an empty list of types")
		}
		raw = t
	default:
		return nil, fmt.Errorf("must be a string or an array of strings, got %s", jsonKind(v))
	}
	out := make([]string, 0, len(raw))
	for _, x := range raw {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string or an array of strings, found %s", jsonKind(x))
		}
		if !validName(s) {
			return nil, fmt.Errorf("%q is not a valid type name", s)
		}
		c := names.Canon(s)
		if strings.HasPrefix(c, "@") || c == "type" || c == "id" {
			// The core context aliases type and id to @type and @id.
			return nil, fmt.Errorf("%q expands to a JSON-LD keyword, not a type", s)
		}
		if !validName(c) {
			return nil, fmt.Errorf("%q expands to %q, which is not a valid type name", s, c)
		}
		dup := false
		for _, y := range out {
			dup = dup || y == c
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out, nil
}

func parseScope(v any) ([]string, error) {
	var raw []any
	switch t := v.(type) {
	case string:
		raw = []any{t}
	case []any:
		raw = t
	default:
		return nil, fmt.Errorf("must be a string or an array of strings, got %s", jsonKind(v))
	}
	out := make([]string, 0, len(raw))
	for _, x := range raw {
		s, ok := x.(string)
		if !ok || !validScope(s) {
			return nil, fmt.Errorf("%v is not a scope: a scope is a path such as /Mantova/Centro", x)
		}
		out = append(out, s)
	}
	return out, nil
}

func validScope(s string) bool {
	if len(s) < 2 || s[0] != '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '#' || r == '+' || r == 0x7f {
			return false
		}
	}
	return true
}

func parseSysTime(v any) time.Time {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// parseInstances reads an attribute's value: one instance, or an array of
// instances with distinct datasetIds.
func parseInstances(v any, name string, o ParseOptions) (Instances, error) {
	if arr, ok := v.([]any); ok && !o.KeyValues && isInstanceArray(arr) {
		out := make(Instances, 0, len(arr))
		for i, x := range arr {
			a, err := parseAttr(x, name, o, 0)
			if err != nil {
				return nil, fmt.Errorf("instance %d: %w", i, err)
			}
			if out.Instance(a.DatasetID) != nil {
				if a.DatasetID == "" {
					return nil, fmt.Errorf("two instances without datasetId")
				}
				return nil, fmt.Errorf("two instances with datasetId %s", a.DatasetID)
			}
			out = append(out, a)
		}
		return out, nil
	}
	a, err := parseAttr(v, name, o, 0)
	if err != nil {
		return nil, err
	}
	return Instances{a}, nil
}

// isInstanceArray tells a normalized multi-instance attribute (an array of
// attribute objects) from a concise Property whose value is an array.
func isInstanceArray(arr []any) bool {
	if len(arr) == 0 {
		return false
	}
	for _, x := range arr {
		m, ok := x.(map[string]any)
		if !ok || !looksLikeAttr(m) {
			return false
		}
	}
	return true
}

// looksLikeAttr reports whether an object is an attribute in normalized or
// concise form rather than a plain JSON value.
func looksLikeAttr(m map[string]any) bool {
	if t, ok := m["type"].(string); ok && attrTypeByName(t) != 0 {
		return true
	}
	for _, k := range [...]string{"value", "object", "languageMap", "vocab", "valueList", "objectList", "json"} {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// isNullValue reports whether the value member of a kind is the NGSI-LD
// Null: null or "urn:ngsi-ld:null", {"@none": "urn:ngsi-ld:null"} for a
// languageMap, ["urn:ngsi-ld:null"] for a list.
func isNullValue(t AttrType, v any) bool {
	if isNull(v) {
		return true
	}
	switch x := v.(type) {
	case map[string]any:
		none, ok := x["@none"]
		return t == LanguageProperty && len(x) == 1 && ok && isNull(none)
	case []any:
		return (t == ListProperty || t == ListRelationship || t == VocabProperty) && len(x) == 1 && isNull(x[0])
	}
	return false
}

func isNull(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == NullURI
}

// parseAttr reads one attribute instance (or a sub-attribute when sub).
func parseAttr(v any, name string, o ParseOptions, depth int) (*Attribute, error) {
	sub := depth > 0
	if depth > maxSubDepth {
		return nil, fmt.Errorf("sub-attributes nest deeper than %d levels", maxSubDepth)
	}
	if isNull(v) {
		if o.AllowNull {
			return &Attribute{Delete: true}, nil
		}
		return nil, fmt.Errorf("null is not a value (a value is required)")
	}
	m, isObj := v.(map[string]any)
	if !isObj || o.KeyValues {
		// Concise or simplified: a bare value.
		if isObj && isGeometry(m) {
			if err := ValidateGeometry(m); err != nil {
				return nil, fmt.Errorf("invalid GeoJSON: %v", err)
			}
			return &Attribute{Type: GeoProperty, Value: m}, nil
		}
		if !sub && geoAttrs[name] {
			return nil, fmt.Errorf("must be a GeoProperty (a GeoJSON geometry)")
		}
		if arr, ok := v.([]any); ok {
			for _, x := range arr {
				if x == nil {
					return nil, fmt.Errorf("null is not allowed inside a value")
				}
			}
		}
		return &Attribute{Type: Property, Value: v}, nil
	}
	a := &Attribute{}
	if tv, has := m["type"]; has {
		ts, ok := tv.(string)
		if !ok {
			return nil, fmt.Errorf("type must be a string, got %s", jsonKind(tv))
		}
		a.Type = attrTypeByName(ts)
		if a.Type == 0 {
			if isGeometry(m) {
				if err := ValidateGeometry(m); err != nil {
					return nil, fmt.Errorf("invalid GeoJSON: %v", err)
				}
				return &Attribute{Type: GeoProperty, Value: m}, nil
			}
			return nil, fmt.Errorf("type %q is not an NGSI-LD attribute type (Property, Relationship, GeoProperty, LanguageProperty, VocabProperty, ListProperty, ListRelationship, JsonProperty)", ts)
		}
	} else {
		a.Type = inferType(m)
		if a.Type == 0 && o.attrPatch && !sub {
			// A partial attribute update that changes only metadata or
			// sub-attributes: the kind and value stay as they are.
			return parseAttrTail(a, m, o, depth)
		}
		if a.Type == 0 {
			// A concise Property whose value is a JSON object.
			if !sub && geoAttrs[name] {
				return nil, fmt.Errorf("must be a GeoProperty (a GeoJSON geometry)")
			}
			return &Attribute{Type: Property, Value: m}, nil
		}
	}
	if !sub && geoAttrs[name] && a.Type != GeoProperty {
		return nil, fmt.Errorf("must be a GeoProperty, not a %s", a.Type)
	}
	key := a.Type.ValueKey()
	val, has := m[key]
	if !has {
		return nil, fmt.Errorf("a %s needs the member %q", a.Type, key)
	}
	if isNullValue(a.Type, val) {
		if o.AllowNull {
			ds, _ := m["datasetId"].(string)
			return &Attribute{Delete: true, DatasetID: ds}, nil
		}
		return nil, fmt.Errorf("%s must not be null", key)
	}
	// Members that belong to another kind are an error, not silently dropped.
	for _, k := range [...]string{"value", "object", "languageMap", "vocab", "valueList", "objectList", "json"} {
		if k != key {
			if _, bad := m[k]; bad {
				return nil, fmt.Errorf("a %s has %q, not %q", a.Type, key, k)
			}
		}
	}
	var err error
	if a.Value, err = parseValue(a.Type, val, o); err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	if ot, has := m["objectType"]; has {
		if a.Type != Relationship && a.Type != ListRelationship {
			return nil, fmt.Errorf("objectType belongs to relationships only")
		}
		ts, err := parseTypes(ot, o.Names)
		if err != nil {
			return nil, fmt.Errorf("objectType: %v", err)
		}
		if len(ts) == 1 {
			a.ObjectType = ts[0]
		} else {
			l := make([]any, len(ts))
			for i, t := range ts {
				l[i] = t
			}
			a.ObjectType = l
		}
	}
	return parseAttrTail(a, m, o, depth)
}

// parseAttrTail reads the members every kind shares: datasetId,
// observedAt, unitCode, system times, and the sub-attributes.
func parseAttrTail(a *Attribute, m map[string]any, o ParseOptions, depth int) (*Attribute, error) {
	sub := depth > 0
	if d, has := m["datasetId"]; has {
		s, ok := d.(string)
		if !ok || !ValidURI(s) {
			return nil, fmt.Errorf("datasetId must be a URI, got %v", d)
		}
		if sub {
			return nil, fmt.Errorf("a sub-attribute cannot have a datasetId")
		}
		a.DatasetID = s
	}
	if d, has := m["observedAt"]; has {
		s, ok := d.(string)
		if !ok {
			return nil, fmt.Errorf("observedAt must be a DateTime string, got %s", jsonKind(d))
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, fmt.Errorf("observedAt %q is not a DateTime (RFC 3339 with a time zone, e.g. 2024-01-10T12:00:00Z)", s)
		}
		a.ObservedAt = s
	}
	if d, has := m["unitCode"]; has {
		s, ok := d.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("unitCode must be a non-empty string (a UN/CEFACT code), got %v", d)
		}
		a.UnitCode = s
	}
	if o.stored {
		a.CreatedAt = parseSysTime(m["createdAt"])
		a.ModifiedAt = parseSysTime(m["modifiedAt"])
	}
	for k, sv := range m {
		if attrMembers[k] {
			continue
		}
		if !validName(k) {
			return nil, fmt.Errorf("sub-attribute name %q is not valid", k)
		}
		sname, err := canonName(o.Names, k, attrMembers)
		if err != nil {
			return nil, fmt.Errorf("sub-attribute %v", err)
		}
		sa, err := parseAttr(sv, sname, o, depth+1)
		if err != nil {
			return nil, fmt.Errorf("sub-attribute %s: %v", k, err)
		}
		if a.Sub == nil {
			a.Sub = make(map[string]*Attribute)
		}
		a.Sub[sname] = sa
	}
	return a, nil
}

// canonName returns the canonical name of an attribute term. A request's
// @context may map a term to anything: the name must still be one the
// broker can store and read back, and not one of the reserved members of
// the object it appears in.
func canonName(names Names, term string, reserved map[string]bool) (string, error) {
	c := names.Canon(term)
	if !validName(c) {
		return "", fmt.Errorf("%s expands to %q, which is not a valid attribute name", term, c)
	}
	if reserved[c] {
		return "", fmt.Errorf("%s expands to %q, a reserved member name", term, c)
	}
	return c, nil
}

// maxSubDepth bounds the nesting of sub-attributes of sub-attributes.
const maxSubDepth = 16

func inferType(m map[string]any) AttrType {
	switch {
	case has(m, "value"):
		if g, ok := m["value"].(map[string]any); ok && isGeometry(g) {
			return GeoProperty
		}
		return Property
	case has(m, "object"):
		return Relationship
	case has(m, "languageMap"):
		return LanguageProperty
	case has(m, "vocab"):
		return VocabProperty
	case has(m, "valueList"):
		return ListProperty
	case has(m, "objectList"):
		return ListRelationship
	case has(m, "json"):
		return JsonProperty
	}
	return 0
}

func has(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func parseValue(t AttrType, v any, o ParseOptions) (any, error) {
	if o.stored {
		// The broker's own stored form was checked when it was written.
		return v, nil
	}
	switch t {
	case Property:
		if arr, ok := v.([]any); ok {
			for _, x := range arr {
				if x == nil {
					return nil, fmt.Errorf("null is not allowed inside a value")
				}
			}
		}
		return v, nil
	case GeoProperty:
		if err := ValidateGeometry(v); err != nil {
			return nil, fmt.Errorf("invalid GeoJSON: %v", err)
		}
		return v, nil
	case Relationship:
		switch x := v.(type) {
		case string:
			if !ValidURI(x) {
				return nil, fmt.Errorf("%q is not a URI", x)
			}
			return x, nil
		case []any:
			if len(x) == 0 {
				return nil, fmt.Errorf("an empty list of objects")
			}
			for _, y := range x {
				s, ok := y.(string)
				if !ok || !ValidURI(s) {
					return nil, fmt.Errorf("%v is not a URI", y)
				}
			}
			return x, nil
		}
		return nil, fmt.Errorf("must be a URI or an array of URIs, got %s", jsonKind(v))
	case LanguageProperty:
		lm, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("must be an object of language tag to string, got %s", jsonKind(v))
		}
		for tag, s := range lm {
			if !validLangTag(tag) {
				return nil, fmt.Errorf("%q is not a language tag", tag)
			}
			switch x := s.(type) {
			case string:
			case []any:
				for _, y := range x {
					if _, ok := y.(string); !ok {
						return nil, fmt.Errorf("%s: must be a string or an array of strings", tag)
					}
				}
			default:
				return nil, fmt.Errorf("%s: must be a string or an array of strings, got %s", tag, jsonKind(s))
			}
		}
		return lm, nil
	case VocabProperty:
		switch x := v.(type) {
		case string:
			if !validName(x) {
				return nil, fmt.Errorf("%q is not a term or IRI", x)
			}
			c := o.Names.Canon(x)
			if !validName(c) {
				return nil, fmt.Errorf("%q expands to %q, which is not a valid IRI", x, c)
			}
			return c, nil
		case []any:
			out := make([]any, len(x))
			for i, y := range x {
				s, ok := y.(string)
				if !ok || !validName(s) {
					return nil, fmt.Errorf("%v is not a term or IRI", y)
				}
				c := o.Names.Canon(s)
				if !validName(c) {
					return nil, fmt.Errorf("%q expands to %q, which is not a valid IRI", s, c)
				}
				out[i] = c
			}
			return out, nil
		}
		return nil, fmt.Errorf("must be a term or an array of terms, got %s", jsonKind(v))
	case ListProperty:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("must be an array, got %s", jsonKind(v))
		}
		return arr, nil
	case ListRelationship:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("must be an array of objects, got %s", jsonKind(v))
		}
		out := make([]any, len(arr))
		for i, y := range arr {
			var s string
			switch z := y.(type) {
			case string:
				s = z
			case map[string]any:
				s, _ = z["object"].(string)
			}
			if !ValidURI(s) {
				return nil, fmt.Errorf("[%d] must be {\"object\": URI}", i)
			}
			out[i] = map[string]any{"object": s}
		}
		return out, nil
	case JsonProperty:
		return v, nil
	}
	return nil, fmt.Errorf("unknown attribute type")
}

func validLangTag(s string) bool {
	if s == "@none" {
		return true
	}
	if s == "" || len(s) > 35 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseAttrPatch reads the body of a partial attribute update (PATCH
// /entities/{id}/attrs/{attr}): one attribute whose kind and value may be
// left out (Type 0) when only metadata or sub-attributes change, and whose
// NGSI-LD Null deletes it.
func ParseAttrPatch(m map[string]any, name string, o ParseOptions) (*Attribute, error) {
	if o.Names == nil {
		o.Names = CanonicalNames
	}
	o.attrPatch, o.AllowNull = true, true
	a, err := parseAttr(m, name, o, 0)
	if err != nil {
		return nil, &Error{Kind: ErrBadRequestData, Detail: fmt.Sprintf("attribute %s: %v", o.Names.Term(name), err)}
	}
	return a, nil
}
