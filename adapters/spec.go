package adapters

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The YAML form of a mapping. Every type here checks its keys itself
// (checkKeys) because yaml.v3 does not carry KnownFields into custom
// unmarshalers; the compiled form is in mapping.go.

type mappingSpec struct {
	Context     any                       `yaml:"context"`
	Timezone    string                    `yaml:"timezone"`
	Decimal     string                    `yaml:"decimal"`
	Lookups     map[string]map[string]any `yaml:"lookups"`
	Skip        []*skipSpec               `yaml:"skip"`
	Type        string                    `yaml:"type"`
	ID          string                    `yaml:"id"`
	ObservedAt  *exprSpec                 `yaml:"observedAt"`
	Unpivot     *unpivotSpec              `yaml:"unpivot"`
	Attributes  map[string]*attrSpec      `yaml:"attributes"`
	Entities    []*entitySpec             `yaml:"entities"`
	Passthrough bool                      `yaml:"passthrough"`
	Redact      []string                  `yaml:"redact"`
	Tables      map[string]*tableSpec     `yaml:"tables"`
	line        int
}

func (s *mappingSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a mapping must be a YAML mapping", n.Line)
	}
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain mappingSpec
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

type entitySpec struct {
	When       []*skipSpec          `yaml:"when"`
	Type       string               `yaml:"type"`
	ID         string               `yaml:"id"`
	ObservedAt *exprSpec            `yaml:"observedAt"`
	Unpivot    *unpivotSpec         `yaml:"unpivot"`
	Attributes map[string]*attrSpec `yaml:"attributes"`
	line       int
}

func (s *entitySpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain entitySpec
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

type unpivotSpec struct {
	Columns   []string `yaml:"columns"`
	SkipEmpty bool     `yaml:"skipEmpty"`
}

func (s *unpivotSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain unpivotSpec
	return n.Decode((*plain)(s))
}

type skipSpec struct {
	Column  string   `yaml:"column"`
	Lookup  string   `yaml:"lookup"`
	Empty   bool     `yaml:"empty"`
	Equals  []string `yaml:"equals"`
	Matches string   `yaml:"matches"`
	line    int
}

func (s *skipSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain skipSpec
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

// exprSpec is a value: a column (from), a template, a constant (value), an
// object of values or a list of values; a scalar is shorthand for from.
type exprSpec struct {
	From     string               `yaml:"from"`
	Template string               `yaml:"template"`
	Value    any                  `yaml:"value"`
	Object   map[string]*exprSpec `yaml:"object"`
	Items    []*exprSpec          `yaml:"items"`
	As       string               `yaml:"as"`
	Lookup   string               `yaml:"lookup"`
	Default  any                  `yaml:"default"`
	Required bool                 `yaml:"required"`
	Scale    *exprSpec            `yaml:"scale"`
	line     int
}

func (s *exprSpec) UnmarshalYAML(n *yaml.Node) error {
	s.line = n.Line
	if n.Kind == yaml.ScalarNode {
		s.From = n.Value
		return nil
	}
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain exprSpec
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

// attrSpec is an attribute: a value plus its NGSI-LD kind and metadata.
type attrSpec struct {
	Kind       string               `yaml:"kind"`
	From       string               `yaml:"from"`
	Template   string               `yaml:"template"`
	Value      any                  `yaml:"value"`
	Object     map[string]*exprSpec `yaml:"object"`
	Items      []*exprSpec          `yaml:"items"`
	As         string               `yaml:"as"`
	Lookup     string               `yaml:"lookup"`
	Default    any                  `yaml:"default"`
	Required   bool                 `yaml:"required"`
	Scale      *exprSpec            `yaml:"scale"`
	UnitCode   string               `yaml:"unitCode"`
	ObservedAt *exprSpec            `yaml:"observedAt"`
	Point      *pointSpec           `yaml:"point"`
	line       int
}

func (s *attrSpec) UnmarshalYAML(n *yaml.Node) error {
	s.line = n.Line
	if n.Kind == yaml.ScalarNode {
		s.From = n.Value
		return nil
	}
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain attrSpec
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line = n.Line
	return nil
}

func (s *attrSpec) expr() *exprSpec {
	return &exprSpec{From: s.From, Template: s.Template, Value: s.Value, Object: s.Object, Items: s.Items,
		As: s.As, Lookup: s.Lookup, Default: s.Default, Required: s.Required, Scale: s.Scale, line: s.line}
}

type pointSpec struct {
	Lon *exprSpec `yaml:"lon"`
	Lat *exprSpec `yaml:"lat"`
}

func (s *pointSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain pointSpec
	return n.Decode((*plain)(s))
}

// compileRule compiles a skip rule or an entity's when condition.
func (m *Mapping) compileRule(s *skipSpec, what string) (skipRule, error) {
	if s == nil || strings.TrimSpace(s.Column) == "" {
		return skipRule{}, fmt.Errorf("%s: column is required", what)
	}
	r := skipRule{ref: newFieldRef(s.Column), empty: s.Empty, equals: s.Equals}
	if s.Lookup != "" {
		if r.lookup = m.lookupFor(s.Lookup); r.lookup == nil {
			return r, fmt.Errorf("line %d: %s: lookup: no table %q", s.line, what, s.Lookup)
		}
	}
	n := 0
	if s.Empty {
		n++
	}
	if s.Equals != nil {
		n++
	}
	if s.Matches != "" {
		n++
		var err error
		if r.re, err = regexp.Compile(s.Matches); err != nil {
			return r, fmt.Errorf("line %d: %s: matches: %v", s.line, what, err)
		}
	}
	if n != 1 {
		return r, fmt.Errorf("line %d: %s: give exactly one of empty, equals, matches", s.line, what)
	}
	m.refs = append(m.refs, r.ref)
	return r, nil
}

var attrNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var reservedAttrs = []string{"id", "type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt", "observedAt", "unitCode", "datasetId"}

func compileMapping(spec *mappingSpec) (*Mapping, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidMapping, fmt.Sprintf(format, args...))
	}
	m := &Mapping{lookups: map[string]*lookupTable{}}
	switch c := spec.Context.(type) {
	case nil:
		m.context = CoreContext
	case string:
		if err := checkURI(c); err != nil {
			return nil, bad("context: %q: %v", c, err)
		}
		m.context = c
	case []any:
		if len(c) == 0 {
			return nil, bad("context: empty list")
		}
		for _, x := range c {
			s, ok := x.(string)
			if !ok {
				return nil, bad("context: list items must be URLs")
			}
			if err := checkURI(s); err != nil {
				return nil, bad("context: %q: %v", s, err)
			}
		}
		m.context = c
	default:
		return nil, bad("context: must be a URL or a list of URLs")
	}
	tz := spec.Timezone
	if tz == "" {
		tz = DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, bad("timezone: %q: %v", tz, err)
	}
	m.loc = loc
	switch spec.Decimal {
	case "", "auto":
	case ",", "comma":
		m.decimal = ','
	case ".", "point", "dot":
		m.decimal = '.'
	default:
		return nil, bad("decimal: %q (use \",\", \".\" or auto)", spec.Decimal)
	}
	for name, tbl := range spec.Lookups {
		if len(tbl) == 0 {
			return nil, bad("lookups: table %q is empty", name)
		}
		m.lookups[name] = &lookupTable{name: name, values: tbl}
	}
	for i, s := range spec.Skip {
		r, err := m.compileRule(s, fmt.Sprintf("skip rule %d", i+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
		}
		m.skip = append(m.skip, r)
	}
	for name, ts := range spec.Tables {
		if ts == nil || strings.TrimSpace(ts.Key) == "" {
			return nil, bad("tables: table %q: key (the column records are looked up by) is required", name)
		}
		if strings.Contains(name, ".") || m.lookups[name] != nil {
			return nil, bad("tables: table %q: a name without dots, not also under lookups", name)
		}
		if m.tableSpecs == nil {
			m.tableSpecs = map[string]*tableSpec{}
		}
		m.tableSpecs[name] = ts
	}
	for i, name := range spec.Redact {
		if strings.TrimSpace(name) == "" {
			return nil, bad("redact[%d]: empty field name", i)
		}
		if m.redact == nil {
			m.redact = map[string]bool{}
		}
		m.redact[NormalizeName(name)] = true
	}
	specs := spec.Entities
	inline := spec.Type != "" || spec.ID != "" || spec.Attributes != nil || spec.Unpivot != nil || spec.ObservedAt != nil
	if spec.Passthrough {
		if inline || len(specs) > 0 || len(spec.Lookups) > 0 {
			return nil, bad("passthrough takes records as NGSI-LD entities: give no type, id, attributes, entities, unpivot, observedAt or lookups")
		}
		m.passthrough = true
		return m, nil
	}
	switch {
	case inline && len(specs) > 0:
		return nil, bad("give either type/id/attributes or entities, not both")
	case inline:
		specs = []*entitySpec{{Type: spec.Type, ID: spec.ID, ObservedAt: spec.ObservedAt, Unpivot: spec.Unpivot, Attributes: spec.Attributes, line: spec.line}}
	case len(specs) == 0:
		return nil, bad("type, id and attributes are required")
	}
	for i, es := range specs {
		t, err := m.compileEntity(es)
		if err != nil {
			if len(specs) > 1 {
				return nil, fmt.Errorf("%w: entities[%d]: %v", ErrInvalidMapping, i, err)
			}
			return nil, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
		}
		m.entities = append(m.entities, t)
	}
	return m, nil
}

func (m *Mapping) compileEntity(es *entitySpec) (*entityTmpl, error) {
	if es == nil {
		return nil, fmt.Errorf("empty entity")
	}
	if es.Type == "" {
		return nil, fmt.Errorf("type is required")
	}
	if strings.ContainsAny(es.Type, " {}") {
		return nil, fmt.Errorf("type %q: must be a name or a URI", es.Type)
	}
	if es.ID == "" {
		return nil, fmt.Errorf("id is required (a template such as urn:ngsi-ld:%s:{{CODE}})", es.Type)
	}
	t := &entityTmpl{typ: es.Type}
	var err error
	for i, ws := range es.When {
		w, err := m.compileRule(ws, fmt.Sprintf("when[%d]", i))
		if err != nil {
			return nil, err
		}
		t.when = append(t.when, w)
	}
	if t.id, err = compileTemplate(es.ID, true, m.lookupFor); err != nil {
		return nil, fmt.Errorf("id: %v", err)
	}
	if t.id.refs == 0 && es.Unpivot == nil {
		return nil, fmt.Errorf("id: %q has no {{placeholder}}: every record would write the same entity", es.ID)
	}
	if t.id.parts[0].ref != nil || !strings.Contains(t.id.parts[0].lit, ":") {
		return nil, fmt.Errorf("id: %q must start with a URI scheme such as urn:ngsi-ld:", es.ID)
	}
	m.collectTemplateRefs(t.id)
	if es.Unpivot != nil {
		if len(es.Unpivot.Columns) == 0 {
			return nil, fmt.Errorf("unpivot: columns is required")
		}
		for _, c := range es.Unpivot.Columns {
			r := newFieldRef(c)
			t.unpivot = append(t.unpivot, r)
			m.refs = append(m.refs, r)
		}
		t.skipEmpty = es.Unpivot.SkipEmpty
		usesColumn := false
		for _, p := range t.id.parts {
			if p.ref != nil && (p.ref.special == specColumn || p.ref.special == specValue) {
				usesColumn = true
			}
		}
		if !usesColumn {
			return nil, fmt.Errorf("id: with unpivot the id must use {{$column}} so that each column makes its own entity")
		}
	}
	if es.ObservedAt != nil {
		if t.observedAt, err = m.compileExpr(es.ObservedAt, convDateTime); err != nil {
			return nil, fmt.Errorf("observedAt: %v", err)
		}
	}
	if len(es.Attributes) == 0 {
		return nil, fmt.Errorf("attributes: at least one is required")
	}
	names := make([]string, 0, len(es.Attributes))
	for n := range es.Attributes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		a, err := m.compileAttr(name, es.Attributes[name], es.Unpivot != nil)
		if err != nil {
			return nil, err
		}
		t.attrs = append(t.attrs, a)
	}
	if t.unpivot == nil {
		pivot := t.id.usesPivot() || t.observedAt.usesPivot()
		for _, a := range t.attrs {
			pivot = pivot || a.e.usesPivot() || a.lon.usesPivot() || a.lat.usesPivot() || a.observedAt.usesPivot()
		}
		if pivot {
			return nil, fmt.Errorf("$column and $value are only defined with unpivot")
		}
	}
	return t, nil
}

func (m *Mapping) compileAttr(name string, s *attrSpec, unpivot bool) (*attribute, error) {
	where := func(line int) string {
		if line > 0 {
			return fmt.Sprintf("line %d: attribute %q", line, name)
		}
		return fmt.Sprintf("attribute %q", name)
	}
	if s == nil {
		return nil, fmt.Errorf("%s: empty", where(0))
	}
	if !attrNameRE.MatchString(name) && checkURI(name) != nil {
		return nil, fmt.Errorf("%s: not a valid attribute name", where(s.line))
	}
	if slices.Contains(reservedAttrs, name) {
		return nil, fmt.Errorf("%s: reserved name", where(s.line))
	}
	a := &attribute{name: name, unitCode: s.UnitCode}
	switch s.Kind {
	case "", "Property":
		a.kind = kindProperty
	case "Relationship":
		a.kind = kindRelationship
	case "GeoProperty":
		a.kind = kindGeoProperty
	default:
		return nil, fmt.Errorf("%s: kind %q (use Property, Relationship or GeoProperty)", where(s.line), s.Kind)
	}
	if (name == "location" || name == "observationSpace" || name == "operationSpace") && a.kind != kindGeoProperty {
		return nil, fmt.Errorf("%s: must be kind GeoProperty", where(s.line))
	}
	if a.unitCode != "" && a.kind != kindProperty {
		return nil, fmt.Errorf("%s: unitCode applies to Property attributes only", where(s.line))
	}
	if !unpivot {
		if strings.EqualFold(strings.TrimSpace(s.From), "$column") || strings.EqualFold(strings.TrimSpace(s.From), "$value") {
			return nil, fmt.Errorf("%s: %s is only defined with unpivot", where(s.line), s.From)
		}
	}
	var err error
	if s.Point != nil {
		if a.kind != kindGeoProperty {
			return nil, fmt.Errorf("%s: point needs kind GeoProperty", where(s.line))
		}
		if s.From != "" || s.Template != "" || s.Value != nil || s.Object != nil || s.Items != nil {
			return nil, fmt.Errorf("%s: give either point or a value, not both", where(s.line))
		}
		if s.Point.Lon == nil || s.Point.Lat == nil {
			return nil, fmt.Errorf("%s: point needs lon and lat", where(s.line))
		}
		if a.lon, err = m.compileExpr(s.Point.Lon, convNumber); err != nil {
			return nil, fmt.Errorf("%s: point.lon: %v", where(s.line), err)
		}
		if a.lat, err = m.compileExpr(s.Point.Lat, convNumber); err != nil {
			return nil, fmt.Errorf("%s: point.lat: %v", where(s.line), err)
		}
		a.lon.conv, a.lat.conv = convNumber, convNumber
	} else {
		def := convNone
		if a.kind == kindGeoProperty {
			def = convGeoJSON
		}
		if a.e, err = m.compileExpr(s.expr(), def); err != nil {
			return nil, fmt.Errorf("%s: %v", where(s.line), err)
		}
	}
	if s.ObservedAt != nil {
		if a.observedAt, err = m.compileExpr(s.ObservedAt, convDateTime); err != nil {
			return nil, fmt.Errorf("%s: observedAt: %v", where(s.line), err)
		}
	}
	if a.e != nil && a.e.kind == exprConst && a.observedAt == nil {
		switch a.kind {
		case kindProperty:
			a.shared = map[string]any{"type": "Property", "value": a.e.constVal}
			if a.unitCode != "" {
				a.shared["unitCode"] = a.unitCode
			}
		case kindRelationship:
			s, ok := a.e.constVal.(string)
			if !ok || checkURI(s) != nil {
				return nil, fmt.Errorf("%s: a relationship needs a URI", where(0))
			}
			a.shared = map[string]any{"type": "Relationship", "object": s}
		case kindGeoProperty:
			g, err := toGeometry(a.e.constVal)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where(0), err)
			}
			a.shared = map[string]any{"type": "GeoProperty", "value": g}
		}
	}
	return a, nil
}

// compileExpr compiles a value; defConv is used when `as` is not given.
func (m *Mapping) compileExpr(s *exprSpec, defConv int) (*expr, error) {
	e := &expr{required: s.Required}
	n := 0
	if s.From != "" {
		n++
		e.kind, e.ref, e.dynamic = exprField, newFieldRef(s.From), true
		if e.ref.special == specNone {
			m.refs = append(m.refs, e.ref)
		}
	}
	if s.Template != "" {
		n++
		t, err := compileTemplate(s.Template, false, m.lookupFor)
		if err != nil {
			return nil, err
		}
		e.kind, e.tmpl, e.dynamic = exprTemplate, t, t.refs > 0
		m.collectTemplateRefs(t)
	}
	if s.Value != nil {
		n++
		e.kind, e.constVal = exprConst, s.Value
	}
	if s.Object != nil {
		n++
		e.kind = exprObject
		keys := make([]string, 0, len(s.Object))
		for k := range s.Object {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if s.Object[k] == nil {
				return nil, fmt.Errorf("object.%s: empty", k)
			}
			sub, err := m.compileExpr(s.Object[k], convNone)
			if err != nil {
				return nil, fmt.Errorf("object.%s: %v", k, err)
			}
			e.object = append(e.object, objField{name: k, e: sub})
			e.dynamic = e.dynamic || sub.dynamic
		}
	}
	if s.Items != nil {
		n++
		e.kind = exprItems
		for i, it := range s.Items {
			if it == nil {
				return nil, fmt.Errorf("items[%d]: empty", i)
			}
			sub, err := m.compileExpr(it, convNone)
			if err != nil {
				return nil, fmt.Errorf("items[%d]: %v", i, err)
			}
			e.items = append(e.items, sub)
			e.dynamic = e.dynamic || sub.dynamic
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("give exactly one of from, template, value, object, items")
	}
	conv, ok := convNames[s.As]
	if !ok {
		return nil, fmt.Errorf("as: unknown conversion %q (known: %s)", s.As, convList)
	}
	if s.As == "" {
		conv = defConv
	}
	if e.kind == exprConst || e.kind == exprObject || e.kind == exprItems {
		if s.As != "" || s.Lookup != "" || s.Default != nil || s.Required {
			return nil, fmt.Errorf("as, lookup, default and required apply to from and template only")
		}
		if e.kind == exprConst {
			switch s.Value.(type) {
			case string, int, int64, float64, bool, []any, map[string]any:
			default:
				return nil, fmt.Errorf("value: unsupported constant %T", s.Value)
			}
			e.constVal = normalizeConst(s.Value)
		}
		return e, nil
	}
	e.conv = conv
	if s.Scale != nil {
		if conv != convNumber && conv != convInteger {
			return nil, fmt.Errorf("scale needs as: number (or integer)")
		}
		sc, err := m.compileExpr(s.Scale, convNumber)
		if err != nil {
			return nil, fmt.Errorf("scale: %v", err)
		}
		if sc.kind != exprConst {
			sc.conv = convNumber
		} else if _, ok := toFloat(sc.constVal); !ok {
			return nil, fmt.Errorf("scale: %v is not a number", sc.constVal)
		}
		e.scale = sc
		if conv == convInteger {
			// read as a number, scale, then require a whole number
			e.conv, e.scaleInt = convNumber, true
		}
	}
	if s.Lookup != "" {
		if e.lookup = m.lookupFor(s.Lookup); e.lookup == nil {
			return nil, fmt.Errorf("lookup: no table %q under lookups", s.Lookup)
		}
	}
	if s.Default != nil {
		e.def, e.hasDef = normalizeConst(s.Default), true
		if s.Required {
			return nil, fmt.Errorf("required and default exclude each other")
		}
	}
	return e, nil
}

func (m *Mapping) collectTemplateRefs(t *template) {
	for _, p := range t.parts {
		if p.ref != nil && p.ref.special == specNone {
			m.refs = append(m.refs, p.ref)
		}
	}
}

// normalizeConst turns YAML-decoded constants into JSON-ready values
// (int to int64, map keys already strings).
func normalizeConst(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeConst(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeConst(e)
		}
		return out
	}
	return v
}
