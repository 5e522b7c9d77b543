package api

import (
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/piazza-city/piazza/broker"
)

// projection is how a response trims and reshapes entities beyond attrs
// and the format: pick/omit (GS CIM 009 clause 4.21), datasetId (the
// instances to show), lang (clause 4.15: a LanguageProperty in one
// language) and linked-entity retrieval (join, joinLevel; clause 4.5.23).
type projection struct {
	pick, omit *memberSel
	datasets   map[string]bool // "" is the default instance (@none)
	lang       []string        // nil: none asked; ["*"]: every language
	join       string          // "", "flat" or "inline"
	joinLevel  int
}

// memberSel is a pick or omit selection: entity members (id, type, scope,
// canonical attribute names), each with the selection to apply to the
// entities it links to ("locatedAt{name}").
type memberSel struct {
	names map[string]*memberSel
	order []string
}

// maxJoinLevel bounds joinLevel and the nesting of pick/omit.
const maxJoinLevel = 10

func (s *memberSel) has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.names[name]
	return ok
}

// keepsMember reports whether a pick (picked) or omit selection keeps an
// entity member such as id, type or scope; a nil selection keeps all.
func (s *memberSel) keepsMember(name string, picked bool) bool {
	return picked == s.has(name)
}

// keepsAttr reports whether a pick (picked) or omit selection keeps an
// attribute: omit keeps one that is named with a nested selection for the
// entities it links to ("locatedAt{name}").
func (s *memberSel) keepsAttr(name string, picked bool) bool {
	if picked {
		return s.has(name)
	}
	return !s.has(name) || s.names[name] != nil
}

func (s *memberSel) depth() int {
	if s == nil {
		return 0
	}
	d := 0
	for _, k := range s.names {
		if k != nil {
			d = max(d, 1+k.depth())
		}
	}
	return d
}

// parseMemberSel parses a pick or omit value: a comma-separated list of
// members, each optionally followed by {a nested list} for the entities it
// links to.
func parseMemberSel(param, s string, n names) (*memberSel, error) {
	p := &selParser{param: param, s: s, n: n}
	sel, err := p.list(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(s) {
		return nil, badParam("%s: unexpected %q at position %d", param, s[p.pos], p.pos+1)
	}
	return sel, nil
}

type selParser struct {
	param string
	s     string
	pos   int
	n     names
}

func (p *selParser) list(depth int) (*memberSel, error) {
	if depth > maxJoinLevel {
		return nil, badParam("%s: nested deeper than %d levels", p.param, maxJoinLevel)
	}
	sel := &memberSel{names: map[string]*memberSel{}}
	for {
		start := p.pos
		for p.pos < len(p.s) && !strings.ContainsRune(",{}", rune(p.s[p.pos])) {
			p.pos++
		}
		name := p.s[start:p.pos]
		if name == "" {
			return nil, badParam("%s: a member name is missing at position %d", p.param, start+1)
		}
		if strings.ContainsAny(name, " \t<>\"'=;()\\[]") {
			return nil, badParam("%s: %q is not a member name", p.param, name)
		}
		canon := name
		if name != "id" && name != "type" && name != "scope" {
			canon = p.n.Canon(name)
		}
		var sub *memberSel
		if p.pos < len(p.s) && p.s[p.pos] == '{' {
			p.pos++
			var err error
			if sub, err = p.list(depth + 1); err != nil {
				return nil, err
			}
			if p.pos >= len(p.s) || p.s[p.pos] != '}' {
				return nil, badParam("%s: '{' after %s is not closed", p.param, name)
			}
			p.pos++
		}
		if _, dup := sel.names[canon]; !dup {
			sel.order = append(sel.order, canon)
		}
		sel.names[canon] = sub
		if p.pos >= len(p.s) || p.s[p.pos] == '}' {
			return sel, nil
		}
		if p.s[p.pos] != ',' {
			return nil, badParam("%s: unexpected %q at position %d", p.param, p.s[p.pos], p.pos+1)
		}
		p.pos++
	}
}

// parseProjection reads pick, omit, datasetId, lang, join and joinLevel.
// hasAttrs says whether attrs was given (pick and omit exclude it).
func parseProjection(q url.Values, n names, hasAttrs bool) (*projection, error) {
	var p projection
	var err error
	pick, omit := q.Get("pick"), q.Get("omit")
	if _, ok := q["pick"]; ok {
		if p.pick, err = parseMemberSel("pick", pick, n); err != nil {
			return nil, err
		}
	}
	if _, ok := q["omit"]; ok {
		if p.omit, err = parseMemberSel("omit", omit, n); err != nil {
			return nil, err
		}
	}
	if p.pick != nil && p.omit != nil {
		return nil, badParam("pick and omit cannot be combined")
	}
	if (p.pick != nil || p.omit != nil) && hasAttrs {
		return nil, badParam("pick and omit cannot be combined with attrs (pick replaces it)")
	}
	if ds, ok := q["datasetId"]; ok {
		p.datasets = map[string]bool{}
		for _, d := range splitList(strings.Join(ds, ",")) {
			if d == "@none" {
				p.datasets[""] = true
				continue
			}
			if !broker.ValidURI(d) {
				return nil, badParam("datasetId: %q is not a URI (or @none)", d)
			}
			p.datasets[d] = true
		}
		if len(p.datasets) == 0 {
			return nil, badParam("datasetId: empty")
		}
	}
	if l := q.Get("lang"); l != "" {
		if p.lang, err = parseLang(l); err != nil {
			return nil, err
		}
	}
	switch j := q.Get("join"); j {
	case "":
	case "flat", "inline":
		p.join = j
		p.joinLevel = 1
	default:
		return nil, badParam("join: %q is not flat or inline", j)
	}
	if s := q.Get("joinLevel"); s != "" {
		lv, err := strconv.Atoi(s)
		if err != nil || lv < 1 || lv > maxJoinLevel {
			return nil, badParam("joinLevel: %q is not an integer from 1 to %d", s, maxJoinLevel)
		}
		if p.join != "" {
			p.joinLevel = lv
		}
	}
	if d := max(p.pick.depth(), p.omit.depth()); d > 0 {
		if p.join == "" {
			return nil, badParam("pick/omit select members of linked entities: that needs join=flat or join=inline")
		}
		if d > p.joinLevel {
			return nil, badParam("pick/omit are nested %d levels, deeper than joinLevel %d", d, p.joinLevel)
		}
	}
	if p.pick == nil && p.omit == nil && p.datasets == nil && p.lang == nil && p.join == "" {
		return nil, nil
	}
	return &p, nil
}

// entity returns e trimmed by the selection and the instances asked for,
// with each LanguageProperty in the language asked for (a Property whose
// value is a string; post notes its language). e is not modified.
func (p *projection) entity(e *broker.Entity, sel *memberSel, picked bool) (*broker.Entity, map[string]string) {
	c := *e
	c.Attrs = make(map[string]broker.Instances, len(e.Attrs))
	var langs map[string]string
	for name, is := range e.Attrs {
		if !sel.keepsAttr(name, picked) {
			continue
		}
		var out broker.Instances
		for _, a := range is {
			if p.datasets != nil && !p.datasets[a.DatasetID] {
				continue
			}
			if a.Type == broker.LanguageProperty && p.lang != nil {
				if s, tag, ok := pickLang(a.Value, p.lang); ok {
					na := *a
					na.Type, na.Value = broker.Property, s
					a = &na
					if langs == nil {
						langs = map[string]string{}
					}
					langs[name] = tag
				}
			}
			out = append(out, a)
		}
		if len(out) > 0 {
			c.Attrs[name] = out
		}
	}
	if !sel.keepsMember("scope", picked) {
		c.Scope = nil
	}
	return &c, langs
}

// parseLang reads the lang parameter (clause 4.15): language tags with
// optional q-values as in Accept-Language ("fr-CH,fr;q=0.9,*;q=0.5"),
// returned in order of preference; "*" stands for any language.
func parseLang(l string) ([]string, error) {
	type ranked struct {
		tag string
		q   float64
	}
	var rs []ranked
	for _, t := range splitList(l) {
		tag, params, _ := strings.Cut(t, ";")
		tag = strings.TrimSpace(tag)
		if tag == "" || strings.ContainsAny(tag, " {}\"<>;=") {
			return nil, badParam("lang: %q is not a language tag", tag)
		}
		q := 1.0
		if params = strings.TrimSpace(params); params != "" {
			v, ok := strings.CutPrefix(params, "q=")
			f, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil || f < 0 || f > 1 {
				return nil, badParam("lang: %q is not a q-value (q=0 to q=1) for %s", params, tag)
			}
			q = f
		}
		if q > 0 {
			rs = append(rs, ranked{tag, q})
		}
	}
	if len(rs) == 0 {
		return nil, badParam("lang: no language is acceptable in %q", l)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].q > rs[j].q })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.tag
	}
	return out, nil
}

// pickLang chooses the string of a language map for the languages asked
// for, in order of preference: the first that is there ("*" takes any),
// else the default (@none), else the first language in order.
func pickLang(v any, want []string) (string, string, bool) {
	lm, _ := v.(map[string]any)
	if len(lm) == 0 {
		return "", "", false
	}
	str := func(x any) (string, bool) {
		switch s := x.(type) {
		case string:
			return s, true
		case []any:
			if len(s) > 0 {
				t, ok := s[0].(string)
				return t, ok
			}
		}
		return "", false
	}
	for _, l := range want {
		if l == "*" {
			break
		}
		if s, ok := str(lm[l]); ok {
			return s, l, true
		}
	}
	if s, ok := str(lm["@none"]); ok {
		return s, "@none", true
	}
	keys := make([]string, 0, len(lm))
	for k := range lm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s, ok := str(lm[keys[0]])
	return s, keys[0], ok
}

// render writes one entity with the projection: it renders the trimmed
// entity, then, when the JSON itself must change (id or type left out,
// the lang member, linked entities inline), edits it. It returns nil when
// nothing of the entity is left to show.
func (p *projection) render(v view, e *broker.Entity, sel *memberSel, picked bool, level int) []byte {
	te, langs := p.entity(e, sel, picked)
	w := v
	w.proj = nil
	out := w.appendEntity(nil, te)
	dropID, dropType := !sel.keepsMember("id", picked), !sel.keepsMember("type", picked)
	inline := p.join == "inline" && level < p.joinLevel
	if !dropID && !dropType && len(langs) == 0 && !inline {
		return out
	}
	mv, err := broker.DecodeJSON(out)
	m, _ := mv.(map[string]any)
	if err != nil || m == nil {
		return out
	}
	props := m
	if v.media == mediaGeoJSON {
		if pm, ok := m["properties"].(map[string]any); ok {
			props = pm
		}
	}
	if dropID {
		delete(m, "id")
	}
	if dropType {
		delete(props, "type")
	}
	nm := names{v.ctx}
	if v.format != broker.Simplified {
		for name, tag := range langs {
			if am, ok := props[nm.Term(name)].(map[string]any); ok {
				am["lang"] = tag
			}
		}
	}
	if inline {
		for name, is := range te.Attrs {
			var sub *memberSel
			if sel != nil {
				sub = sel.names[name]
			}
			for _, a := range is {
				if a.Type != broker.Relationship {
					continue
				}
				id, _ := a.Value.(string)
				le := v.linked[id]
				if le == nil {
					continue
				}
				lw := v
				lw.inCollection, lw.attrs = true, nil
				lb := p.render(lw, le, sub, sub != nil && picked, level+1)
				var lv any
				if lb != nil {
					lv, _ = broker.DecodeJSON(lb)
				}
				key := nm.Term(name)
				if v.format == broker.Simplified {
					if lv != nil {
						props[key] = lv
					}
				} else if am, ok := props[key].(map[string]any); ok && lv != nil {
					am["entity"] = lv
				}
			}
		}
	}
	empty := true
	for k := range m {
		if k != "@context" {
			empty = false
		}
	}
	if empty {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return out
	}
	return b
}

// linkedIDs returns the ids that the relationships of e name.
func linkedIDs(e *broker.Entity) []string {
	var ids []string
	for _, is := range e.Attrs {
		for _, a := range is {
			ids = appendObjects(ids, a)
		}
	}
	return ids
}

// appendObjects appends the ids that a relationship instance names.
func appendObjects(ids []string, a *broker.Attribute) []string {
	switch a.Type {
	case broker.Relationship:
		switch o := a.Value.(type) {
		case string:
			ids = append(ids, o)
		case []any:
			for _, x := range o {
				if s, ok := x.(string); ok {
					ids = append(ids, s)
				}
			}
		}
	case broker.ListRelationship:
		arr, _ := a.Value.([]any)
		for _, x := range arr {
			if m, ok := x.(map[string]any); ok {
				if s, ok := m["object"].(string); ok {
					ids = append(ids, s)
				}
			}
		}
	}
	return ids
}

// flatItem is one entity of a flat join answer with the selection that
// applies to it.
type flatItem struct {
	e      *broker.Entity
	sel    *memberSel
	picked bool
}

// flatten lists the entities of a flat join answer: the roots, then, level
// by level up to joinLevel, the entities their kept relationships name
// (ids sorted within a level), each once, with the nested pick/omit of the
// relationship that reached it ("locatedAt{id,name}"). A relationship
// that pick leaves out or omit removes is not followed.
func (p *projection) flatten(roots []*broker.Entity, linked map[string]*broker.Entity) []flatItem {
	sel, picked := p.sel()
	items := make([]flatItem, 0, len(roots)+len(linked))
	seen := make(map[string]bool, len(roots)+len(linked))
	for _, e := range roots {
		seen[e.ID] = true
		items = append(items, flatItem{e, sel, picked})
	}
	level := items
	for l := 0; l < p.joinLevel && len(level) > 0; l++ {
		found := map[string]flatItem{}
		for _, it := range level {
			for _, name := range sortedKeys(it.e.Attrs) {
				if !it.sel.keepsAttr(name, it.picked) {
					continue
				}
				var sub *memberSel
				if it.sel != nil {
					sub = it.sel.names[name]
				}
				for _, a := range it.e.Attrs[name] {
					for _, id := range appendObjects(nil, a) {
						le := linked[id]
						if le == nil || seen[id] {
							continue
						}
						seen[id] = true
						found[id] = flatItem{le, sub, sub != nil && it.picked}
					}
				}
			}
		}
		level = level[:0:0]
		for _, id := range sortedKeys(found) {
			level = append(level, found[id])
		}
		items = append(items, level...)
	}
	return items
}

// sel returns the top-level selection and whether it is a pick.
func (p *projection) sel() (*memberSel, bool) {
	if p.pick != nil {
		return p.pick, true
	}
	return p.omit, false
}
