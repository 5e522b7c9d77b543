package broker

import (
	"encoding/json"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// AttrType is the NGSI-LD kind of an attribute.
type AttrType uint8

// The attribute kinds of NGSI-LD (GS CIM 009 V1.9.1, clause 4.5).
const (
	Property AttrType = iota + 1
	Relationship
	GeoProperty
	LanguageProperty
	VocabProperty
	ListProperty
	ListRelationship
	JsonProperty
)

var attrTypeNames = [...]string{
	Property:         "Property",
	Relationship:     "Relationship",
	GeoProperty:      "GeoProperty",
	LanguageProperty: "LanguageProperty",
	VocabProperty:    "VocabProperty",
	ListProperty:     "ListProperty",
	ListRelationship: "ListRelationship",
	JsonProperty:     "JsonProperty",
}

// valueKeys is the member that holds each kind's value in the normalized form.
var valueKeys = [...]string{
	Property:         "value",
	Relationship:     "object",
	GeoProperty:      "value",
	LanguageProperty: "languageMap",
	VocabProperty:    "vocab",
	ListProperty:     "valueList",
	ListRelationship: "objectList",
	JsonProperty:     "json",
}

func (t AttrType) String() string {
	if int(t) < len(attrTypeNames) && t > 0 {
		return attrTypeNames[t]
	}
	return "Unknown"
}

// ValueKey is the member name that holds the value of this kind of attribute
// in the normalized representation ("value", "object", "languageMap", ...).
func (t AttrType) ValueKey() string {
	if int(t) < len(valueKeys) && t > 0 {
		return valueKeys[t]
	}
	return "value"
}

func attrTypeByName(s string) AttrType {
	for i, n := range attrTypeNames {
		if n == s && i > 0 {
			return AttrType(i)
		}
	}
	return 0
}

// Entity is an NGSI-LD entity in Piazza's canonical form: attribute names,
// types and vocab values are canonical names (their IRI compacted with the
// core context alone, see Names). An Entity is a plain value; it is not safe
// for concurrent mutation, and the read model never hands out an Entity it
// shares with another request.
type Entity struct {
	ID    string
	Types []string
	Scope []string
	// CreatedAt and ModifiedAt are kept by the broker.
	CreatedAt  time.Time
	ModifiedAt time.Time
	Attrs      map[string]Instances
}

// Instances are the instances of one attribute, at most one per datasetId;
// the default instance has DatasetID "".
type Instances []*Attribute

// Attribute is one attribute instance (or sub-attribute) of an entity.
type Attribute struct {
	Type AttrType
	// Value holds the kind's value: the "value" of a Property or GeoProperty,
	// the "object" of a Relationship (a string or []any of strings), the
	// "languageMap", the "vocab" (canonical names), the "valueList", the
	// "objectList" (a []any of {"object": uri}), the "json" of a JsonProperty.
	// Numbers are json.Number, so values round-trip exactly.
	Value      any
	ObjectType any // of a Relationship: canonical type name or []any of them
	DatasetID  string
	ObservedAt string
	UnitCode   string
	CreatedAt  time.Time
	ModifiedAt time.Time
	Sub        map[string]*Attribute
	// Delete marks an attribute of a merge fragment whose value was null or
	// "urn:ngsi-ld:null": the merge removes it. Never stored.
	Delete bool
}

// Instance returns the instance with the given datasetId, or nil.
func (is Instances) Instance(datasetID string) *Attribute {
	for _, a := range is {
		if a.DatasetID == datasetID {
			return a
		}
	}
	return nil
}

// without returns the instances other than the one with datasetID.
func (is Instances) without(datasetID string) Instances {
	out := make(Instances, 0, len(is))
	for _, a := range is {
		if a.DatasetID != datasetID {
			out = append(out, a)
		}
	}
	return out
}

// put sets the instance a, replacing the one with the same datasetId.
func (is Instances) put(a *Attribute) Instances {
	for i, x := range is {
		if x.DatasetID == a.DatasetID {
			out := append(Instances(nil), is...)
			out[i] = a
			return out
		}
	}
	return append(append(Instances(nil), is...), a)
}

// HasType reports whether the entity has the canonical type t.
func (e *Entity) HasType(t string) bool {
	for _, x := range e.Types {
		if x == t {
			return true
		}
	}
	return false
}

// AttrNames returns the entity's attribute names, sorted.
func (e *Entity) AttrNames() []string {
	names := make([]string, 0, len(e.Attrs))
	for n := range e.Attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Clone returns a copy of e that shares no maps or slices of attributes
// with e (values themselves are treated as immutable and shared).
func (e *Entity) Clone() *Entity {
	c := *e
	c.Types = append([]string(nil), e.Types...)
	c.Scope = append([]string(nil), e.Scope...)
	c.Attrs = make(map[string]Instances, len(e.Attrs))
	for n, is := range e.Attrs {
		c.Attrs[n] = append(Instances(nil), is...)
	}
	return &c
}

// shallow returns a copy of e that shares its slices and its attribute map.
func (e *Entity) shallow() *Entity {
	c := *e
	return &c
}

// clone returns a shallow copy of the attribute with its own Sub map.
func (a *Attribute) clone() *Attribute {
	c := *a
	if a.Sub != nil {
		c.Sub = make(map[string]*Attribute, len(a.Sub))
		for k, v := range a.Sub {
			c.Sub[k] = v
		}
	}
	return &c
}

// Reserved entity members and attribute members of NGSI-LD.
var (
	entityMembers = map[string]bool{
		"id": true, "type": true, "scope": true, "@context": true,
		"createdAt": true, "modifiedAt": true, "deletedAt": true,
	}
	attrMembers = map[string]bool{
		"type": true, "value": true, "object": true, "objectType": true, "languageMap": true,
		"vocab": true, "valueList": true, "objectList": true, "json": true,
		"observedAt": true, "unitCode": true, "datasetId": true,
		"createdAt": true, "modifiedAt": true, "deletedAt": true, "instanceId": true,
		"previousValue": true, "previousObject": true, "previousLanguageMap": true,
		"previousVocab": true, "previousValueList": true, "previousObjectList": true, "previousJson": true,
		"lang": true, "@context": true,
	}
	// geoAttrs must be GeoProperties.
	geoAttrs = map[string]bool{"location": true, "observationSpace": true, "operationSpace": true}
)

// NullURI is the NGSI-LD null: in a merge it deletes the attribute it is the value of.
const NullURI = "urn:ngsi-ld:null"

// TimeFormat is how the broker writes DateTime values it keeps (createdAt, modifiedAt).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// formatTime formats a system time; the zero time formats as "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		return t.Format(TimeFormat)
	}
	// The broker's times have millisecond precision and come in runs (the
	// attributes of a write share its time): recent ones are formatted once.
	ms := t.UnixMilli()
	slot := &timeStrings[uint64(ms)%uint64(len(timeStrings))]
	if ts := slot.Load(); ts != nil && ts.ms == ms {
		return ts.s
	}
	s := t.Format(TimeFormat)
	slot.Store(&timeString{ms: ms, s: s})
	return s
}

// timeStrings remember recently formatted system times, by millisecond: a
// cache of a pure function, shared by every broker of the process and safe
// for concurrent use.
var timeStrings [128]atomic.Pointer[timeString]

type timeString struct {
	ms int64
	s  string
}

// now is the broker's clock: UTC with millisecond precision, like the times it writes.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// validName reports whether s can be an attribute name or an entity type:
// non-empty, no whitespace or control characters, none of the characters
// NGSI-LD forbids in names.
func validName(s string) bool {
	if s == "" || len(s) > 1024 || s[0] == '@' {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`<>"'=;()\`, r) {
			return false
		}
	}
	return true
}

// ValidURI reports whether s is an absolute URI in the sense NGSI-LD needs
// for entity ids, datasetIds and relationship objects: a scheme, ':', and a
// non-empty rest without whitespace or control characters.
func ValidURI(s string) bool {
	if len(s) < 3 || len(s) > 2048 {
		return false
	}
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon == len(s)-1 {
		return false
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	for _, r := range s[colon+1:] {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == '{' || r == '}' || r == '|' || r == '\\' || r == '^' || r == '`' {
			return false
		}
	}
	return true
}

// numberValue returns v as a float64 if it is a JSON number.
func numberValue(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}
