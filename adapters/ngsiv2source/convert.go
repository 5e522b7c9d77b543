package ngsiv2source

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Convert turns one NGSI-v2 entity in normalized representation
// ({"id", "type", "attr": {"type", "value", "metadata"}}) into the fields of
// an NGSI-LD entity in normalized form, sorted by name after "id" and
// "type". The rules:
//
//   - id: kept when it is already a URI (has a scheme such as urn: or
//     https:), else urn:ngsi-ld:<type>:<id> with characters outside
//     letters, digits and -._~:@!$&'*+,;= percent-encoded. A missing type is
//     NGSI-v2's default, Thing.
//   - Relationship attributes, and attributes named refXxx whose value is
//     an id (or a list of ids), become Relationships; a target that is not
//     a URI becomes urn:ngsi-ld:<Xxx>:<id> (the type taken from the name).
//   - geo:json becomes a GeoProperty; geo:point ("lat, lon"), geo:line,
//     geo:polygon and geo:box become GeoJSON geometries (lon, lat order).
//   - Number, Integer, Float: numbers (numeric strings are read); Boolean;
//     DateTime and ISO8601: RFC 3339 text; Text, StructuredValue and other
//     types: the value as it is.
//   - A null value (type None, or value null) leaves the attribute out:
//     NGSI-LD has no null attribute.
//   - Metadata: TimeInstant becomes observedAt, unitCode the attribute's
//     unitCode, dateCreated and dateModified (the broker's own) are left
//     out, and any other becomes a sub-attribute (Property, or Relationship
//     for a Relationship metadata). Metadata named like an NGSI-LD keyword
//     (value, object, type...) are left out.
//   - The entity's TimeInstant attribute becomes the observedAt of each
//     Property and GeoProperty that has none of its own, and is not kept.
//
// A "location" attribute must be geographic. Errors wrap ErrConvert and name
// the attribute.
func Convert(v2 map[string]any) (names []string, values []any, err error) {
	rawID, ok := v2["id"].(string)
	if !ok || strings.TrimSpace(rawID) == "" {
		return nil, nil, fmt.Errorf("%w: no id", ErrConvert)
	}
	typ := "Thing"
	if t, ok := v2["type"]; ok {
		s, isStr := t.(string)
		if !isStr || strings.TrimSpace(s) == "" || strings.ContainsAny(s, " {}") {
			return nil, nil, fmt.Errorf("%w: entity %s: type %v is not a name", ErrConvert, rawID, t)
		}
		typ = s
	}
	fields := map[string]map[string]any{}
	var timeInstant string
	for name, raw := range v2 {
		if name == "id" || name == "type" {
			continue
		}
		attr, ok := raw.(map[string]any)
		if !ok {
			// keyValues input: a bare value.
			attr = map[string]any{"value": raw}
		}
		if name == "TimeInstant" {
			if s, ok := attr["value"].(string); ok {
				if t, err := normTime(s); err == nil {
					timeInstant = t
				}
			}
			continue
		}
		a, err := convertAttr(name, attr)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: entity %s: attribute %s: %v", ErrConvert, rawID, name, err)
		}
		if a != nil {
			fields[name] = a
		}
	}
	if timeInstant != "" {
		for _, a := range fields {
			if a["type"] != "Relationship" && a["observedAt"] == nil {
				a["observedAt"] = timeInstant
			}
		}
	}
	names = make([]string, 0, len(fields)+2)
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	values = make([]any, 0, len(names)+2)
	for _, n := range names {
		values = append(values, fields[n])
	}
	names = append([]string{"id", "type"}, names...)
	values = append([]any{toURN(rawID, typ), typ}, values...)
	return names, values, nil
}

// reservedSub are NGSI-LD keywords a metadata name cannot take.
var reservedSub = []string{"type", "value", "object", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt",
	"deletedAt", "instanceId", "languageMap", "vocab", "json", "id", "@context", "scope", "location"}

func convertAttr(name string, attr map[string]any) (map[string]any, error) {
	t, _ := attr["type"].(string)
	v := attr["value"]
	if v == nil || t == "None" {
		return nil, nil
	}
	out := map[string]any{}
	switch {
	case t == "Relationship" || (isRefName(name) && isIDs(v) && (t == "" || t == "Text" || t == "Reference" || t == "Relationship" || t == "URI")):
		obj, err := relObject(name, v)
		if err != nil {
			return nil, err
		}
		out["type"], out["object"] = "Relationship", obj
	case strings.HasPrefix(t, "geo:"):
		g, err := geometry(t, v)
		if err != nil {
			return nil, err
		}
		out["type"], out["value"] = "GeoProperty", g
	default:
		val, err := convertValue(t, v)
		if err != nil {
			return nil, err
		}
		out["type"], out["value"] = "Property", val
	}
	if name == "location" && out["type"] != "GeoProperty" {
		return nil, fmt.Errorf("location must be geographic (geo:json, geo:point...), got type %q", t)
	}
	md, _ := attr["metadata"].(map[string]any)
	for mname, mraw := range md {
		m, ok := mraw.(map[string]any)
		if !ok {
			continue
		}
		mt, _ := m["type"].(string)
		mv := m["value"]
		switch {
		case mname == "TimeInstant":
			if s, ok := mv.(string); ok && out["type"] != "Relationship" {
				if ts, err := normTime(s); err == nil {
					out["observedAt"] = ts
				}
			}
		case mname == "unitCode":
			if s, ok := mv.(string); ok && s != "" && out["type"] == "Property" {
				out["unitCode"] = s
			}
		case mname == "dateCreated" || mname == "dateModified" || mv == nil || slices.Contains(reservedSub, mname):
		case mt == "Relationship":
			obj, err := relObject(mname, mv)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %v", mname, err)
			}
			out[mname] = map[string]any{"type": "Relationship", "object": obj}
		default:
			val, err := convertValue(mt, mv)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %v", mname, err)
			}
			out[mname] = map[string]any{"type": "Property", "value": val}
		}
	}
	return out, nil
}

func convertValue(t string, v any) (any, error) {
	switch t {
	case "Number", "Integer", "Float", "Numeric", "Double":
		switch x := v.(type) {
		case json.Number:
			return x, nil
		case float64:
			return x, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("type %s: %q is not a number", t, x)
			}
			return f, nil
		}
		return nil, fmt.Errorf("type %s: %T is not a number", t, v)
	case "Boolean":
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("type Boolean: %v is not a boolean", v)
	case "DateTime", "ISO8601", "Date":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("type %s: %T is not a date", t, v)
		}
		if ts, err := normTime(s); err == nil {
			return ts, nil
		}
		return s, nil // a date without time, or a range: kept as text
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return v, nil
}

// normTime reads an RFC 3339 time (Orion writes 2024-01-10T10:00:00.000Z)
// and writes it back in RFC 3339 with its offset.
func normTime(s string) (string, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return t.Format(time.RFC3339Nano), nil
}

func isRefName(name string) bool {
	return len(name) > 3 && strings.HasPrefix(name, "ref") && unicode.IsUpper(rune(name[3]))
}

func isIDs(v any) bool {
	switch x := v.(type) {
	case string:
		return x != ""
	case []any:
		if len(x) == 0 {
			return false
		}
		for _, e := range x {
			if s, ok := e.(string); !ok || s == "" {
				return false
			}
		}
		return true
	}
	return false
}

// relObject turns a relationship value into a URI (or a list of them).
func relObject(name string, v any) (any, error) {
	target := ""
	if isRefName(name) {
		target = name[3:]
	}
	switch x := v.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, fmt.Errorf("empty relationship target")
		}
		return toURN(x, target), nil
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return nil, fmt.Errorf("relationship targets must be ids, got %v", e)
			}
			out = append(out, toURN(s, target))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("empty relationship target list")
		}
		return out, nil
	}
	return nil, fmt.Errorf("relationship target must be an id, got %T", v)
}

// toURN keeps URIs and makes urn:ngsi-ld:<typ>:<id> of other ids.
func toURN(id, typ string) string {
	if hasScheme(id) {
		return id
	}
	var b strings.Builder
	b.WriteString("urn:ngsi-ld:")
	if typ != "" {
		b.WriteString(escape(typ))
		b.WriteByte(':')
	}
	b.WriteString(escape(id))
	return b.String()
}

// hasScheme reports whether s starts with a URI scheme and has no spaces.
func hasScheme(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon == len(s)-1 || strings.ContainsAny(s, " \t\n<>\"{}|\\^`") {
		return false
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	// "MN:12" would read as a scheme; only accept schemes used for ids.
	switch strings.ToLower(s[:colon]) {
	case "urn", "http", "https", "did", "tag", "uuid":
		return true
	}
	return false
}

func escape(s string) string {
	const ok = "-._~:@!$&'*+,;="
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(ok, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// geometry converts the NGSI-v2 geo types to GeoJSON.
func geometry(t string, v any) (map[string]any, error) {
	switch t {
	case "geo:json":
		g, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("geo:json value must be a GeoJSON geometry object, got %T", v)
		}
		gt, _ := g["type"].(string)
		switch gt {
		case "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon":
			if _, ok := g["coordinates"].([]any); !ok {
				return nil, fmt.Errorf("geo:json %s has no coordinates", gt)
			}
		case "GeometryCollection":
			if _, ok := g["geometries"].([]any); !ok {
				return nil, fmt.Errorf("geo:json GeometryCollection has no geometries")
			}
		default:
			return nil, fmt.Errorf("geo:json type %q is not a GeoJSON geometry", gt)
		}
		return g, nil
	case "geo:point":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("geo:point value must be \"lat, lon\", got %T", v)
		}
		p, err := latLon(s)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "Point", "coordinates": p}, nil
	case "geo:line", "geo:polygon", "geo:box":
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s value must be a list of \"lat, lon\", got %T", t, v)
		}
		pts := make([]any, 0, len(list)+1)
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not \"lat, lon\"", t, e)
			}
			p, err := latLon(s)
			if err != nil {
				return nil, err
			}
			pts = append(pts, p)
		}
		switch t {
		case "geo:line":
			if len(pts) < 2 {
				return nil, fmt.Errorf("geo:line needs two points or more")
			}
			return map[string]any{"type": "LineString", "coordinates": pts}, nil
		case "geo:box":
			if len(pts) != 2 {
				return nil, fmt.Errorf("geo:box needs two corners")
			}
			a, c := pts[0].([]any), pts[1].([]any)
			ring := []any{a, []any{c[0], a[1]}, c, []any{a[0], c[1]}, a}
			return map[string]any{"type": "Polygon", "coordinates": []any{ring}}, nil
		}
		if len(pts) < 4 {
			return nil, fmt.Errorf("geo:polygon needs four points or more (closed ring)")
		}
		return map[string]any{"type": "Polygon", "coordinates": []any{pts}}, nil
	}
	return nil, fmt.Errorf("unknown geographic type %q", t)
}

// latLon reads "lat, lon" and returns [lon, lat].
func latLon(s string) ([]any, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return nil, fmt.Errorf("%q is not \"lat, lon\"", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return nil, fmt.Errorf("%q is not \"lat, lon\" within -90..90, -180..180", s)
	}
	return []any{lon, lat}, nil
}
