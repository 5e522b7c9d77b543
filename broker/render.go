package broker

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Format is an NGSI-LD representation of entities.
type Format uint8

// The representations of GS CIM 009 clause 4.5: normalized (every member),
// concise (no redundant type members) and simplified (keyValues: values only).
const (
	Normalized Format = iota
	Concise
	Simplified
)

// RenderOptions say how to write an entity.
type RenderOptions struct {
	// Names compacts canonical names into the request's terms. Nil means CanonicalNames.
	Names Names
	// Format is the representation.
	Format Format
	// SysAttrs adds createdAt and modifiedAt.
	SysAttrs bool
	// Attrs, if not nil, keeps only these canonical attribute names.
	Attrs map[string]bool
	// Context, if not nil, is written as the "@context" member.
	Context any
}

// storedOptions write the broker's stored form: normalized, canonical names,
// with system times.
var storedOptions = RenderOptions{Format: Normalized, SysAttrs: true}

// AppendEntity appends the JSON of e to dst. Output is deterministic:
// members in a fixed order, attributes and object keys sorted.
func AppendEntity(dst []byte, e *Entity, o RenderOptions) []byte {
	if o.Names == nil {
		o.Names = CanonicalNames
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	if len(e.Types) == 1 {
		dst = appendString(dst, o.Names.Term(e.Types[0]))
	} else {
		dst = append(dst, '[')
		for i, t := range e.Types {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, o.Names.Term(t))
		}
		dst = append(dst, ']')
	}
	if len(e.Scope) > 0 {
		dst = append(dst, `,"scope":`...)
		if len(e.Scope) == 1 {
			dst = appendString(dst, e.Scope[0])
		} else {
			dst = appendValue(dst, stringsToAny(e.Scope))
		}
	}
	for _, name := range e.AttrNames() {
		if o.Attrs != nil && !o.Attrs[name] {
			continue
		}
		is := e.Attrs[name]
		if len(is) == 0 {
			continue
		}
		dst = append(dst, ',')
		dst = appendString(dst, o.Names.Term(name))
		dst = append(dst, ':')
		if len(is) == 1 {
			dst = appendAttr(dst, is[0], o, false)
			continue
		}
		if o.Format == Simplified {
			// Several instances in keyValues: {"dataset": {datasetId or
			// "@none": value}} (GS CIM 009 V1.9.1, the simplified form of a
			// multi-attribute).
			dst = append(dst, `{"dataset":{`...)
			for i, a := range sortedInstances(is) {
				if i > 0 {
					dst = append(dst, ',')
				}
				key := a.DatasetID
				if key == "" {
					key = "@none"
				}
				dst = appendString(dst, key)
				dst = append(dst, ':')
				dst = appendValue(dst, simpleValue(a, o.Names))
			}
			dst = append(dst, "}}"...)
			continue
		}
		dst = append(dst, '[')
		for i, a := range sortedInstances(is) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAttr(dst, a, o, true)
		}
		dst = append(dst, ']')
	}
	if o.SysAttrs {
		if s := formatTime(e.CreatedAt); s != "" {
			dst = append(dst, `,"createdAt":`...)
			dst = appendString(dst, s)
		}
		if s := formatTime(e.ModifiedAt); s != "" {
			dst = append(dst, `,"modifiedAt":`...)
			dst = appendString(dst, s)
		}
	}
	if o.Context != nil {
		dst = append(dst, `,"@context":`...)
		dst = appendValue(dst, o.Context)
	}
	return append(dst, '}')
}

// sortedInstances puts the default instance first, then by datasetId.
func sortedInstances(is Instances) Instances {
	out := append(Instances(nil), is...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].DatasetID < out[j-1].DatasetID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// simpleValue is the attribute's value in the simplified representation.
func simpleValue(a *Attribute, names Names) any {
	switch a.Type {
	case VocabProperty:
		return termsOf(a.Value, names)
	case ListRelationship:
		arr, _ := a.Value.([]any)
		out := make([]any, len(arr))
		for i, x := range arr {
			if m, ok := x.(map[string]any); ok {
				out[i] = m["object"]
			}
		}
		return out
	}
	return a.Value
}

func termsOf(v any, names Names) any {
	switch x := v.(type) {
	case string:
		return names.Term(x)
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			s, _ := y.(string)
			out[i] = names.Term(s)
		}
		return out
	}
	return v
}

// appendAttr appends one attribute instance; inArray says it is one of the
// instances of a multi-attribute.
func appendAttr(dst []byte, a *Attribute, o RenderOptions, inArray bool) []byte {
	if o.Format == Simplified {
		return appendValue(dst, simpleValue(a, o.Names))
	}
	// An instance of a multi-attribute is never bare: a bare value in the
	// array would turn the array into one Property's value on reading.
	bare := o.Format == Concise && !inArray && a.Sub == nil && a.DatasetID == "" && a.ObservedAt == "" && a.UnitCode == "" && !o.SysAttrs
	if bare && a.Type == Property && !ambiguousBare(a.Value) {
		return appendValue(dst, a.Value)
	}
	if bare && a.Type == GeoProperty {
		return appendValue(dst, a.Value)
	}
	dst = append(dst, '{')
	first := true
	member := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, k)
		dst = append(dst, ':')
	}
	if o.Format == Normalized || a.Type == Property && isGeometryValue(a.Value) {
		// Concise drops "type" where the value member tells the kind; a
		// Property whose value looks like a geometry must keep it.
		member("type")
		dst = appendString(dst, a.Type.String())
	}
	member(a.Type.ValueKey())
	switch a.Type {
	case VocabProperty:
		dst = appendValue(dst, termsOf(a.Value, o.Names))
	default:
		dst = appendValue(dst, a.Value)
	}
	if a.ObjectType != nil {
		member("objectType")
		dst = appendValue(dst, termsOf(a.ObjectType, o.Names))
	}
	if a.DatasetID != "" {
		member("datasetId")
		dst = appendString(dst, a.DatasetID)
	}
	if a.ObservedAt != "" {
		member("observedAt")
		dst = appendString(dst, a.ObservedAt)
	}
	if a.UnitCode != "" {
		member("unitCode")
		dst = appendString(dst, a.UnitCode)
	}
	if o.SysAttrs {
		if s := formatTime(a.CreatedAt); s != "" {
			member("createdAt")
			dst = appendString(dst, s)
		}
		if s := formatTime(a.ModifiedAt); s != "" {
			member("modifiedAt")
			dst = appendString(dst, s)
		}
	}
	for _, k := range sortedKeys(a.Sub) {
		member(o.Names.Term(k))
		dst = appendAttr(dst, a.Sub[k], o, false)
	}
	return append(dst, '}')
}

// ambiguousBare reports whether a bare concise value would read back as
// something other than a Property with that value.
func ambiguousBare(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		// Concise input reads any object with a "type" member as a typed
		// attribute (or a geometry), whatever that member holds.
		_, typed := x["type"]
		return typed || looksLikeAttr(x)
	case []any:
		return isInstanceArray(x)
	case string:
		return x == NullURI
	}
	return false
}

func isGeometryValue(v any) bool {
	m, ok := v.(map[string]any)
	return ok && isGeometry(m)
}

// appendValue appends any decoded JSON value, with object keys sorted.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if x {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case string:
		return appendString(dst, x)
	case json.Number:
		if x == "" {
			return append(dst, '0')
		}
		return append(dst, x...)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case []any:
		dst = append(dst, '[')
		for i, y := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, y)
		}
		return append(dst, ']')
	case []string:
		return appendValue(dst, stringsToAny(x))
	case map[string]any:
		dst = append(dst, '{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, x[k])
		}
		return append(dst, '}')
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return append(dst, "null"...)
		}
		return append(dst, b...)
	}
}

// appendString appends s as a JSON string: control characters, quotes and
// backslashes escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped (as encoding/json does), HTML characters left alone.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', upperHex[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
