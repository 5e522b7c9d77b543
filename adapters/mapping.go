package adapters

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// CoreContext is the NGSI-LD core @context entities carry when the mapping
// names no other.
const CoreContext = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"

// Entity is one NGSI-LD entity in normalized form, ready for encoding/json:
// "id", "type", "@context" and one map per attribute
// ({"type":"Property","value":...,"observedAt":...,"unitCode":...}).
// An Entity is owned by whoever holds it and may be given its own top-level
// keys (a sink adds "@context"), but attribute objects are read-only: the
// objects of constant attributes are shared by every entity of a mapping.
type Entity map[string]any

// ID returns the entity id.
func (e Entity) ID() string { s, _ := e["id"].(string); return s }

// Type returns the entity type.
func (e Entity) Type() string { s, _ := e["type"].(string); return s }

// KeyValues returns the keyValues (simplified) form of e: each attribute
// replaced by its value (or object), without "@context". Smart Data Models
// schemas validate this form.
func (e Entity) KeyValues() map[string]any {
	out := make(map[string]any, len(e))
	for k, v := range e {
		switch k {
		case "@context":
			continue
		case "id", "type":
			out[k] = v
			continue
		}
		a, ok := v.(map[string]any)
		if !ok {
			out[k] = v
			continue
		}
		if o, ok := a["object"]; ok {
			out[k] = o
		} else {
			out[k] = a["value"]
		}
	}
	return out
}

// Mapping is a compiled mapping from records to NGSI-LD entities. It is
// immutable after ParseMapping and safe for concurrent use.
type Mapping struct {
	context  any
	loc      *time.Location
	decimal  byte
	lookups  map[string]*lookupTable
	skip     []skipRule
	entities []*entityTmpl
	refs     []*fieldRef // every field the mapping reads, for CheckHeader
	// passthrough: records already are NGSI-LD entities (see passthrough.go)
	passthrough bool
	// redact holds the normalized names of the fields removed from every
	// record before anything else (see redact.go)
	redact map[string]bool
	// tableSpecs are the data tables the mapping looks values up in;
	// tables holds them once loaded (see tables.go)
	tableSpecs map[string]*tableSpec
	tables     map[string]*dataTable
}

type lookupTable struct {
	name   string
	values map[string]any
	// for a data table: the table's name and the normalized field
	table, field string
}

type skipRule struct {
	lookup *lookupTable // compare the looked-up value, not the column's
	ref    *fieldRef
	empty  bool
	equals []string
	re     *regexp.Regexp
}

type entityTmpl struct {
	when       []skipRule // make the entity only for records matching them all
	typ        string
	id         *template
	observedAt *expr
	attrs      []*attribute
	unpivot    []*fieldRef
	skipEmpty  bool
}

const (
	kindProperty = iota
	kindRelationship
	kindGeoProperty
)

type attribute struct {
	name       string
	kind       int
	e          *expr
	lon, lat   *expr
	unitCode   string
	observedAt *expr
	// shared is the attribute object of a constant attribute, built once at
	// compile time and shared by every entity (see Entity).
	shared map[string]any
}

const (
	exprField = iota + 1
	exprTemplate
	exprConst
	exprObject
	exprItems
)

const (
	convNone = iota
	convString
	convInteger
	convNumber
	convBoolean
	convDateTime
	convDate
	convEndDate
	convMonth
	convGeoJSON
)

var convNames = map[string]int{"": convNone, "string": convString, "integer": convInteger, "number": convNumber,
	"boolean": convBoolean, "datetime": convDateTime, "date": convDate, "endDate": convEndDate, "month": convMonth,
	"geojson": convGeoJSON}

const convList = "string, integer, number, boolean, datetime, date, endDate, month, geojson"

type objField struct {
	name string
	e    *expr
}

// expr is a compiled value expression.
type expr struct {
	kind     int
	ref      *fieldRef
	tmpl     *template
	constVal any
	object   []objField
	items    []*expr
	conv     int
	lookup   *lookupTable
	def      any
	hasDef   bool
	required bool
	dynamic  bool
	scale    *expr // multiplies a number (unit conversions)
	scaleInt bool  // as: integer with a scale: whole after scaling
}

// ParseMapping compiles a mapping document (YAML). Unknown keys, unknown
// conversions and filters, bad templates and missing required keys are
// errors wrapping ErrInvalidMapping that name the key.
func ParseMapping(data []byte) (*Mapping, error) {
	var spec mappingSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the document is empty", ErrInvalidMapping)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
	}
	return compileMapping(&spec)
}

// CheckHeader reports every field the mapping reads that h lacks, naming
// the columns h has. Run calls it once per tabular input.
func (m *Mapping) CheckHeader(h *Header) error {
	var missing []string
	for _, r := range m.refs {
		if !r.inHeader(h) && !slices.Contains(missing, r.name) {
			missing = append(missing, r.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	q := make([]string, len(missing))
	for i, n := range missing {
		q[i] = fmt.Sprintf("%q", n)
	}
	return fmt.Errorf("%w: %s (columns in the input: %s)", ErrMissingColumn, strings.Join(q, ", "), strings.Join(h.names, ", "))
}

// Types returns the entity types the mapping produces.
func (m *Mapping) Types() []string {
	var ts []string
	for _, e := range m.entities {
		if !slices.Contains(ts, e.typ) {
			ts = append(ts, e.typ)
		}
	}
	return ts
}

// Skip reports whether a skip rule of the mapping matches rec.
func (m *Mapping) Skip(rec *Record) (bool, error) {
	for i := range m.skip {
		if ok, err := m.skip[i].match(m, rec, "skip rule"); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// match reports whether the rule matches rec.
func (r *skipRule) match(m *Mapping, rec *Record, what string) (bool, error) {
	v, _, found := r.ref.lookupIn(rec)
	if !found && rec.Header != nil && rec.Header.tabular {
		return false, recordError(rec, -1, fmt.Errorf("%s: %w: %q", what, ErrMissingColumn, r.ref.name))
	}
	s := strings.TrimSpace(valueString(v))
	if r.lookup != nil && s != "" {
		lv, _ := r.lookup.get(m, s) // a miss compares as empty
		s = strings.TrimSpace(valueString(lv))
	}
	switch {
	case r.empty && s == "":
		return true, nil
	case r.equals != nil && slices.Contains(r.equals, s):
		return true, nil
	case r.re != nil && r.re.MatchString(s):
		return true, nil
	}
	return false, nil
}

// evalCtx holds the state of mapping one record.
type evalCtx struct {
	m      *Mapping
	rec    *Record
	column string
	value  any
	valCol int
	col    int
	buf    []byte
	// the last date parsed: a record's date is often read three times
	// (id, observedAt, a date attribute)
	lastDate string
	lastTime time.Time
	lastPrec Precision
	lastDay  string
}

func (ec *evalCtx) parseTime(s string) (time.Time, Precision, error) {
	if s == ec.lastDate && s != "" {
		return ec.lastTime, ec.lastPrec, nil
	}
	t, p, err := ParseTime(s, ec.m.loc)
	if err == nil {
		ec.lastDate, ec.lastTime, ec.lastPrec, ec.lastDay = s, t, p, ""
	}
	return t, p, err
}

// day formats t as yyyy-mm-dd, once per record for the last date parsed.
func (ec *evalCtx) day(t time.Time) string {
	if t.Equal(ec.lastTime) && t.Location() == ec.lastTime.Location() {
		if ec.lastDay == "" {
			ec.lastDay = t.Format("2006-01-02")
		}
		return ec.lastDay
	}
	return t.Format("2006-01-02")
}

func (ec *evalCtx) get(r *fieldRef) (any, int, error) {
	switch r.special {
	case specColumn:
		return ec.column, ec.valCol, nil
	case specValue:
		return ec.value, ec.valCol, nil
	case specLine:
		return int64(ec.rec.Line), -1, nil
	case specIndex:
		return int64(ec.rec.Index), -1, nil
	case specInput:
		return ec.rec.Input, -1, nil
	}
	v, col, found := r.lookupIn(ec.rec)
	if !found {
		return nil, -1, fmt.Errorf("%w: %q", ErrMissingColumn, r.name)
	}
	return v, col, nil
}

// Map turns one record into entities (several when the mapping lists more
// than one entity or unpivots columns). A failing value gives a *RecordError
// naming the record's line, the column and the attribute. Map does not apply
// skip rules; call Skip first.
func (m *Mapping) Map(rec *Record) ([]Entity, error) {
	if m.passthrough {
		return m.mapPassthrough(rec)
	}
	ec := evalCtx{m: m, rec: rec, valCol: -1}
	var out []Entity
	for _, t := range m.entities {
		if ok, err := t.applies(m, rec); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		if t.unpivot == nil {
			ec.column, ec.value, ec.valCol = "", nil, -1
			e, err := t.build(&ec)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			continue
		}
		for _, ref := range t.unpivot {
			v, col, found := ref.lookupIn(rec)
			if !found {
				return nil, recordError(rec, -1, fmt.Errorf("unpivot: %w: %q", ErrMissingColumn, ref.name))
			}
			if t.skipEmpty && isEmpty(v) {
				continue
			}
			ec.column, ec.value, ec.valCol = ref.name, v, col
			e, err := t.build(&ec)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// applies reports whether every when rule of t matches rec.
func (t *entityTmpl) applies(m *Mapping, rec *Record) (bool, error) {
	for i := range t.when {
		ok, err := t.when[i].match(m, rec, "when")
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (t *entityTmpl) build(ec *evalCtx) (Entity, error) {
	ec.col = -1
	id, err := t.id.render(ec)
	if err != nil {
		return nil, recordError(ec.rec, ec.col, fmt.Errorf("id: %w", err))
	}
	if err := checkURI(id); err != nil {
		return nil, recordError(ec.rec, -1, fmt.Errorf("%w: id %q: %v", ErrInvalidEntity, id, err))
	}
	e := make(Entity, len(t.attrs)+3)
	e["id"] = id
	e["type"] = t.typ
	e["@context"] = ec.m.context
	var observed any
	observedDone := false
	for _, a := range t.attrs {
		if a.shared != nil {
			e[a.name] = a.shared
			continue
		}
		ec.col = -1
		var v any
		var ok bool
		if a.lon != nil {
			v, ok, err = a.point(ec)
		} else {
			v, ok, err = a.e.eval(ec)
		}
		if err != nil {
			return nil, recordError(ec.rec, ec.col, fmt.Errorf("attribute %s: %w", a.name, err))
		}
		if !ok {
			continue
		}
		attr := make(map[string]any, 4)
		switch a.kind {
		case kindRelationship:
			s, isStr := v.(string)
			if !isStr {
				return nil, recordError(ec.rec, ec.col, fmt.Errorf("attribute %s: %w: relationship object must be a URI, got %T", a.name, ErrInvalidValue, v))
			}
			if err := checkURI(s); err != nil {
				return nil, recordError(ec.rec, ec.col, fmt.Errorf("attribute %s: %w: relationship object %q: %v", a.name, ErrInvalidValue, s, err))
			}
			attr["type"] = "Relationship"
			attr["object"] = s
		case kindGeoProperty:
			g, err := toGeometry(v)
			if err != nil {
				return nil, recordError(ec.rec, ec.col, fmt.Errorf("attribute %s: %w", a.name, err))
			}
			attr["type"] = "GeoProperty"
			attr["value"] = g
		default:
			attr["type"] = "Property"
			attr["value"] = v
			if a.unitCode != "" {
				attr["unitCode"] = a.unitCode
			}
		}
		obsExpr := a.observedAt
		if obsExpr != nil {
			ov, ok, err := obsExpr.eval(ec)
			if err != nil {
				return nil, recordError(ec.rec, ec.col, fmt.Errorf("attribute %s: observedAt: %w", a.name, err))
			}
			if ok {
				attr["observedAt"] = ov
			}
		} else if t.observedAt != nil && a.kind != kindRelationship && a.dynamic() {
			if !observedDone {
				ec.col = -1
				ov, ok, err := t.observedAt.eval(ec)
				if err != nil {
					return nil, recordError(ec.rec, ec.col, fmt.Errorf("observedAt: %w", err))
				}
				if ok {
					observed = ov
				}
				observedDone = true
			}
			if observed != nil {
				attr["observedAt"] = observed
			}
		}
		e[a.name] = attr
	}
	return e, nil
}

func (a *attribute) dynamic() bool { return a.lon != nil || a.e.dynamic }

func (a *attribute) point(ec *evalCtx) (any, bool, error) {
	lon, okLon, err := a.lon.eval(ec)
	if err != nil {
		return nil, false, fmt.Errorf("lon: %w", err)
	}
	lat, okLat, err := a.lat.eval(ec)
	if err != nil {
		return nil, false, fmt.Errorf("lat: %w", err)
	}
	if !okLon && !okLat {
		return nil, false, nil
	}
	if okLon != okLat {
		return nil, false, fmt.Errorf("%w: point needs both lon and lat", ErrInvalidValue)
	}
	x, okX := toFloat(lon)
	y, okY := toFloat(lat)
	if !okX || !okY {
		return nil, false, fmt.Errorf("%w: point coordinates must be numbers", ErrInvalidValue)
	}
	if x < -180 || x > 180 || y < -90 || y > 90 {
		return nil, false, fmt.Errorf("%w: point (%g, %g) is outside lon -180..180, lat -90..90", ErrInvalidValue, x, y)
	}
	return map[string]any{"type": "Point", "coordinates": []any{x, y}}, true, nil
}

// eval computes the expression; ok is false when the value is empty and may
// be left out.
func (e *expr) eval(ec *evalCtx) (any, bool, error) {
	var v any
	switch e.kind {
	case exprConst:
		switch e.constVal.(type) {
		case []any, map[string]any:
			return normalizeConst(e.constVal), true, nil // a copy: entities share nothing
		}
		return e.constVal, true, nil
	case exprField:
		var err error
		var col int
		var found bool
		if e.ref.special != specNone {
			v, col, err = ec.get(e.ref)
			if err != nil {
				return nil, false, err
			}
		} else if v, col, found = e.ref.lookupIn(ec.rec); !found {
			if ec.rec.Header == nil || ec.rec.Header.tabular {
				return nil, false, fmt.Errorf("%w: %q", ErrMissingColumn, e.ref.name)
			}
		}
		ec.col = col
	case exprTemplate:
		s, err := e.tmpl.render(ec)
		if err != nil {
			return nil, false, err
		}
		v = s
	case exprObject:
		obj := make(map[string]any, len(e.object))
		for _, f := range e.object {
			fv, ok, err := f.e.eval(ec)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", f.name, err)
			}
			if ok {
				obj[f.name] = fv
			}
		}
		if len(obj) == 0 {
			return e.emptyResult()
		}
		return obj, true, nil
	case exprItems:
		list := make([]any, 0, len(e.items))
		for i, it := range e.items {
			iv, ok, err := it.eval(ec)
			if err != nil {
				return nil, false, fmt.Errorf("item %d: %w", i+1, err)
			}
			if ok {
				list = append(list, iv)
			}
		}
		if len(list) == 0 {
			return e.emptyResult()
		}
		return list, true, nil
	}
	if isEmpty(v) {
		return e.emptyResult()
	}
	if e.lookup != nil {
		key := strings.TrimSpace(valueString(v))
		lv, ok := e.lookup.get(ec.m, key)
		if !ok {
			if e.hasDef {
				return e.def, true, nil
			}
			return nil, false, fmt.Errorf("%w %q: %q", ErrLookupMiss, e.lookup.name, key)
		}
		v = lv
	}
	out, err := convert(v, e.conv, ec)
	if err != nil {
		return nil, false, err
	}
	if e.scale != nil {
		if out, err = e.applyScale(out, ec); err != nil {
			return nil, false, err
		}
	}
	return out, true, nil
}

// applyScale multiplies a converted number by the scale's value, rounded to
// 12 significant digits so that 1,234 kt becomes 1234 t, not 1233.9999999.
func (e *expr) applyScale(v any, ec *evalCtx) (any, error) {
	x, ok := toFloat(v)
	if !ok {
		return nil, fmt.Errorf("%w: scale applies to numbers, got %T", ErrInvalidValue, v)
	}
	sv, ok, err := e.scale.eval(ec)
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	f, isNum := toFloat(sv)
	if !ok || !isNum {
		return nil, fmt.Errorf("%w: scale is not a number: %v", ErrInvalidValue, sv)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x*f, 'g', 12, 64), 64)
	if e.scaleInt {
		if r != math.Trunc(r) || math.Abs(r) > 1<<53 {
			return nil, fmt.Errorf("%w: %v scaled by %v is %v, not a whole number", ErrInvalidNumber, x, f, r)
		}
		return int64(r), nil
	}
	return r, nil
}

func (e *expr) emptyResult() (any, bool, error) {
	if e.hasDef {
		return e.def, true, nil
	}
	if e.required {
		return nil, false, ErrRequiredEmpty
	}
	return nil, false, nil
}

// convert applies a conversion to a non-empty value.
func convert(v any, conv int, ec *evalCtx) (any, error) {
	m := ec.m
	switch conv {
	case convNone:
		if s, ok := v.(string); ok {
			if t := strings.TrimSpace(s); len(t) != len(s) {
				return t, nil
			}
		}
		return v, nil // already boxed: no allocation
	case convString:
		if s, ok := v.(string); ok {
			if t := strings.TrimSpace(s); len(t) != len(s) {
				return t, nil
			}
			return v, nil
		}
		return strings.TrimSpace(valueString(v)), nil
	case convInteger:
		switch x := v.(type) {
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return nil, fmt.Errorf("%w: %v is not a whole number", ErrInvalidNumber, x)
			}
			return int64(x), nil
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case bool, map[string]any, []any:
			return nil, fmt.Errorf("%w: %T is not a number", ErrInvalidNumber, v)
		}
		return ParseInteger(valueString(v), m.decimal)
	case convNumber:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case bool, map[string]any, []any:
			return nil, fmt.Errorf("%w: %T is not a number", ErrInvalidNumber, v)
		}
		return ParseNumber(valueString(v), m.decimal)
	case convBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return ParseBool(valueString(v))
	case convDateTime, convDate, convEndDate, convMonth:
		t, p, err := ec.parseTime(strings.TrimSpace(valueString(v)))
		if err != nil {
			return nil, err
		}
		switch conv {
		case convDate:
			return ec.day(t), nil
		case convEndDate:
			return periodEnd(t, p).Format("2006-01-02"), nil
		case convMonth:
			return t.Format("2006-01"), nil
		}
		return FormatDateTime(t), nil
	case convGeoJSON:
		return toGeometry(v)
	}
	return v, nil
}

// checkURI accepts absolute URIs: a scheme, ':', then no spaces or controls.
func checkURI(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	colon := strings.IndexByte(s, ':')
	if colon < 1 {
		return errors.New("not an absolute URI (no scheme)")
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return errors.New("not an absolute URI (bad scheme)")
		}
	}
	if colon == len(s)-1 {
		return errors.New("nothing after the scheme")
	}
	for i := colon + 1; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '{' || c == '}' || c == '\\' || c == '^' || c == '`' || c == '|' {
			return fmt.Errorf("character %q is not allowed in a URI", c)
		}
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

// usesPivot reports whether an expression reads $column or $value.
func (e *expr) usesPivot() bool {
	if e == nil {
		return false
	}
	if e.ref != nil && (e.ref.special == specColumn || e.ref.special == specValue) {
		return true
	}
	if e.tmpl != nil && e.tmpl.usesPivot() {
		return true
	}
	for _, f := range e.object {
		if f.e.usesPivot() {
			return true
		}
	}
	for _, it := range e.items {
		if it.usesPivot() {
			return true
		}
	}
	return false
}

func (t *template) usesPivot() bool {
	for _, p := range t.parts {
		if p.ref != nil && (p.ref.special == specColumn || p.ref.special == specValue) {
			return true
		}
	}
	return false
}
