package broker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is the NGSI-LD Query Language (GS CIM 009 V1.9.1, clause 4.9):
// the q parameter of queries and subscriptions. ParseQ turns the text into
// an immutable QExpr; QExpr.Match evaluates it against an Entity in its
// canonical form.
//
// Grammar, as accepted (a superset of the ABNF of clause 4.9):
//
//	Query    = And *("|" And)               ; OR, binds looser
//	And      = Primary *(";" Primary)       ; AND, binds tighter
//	Primary  = "(" Query ")" / Term
//	Term     = ["!"] Path                   ; existence, or absence with "!"
//	Term    =/ Path Op Value                ; Op: == != > >= < <=
//	Term    =/ Path ("==" / "!=") (List / Range / "[" List "]")
//	Term    =/ Path ("~=" / "!~=") RegExp   ; quoted JSON string or bare pattern
//	Path     = Name *("." Name) *("[" Key *("." Key) "]")
//	Value    = Number / "quoted JSON string" / true / false
//	         / DateTime / Date / Time / URI-or-term (unquoted)
//	Range    = Value ".." Value
//
// Spaces around tokens are ignored. Names are terms of the request's
// @context (expanded with Names.Canon); the keys in brackets are members of a
// compound value (not expanded), or the language of a LanguageProperty
// ("name[en]", "name[*]" for any). The last name of a dotted path may be one
// of the members observedAt, createdAt, modifiedAt, unitCode and datasetId;
// a bare createdAt or modifiedAt is the entity's own system time.
//
// Semantics follow clause 4.9: a term matches when its target element exists
// and (for an operator) its target value compares as asked; arrays match
// when any element does; multi-instance attributes match when any instance
// does; comparing values of different kinds (a number with a string) does
// not match, except for != where different kinds are unequal. Strings that
// both parse as DateTime (or Date) compare as instants, Times as times of
// day. Relationships and ListRelationships answer only == and != (their
// objects compare with strings and unquoted URIs); a VocabProperty's vocab
// compares with the literal expanded by Names.Canon. ~= is a search with
// Go's RE2 regexp (anchor with ^ and $ for a full match), compiled once at
// parse time and bounded in length and program size, so that matching is
// linear in the text with a small factor. A caller that evaluates q over
// many entities should still bound the request with a deadline.
//
// A linked-entity path, "sensor{humidity}==40" or "sensor{Device:humidity}"
// (with a type hint), follows the objects of the relationship sensor to the
// entities they name and evaluates the rest of the term there; it can nest
// ("a{b{c}}"). Those entities come from a resolver given to MatchLinked;
// Match has none, so for it linked entities do not exist.

// Bounds of the q parser, so that no request can make it work for long.
const (
	// MaxQLength is the longest q accepted, in bytes.
	MaxQLength = 8 << 10
	// MaxQDepth is the deepest nesting of parentheses accepted.
	MaxQDepth = 64
	// MaxQList is the most values a value list may hold.
	MaxQList = 1000
	// MaxQRegex is the longest regular expression accepted, in bytes.
	MaxQRegex = 1024
	// MaxQRegexProg bounds the size of a compiled regular expression (its
	// instructions): matching costs O(len(text) * size) with Go's RE2
	// engine, never exponential, and this keeps the factor small.
	MaxQRegexProg = 2000
	// maxQPath bounds the names and keys of one attribute path.
	maxQPath = 32
	// MaxQLinks bounds the relationships one linked-entity path follows.
	MaxQLinks = 8
)

// QExpr is a parsed q expression. It is immutable after ParseQ and safe for
// concurrent use by any number of goroutines.
type QExpr struct {
	src    string
	root   qNode
	attrs  []string
	linked bool
}

type qKind uint8

const (
	qTermNode qKind = iota
	qAndNode
	qOrNode
)

type qNode struct {
	kind qKind
	kids []qNode // of an AND or OR
	term *qTerm
}

type qOp uint8

const (
	opExists qOp = iota + 1
	opNotExists
	opEq
	opNe
	opGt
	opGe
	opLt
	opLe
	opMatch
	opNotMatch
)

var qOpNames = [...]string{
	opExists: "exists", opNotExists: "notExists", opEq: "==", opNe: "!=",
	opGt: ">", opGe: ">=", opLt: "<", opLe: "<=", opMatch: "~=", opNotMatch: "!~=",
}

type litKind uint8

const (
	litNumber litKind = iota + 1
	litString         // a quoted string
	litBool
	litInstant // an unquoted DateTime or Date
	litClock   // an unquoted Time
	litWord    // an unquoted URI or term
)

// qLit is a literal of a query term.
type qLit struct {
	kind  litKind
	num   float64
	str   string // the string, or the unquoted token
	canon string // str expanded with Names.Canon, for VocabProperty targets
	b     bool
	// tkind is litInstant or litClock when the literal is (or, for a quoted
	// string, parses as) a DateTime/Date or a Time; t is that time.
	tkind litKind
	t     time.Time
}

// qTerm is one query term.
type qTerm struct {
	pos  int
	attr string   // canonical top-level attribute name; "" for entity meta
	sub  []string // canonical sub-attribute names
	meta string   // observedAt, createdAt, modifiedAt, unitCode, datasetId
	keys []string // compound-value keys, or a language tag
	op   qOp
	vals []qLit
	rng  bool // vals[0]..vals[1]
	re   *regexp.Regexp
	// hops are the relationships a linked-entity path follows first; the
	// rest of the term applies to the entity at their end.
	hops []qHop
}

// qHop is one relationship of a linked-entity path.
type qHop struct {
	attr  string   // canonical relationship name
	types []string // canonical type hint: the linked entity has one of them
}

// attrMeta are the members of an attribute that q can address as if they
// were sub-attributes.
var attrMeta = map[string]bool{"observedAt": true, "createdAt": true, "modifiedAt": true, "unitCode": true, "datasetId": true}

// ParseQ parses a q expression. Attribute names are terms expanded with
// names (nil means CanonicalNames). A malformed expression is an *Error of
// kind ErrBadRequestData whose Detail gives the character position (1-based,
// counted in characters of q) and the reason.
func ParseQ(q string, names Names) (*QExpr, error) {
	if names == nil {
		names = CanonicalNames
	}
	if len(q) > MaxQLength {
		return nil, badData("q: longer than %d bytes (%d)", MaxQLength, len(q))
	}
	if !utf8.ValidString(q) {
		return nil, badData("q: not valid UTF-8")
	}
	p := &qParser{s: q, names: names}
	p.skipSpace()
	if p.pos == len(q) {
		return nil, badData("q: empty expression")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(q) {
		if q[p.pos] == ')' {
			return nil, p.errf(p.pos, "')' without a matching '('")
		}
		return nil, p.errf(p.pos, "expected ';', '|' or the end of q, found %s", p.near(p.pos))
	}
	x := &QExpr{src: q, root: root}
	seen := map[string]bool{}
	root.walk(func(t *qTerm) {
		a := t.attr
		if len(t.hops) > 0 {
			a = t.hops[0].attr
			x.linked = true
		}
		if a != "" && !seen[a] {
			seen[a] = true
			x.attrs = append(x.attrs, a)
		}
	})
	slices.Sort(x.attrs)
	return x, nil
}

// String returns the q text the expression was parsed from.
func (q *QExpr) String() string { return q.src }

// Attrs returns the canonical names of the attributes the expression refers
// to, sorted. The caller must not modify the slice.
func (q *QExpr) Attrs() []string { return q.attrs }

// Match reports whether the entity satisfies the expression. A nil QExpr
// matches every entity. Linked-entity terms see no linked entities (use
// MatchLinked).
func (q *QExpr) Match(e *Entity) bool {
	if q == nil {
		return true
	}
	return q.root.eval(e, nil)
}

// MatchLinked is Match with a resolver for linked-entity terms
// ("sensor{humidity}==40"): resolve returns the entity with the given id, or
// nil when there is none (or the caller may not see it). It is called only
// for the objects of the relationships such terms name.
func (q *QExpr) MatchLinked(e *Entity, resolve func(id string) *Entity) bool {
	if q == nil {
		return true
	}
	return q.root.eval(e, resolve)
}

// Linked reports whether the expression has linked-entity terms, which need
// MatchLinked.
func (q *QExpr) Linked() bool { return q != nil && q.linked }

func (n *qNode) eval(e *Entity, r func(string) *Entity) bool {
	switch n.kind {
	case qAndNode:
		for i := range n.kids {
			if !n.kids[i].eval(e, r) {
				return false
			}
		}
		return true
	case qOrNode:
		for i := range n.kids {
			if n.kids[i].eval(e, r) {
				return true
			}
		}
		return false
	}
	if len(n.term.hops) > 0 {
		return n.term.matchLinked(e, r)
	}
	return n.term.matchEntity(e)
}

func (n *qNode) walk(f func(*qTerm)) {
	if n.kind == qTermNode {
		f(n.term)
		return
	}
	for i := range n.kids {
		n.kids[i].walk(f)
	}
}

// QTerm describes one term of a q expression for a query planner: an index
// may use it to narrow the candidates, and the planner then keeps only the
// entities that QExpr.Match accepts (an index need not reproduce every rule
// of Match, only never drop a match).
type QTerm struct {
	// Path is Attr, then Sub, then Meta (if any), then Keys.
	Path []string
	// Attr is the canonical attribute name; "" when the term is about the
	// entity's own createdAt or modifiedAt (then Meta names which).
	Attr string
	// Sub are the canonical names of sub-attributes below Attr.
	Sub []string
	// Meta is "observedAt", "createdAt", "modifiedAt", "unitCode" or
	// "datasetId" when the term targets that member rather than a value.
	Meta string
	// Keys are compound-value keys (or a language tag) below the value.
	Keys []string
	// Op is one of "exists", "notExists", "==", "!=", ">", ">=", "<", "<=",
	// "~=", "!~=". Every term but notExists requires the attribute.
	Op string
	// Values are the literals: float64 for numbers, string for quoted
	// strings and unquoted URIs or terms, bool, and time.Time for DateTimes,
	// Dates and Times (quoted or not; they compare as times with target
	// strings that are DateTimes). For == and != a match equals any of them.
	Values []any
	// Vocab holds, beside each string value, its expansion with
	// Names.Canon: a VocabProperty matches either.
	Vocab []string
	// Range is true when Values are the bounds [low, high] (both included).
	Range bool
	// Pattern is the regular expression of ~= and !~=.
	Pattern string
}

// Conjuncts returns the terms that every match must satisfy: the root's
// terms when the root is an AND (or a single term), nil when it is an OR.
// Parenthesised groups under the root are left out (they are checked by
// Match).
func (q *QExpr) Conjuncts() []QTerm {
	if q == nil {
		return nil
	}
	switch q.root.kind {
	case qTermNode:
		if t := q.root.term; len(t.hops) > 0 && t.op == opNotExists {
			return nil
		}
		return []QTerm{q.root.term.export()}
	case qAndNode:
		var out []QTerm
		for i := range q.root.kids {
			if k := &q.root.kids[i]; k.kind == qTermNode && !(len(k.term.hops) > 0 && k.term.op == opNotExists) {
				out = append(out, k.term.export())
			}
		}
		return out
	}
	return nil
}

func (t *qTerm) export() QTerm {
	if len(t.hops) > 0 {
		// A linked-entity term needs its first relationship.
		return QTerm{Path: []string{t.hops[0].attr}, Attr: t.hops[0].attr, Op: "exists"}
	}
	x := QTerm{Attr: t.attr, Sub: slices.Clone(t.sub), Meta: t.meta, Keys: slices.Clone(t.keys), Op: qOpNames[t.op], Range: t.rng}
	if t.attr != "" {
		x.Path = append(x.Path, t.attr)
	}
	x.Path = append(x.Path, t.sub...)
	if t.meta != "" {
		x.Path = append(x.Path, t.meta)
	}
	x.Path = append(x.Path, t.keys...)
	for _, l := range t.vals {
		var v any
		canon := ""
		switch {
		case l.tkind != 0:
			v = l.t
		case l.kind == litNumber:
			v = l.num
		case l.kind == litBool:
			v = l.b
		default:
			v, canon = l.str, l.canon
		}
		x.Values = append(x.Values, v)
		x.Vocab = append(x.Vocab, canon)
	}
	if t.re != nil {
		x.Pattern = t.re.String()
	}
	return x
}

// ---- evaluation ----

// matchLinked follows the term's relationships from e, then evaluates the
// rest of the term on the entities reached: any of them may match. For
// absence ("!a{b}") no entity reached may have the target.
func (t *qTerm) matchLinked(e *Entity, r func(string) *Entity) bool {
	hit := t.follow(e, r, 0)
	if t.op == opNotExists {
		return !hit
	}
	return hit
}

func (t *qTerm) follow(e *Entity, r func(string) *Entity, i int) bool {
	if i == len(t.hops) {
		if t.op == opNotExists {
			return !t.matchEntity(e) // the target exists here
		}
		return t.matchEntity(e)
	}
	if r == nil {
		return false
	}
	h := &t.hops[i]
	for _, a := range e.Attrs[h.attr] {
		var objs any
		switch a.Type {
		case Relationship:
			objs = a.Value
		case ListRelationship:
			objs = listObjects(a.Value)
		default:
			continue
		}
		ids, _ := objs.([]any)
		if s, ok := objs.(string); ok {
			ids = []any{s}
		}
		for _, id := range ids {
			s, _ := id.(string)
			x := r(s)
			if x == nil || s == "" {
				continue
			}
			if len(h.types) > 0 && !slices.ContainsFunc(h.types, x.HasType) {
				continue
			}
			if t.follow(x, r, i+1) {
				return true
			}
		}
	}
	return false
}

func (t *qTerm) matchEntity(e *Entity) bool {
	if t.attr == "" {
		// The entity's createdAt or modifiedAt.
		ts := e.CreatedAt
		if t.meta == "modifiedAt" {
			ts = e.ModifiedAt
		}
		if t.op == opNotExists {
			return ts.IsZero()
		}
		return !ts.IsZero() && t.testTime(ts)
	}
	is := e.Attrs[t.attr]
	if t.op == opNotExists {
		for _, a := range is {
			if t.matchInstance(a) {
				return false
			}
		}
		return true
	}
	for _, a := range is {
		if t.matchInstance(a) {
			return true
		}
	}
	return false
}

// matchInstance evaluates the term on one instance; for opNotExists it
// reports whether the target exists.
func (t *qTerm) matchInstance(a *Attribute) bool {
	for _, s := range t.sub {
		a = a.Sub[s]
		if a == nil {
			return false
		}
	}
	if t.meta != "" {
		switch t.meta {
		case "createdAt":
			return !a.CreatedAt.IsZero() && t.testTime(a.CreatedAt)
		case "modifiedAt":
			return !a.ModifiedAt.IsZero() && t.testTime(a.ModifiedAt)
		case "observedAt":
			return a.ObservedAt != "" && t.test(a.ObservedAt, false)
		case "unitCode":
			return a.UnitCode != "" && t.test(a.UnitCode, false)
		case "datasetId":
			return a.DatasetID != "" && t.test(a.DatasetID, false)
		}
		return false
	}
	switch a.Type {
	case Relationship, ListRelationship:
		if len(t.keys) > 0 {
			return false
		}
		switch t.op {
		case opExists, opNotExists, opEq, opNe:
		default:
			return false // clause 4.9: other operators do not match relationships
		}
		if a.Type == ListRelationship {
			return t.test(listObjects(a.Value), false)
		}
		return t.test(a.Value, false)
	case LanguageProperty:
		lm, _ := a.Value.(map[string]any)
		if len(t.keys) > 1 {
			return false
		}
		if len(t.keys) == 1 && t.keys[0] != "*" {
			v, ok := lm[t.keys[0]]
			return ok && t.test(v, false)
		}
		if t.op == opExists || t.op == opNotExists {
			return true
		}
		// Any language: the values of the map, taken together.
		switch t.op {
		case opNe:
			for _, v := range lm {
				if t.any(v, false, opEq) {
					return false
				}
			}
			return true
		case opNotMatch:
			str := false
			for _, v := range lm {
				if t.any(v, false, opMatch) {
					return false
				}
				str = str || hasString(v)
			}
			return str
		}
		for _, v := range lm {
			if t.any(v, false, t.op) {
				return true
			}
		}
		return false
	case VocabProperty:
		if len(t.keys) > 0 {
			return false
		}
		return t.test(a.Value, true)
	}
	v := a.Value
	if len(t.keys) > 0 {
		var ok bool
		if v, ok = compoundMember(v, t.keys); !ok {
			return false
		}
	}
	return t.test(v, false)
}

// listObjects turns a ListRelationship's objectList into its objects.
func listObjects(v any) any {
	arr, _ := v.([]any)
	out := make([]any, 0, len(arr))
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			if s, ok := m["object"].(string); ok {
				out = append(out, s)
			}
		} else if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// compoundMember follows keys into a compound value. A numeric key indexes
// an array; another key applied to an array is applied to each element, and
// the results are collected as an array (so that any of them may match).
func compoundMember(v any, keys []string) (any, bool) {
	for i, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			if n, err := strconv.Atoi(k); err == nil {
				if n < 0 || n >= len(x) {
					return nil, false
				}
				v = x[n]
				continue
			}
			var out []any
			for _, el := range x {
				if m, ok := compoundMember(el, keys[i:]); ok {
					out = append(out, m)
				}
			}
			return out, len(out) > 0
		default:
			return nil, false
		}
	}
	return v, v != nil
}

// test applies the operator to an existing target value.
func (t *qTerm) test(v any, vocab bool) bool {
	switch t.op {
	case opExists, opNotExists:
		return true
	case opNe:
		return !t.any(v, vocab, opEq)
	case opNotMatch:
		return hasString(v) && !t.any(v, vocab, opMatch)
	}
	return t.any(v, vocab, t.op)
}

func hasString(v any) bool {
	switch x := v.(type) {
	case string:
		return true
	case []any:
		for _, el := range x {
			if hasString(el) {
				return true
			}
		}
	}
	return false
}

// any reports whether v (or, for an array, any element) satisfies op. A
// JSON-LD value object ({"@type": "DateTime", "@value": "..."}, clause
// 4.6.3) stands for its @value.
func (t *qTerm) any(v any, vocab bool, op qOp) bool {
	if m, ok := v.(map[string]any); ok {
		if iv, ok := m["@value"]; ok {
			v = iv
		}
	}
	if arr, ok := v.([]any); ok {
		for _, el := range arr {
			if t.any(el, vocab, op) {
				return true
			}
		}
		return false
	}
	switch op {
	case opMatch:
		s, ok := v.(string)
		return ok && t.re.MatchString(s)
	case opEq:
		if t.rng {
			lo, ok1 := cmpLit(v, &t.vals[0])
			hi, ok2 := cmpLit(v, &t.vals[1])
			return ok1 && ok2 && lo >= 0 && hi <= 0
		}
		for i := range t.vals {
			l := &t.vals[i]
			if c, ok := cmpLit(v, l); ok && c == 0 {
				return true
			}
			if vocab && l.canon != l.str {
				if s, ok := v.(string); ok && s == l.canon {
					return true
				}
			}
		}
		return false
	}
	c, ok := cmpLit(v, &t.vals[0])
	if !ok {
		return false
	}
	switch op {
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	}
	return false
}

// testTime applies the operator to a system time.
func (t *qTerm) testTime(ts time.Time) bool {
	switch t.op {
	case opExists, opNotExists:
		return true
	case opMatch, opNotMatch:
		return t.test(formatTime(ts), false)
	}
	eq := func() bool {
		if t.rng {
			return t.vals[0].tkind == litInstant && t.vals[1].tkind == litInstant &&
				ts.Compare(t.vals[0].t) >= 0 && ts.Compare(t.vals[1].t) <= 0
		}
		for _, l := range t.vals {
			if l.tkind == litInstant && ts.Equal(l.t) {
				return true
			}
		}
		return false
	}
	switch t.op {
	case opEq:
		return eq()
	case opNe:
		return !eq()
	}
	l := &t.vals[0]
	if l.tkind != litInstant {
		return false
	}
	c := ts.Compare(l.t)
	switch t.op {
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	}
	return false
}

// cmpLit compares a scalar target value with a literal: the sign of
// (v - l), and whether they are comparable at all.
func cmpLit(v any, l *qLit) (int, bool) {
	switch l.kind {
	case litNumber:
		f, ok := numberValue(v)
		if !ok {
			return 0, false
		}
		switch {
		case f < l.num:
			return -1, true
		case f > l.num:
			return 1, true
		case f == l.num:
			return 0, true
		}
		return 0, false // NaN
	case litBool:
		b, ok := v.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case b == l.b:
			return 0, true
		case l.b:
			return -1, true
		}
		return 1, true
	}
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	if l.tkind != 0 {
		if k, ts, ok := parseTemporal(s); ok && k == l.tkind {
			return ts.Compare(l.t), true
		}
		if l.kind != litString {
			return 0, false // an unquoted date compares with dates only
		}
	}
	return strings.Compare(s, l.str), true
}

// parseTemporal reads s as a DateTime or Date (litInstant; a Date is its
// midnight UTC) or a Time (litClock, on day zero). A DateTime without a zone
// is taken as UTC.
func parseTemporal(s string) (litKind, time.Time, bool) {
	if len(s) < 5 || len(s) > 64 || s[0] < '0' || s[0] > '9' {
		return 0, time.Time{}, false
	}
	if len(s) >= 10 && s[4] == '-' {
		if len(s) == 10 {
			t, err := time.Parse(time.DateOnly, s)
			return litInstant, t, err == nil
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return litInstant, t, true
		}
		t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
		return litInstant, t, err == nil
	}
	if s[2] == ':' {
		for _, layout := range [...]string{"15:04:05.999999999Z07:00", "15:04:05.999999999", "15:04"} {
			if t, err := time.Parse(layout, s); err == nil {
				return litClock, t.UTC(), true
			}
		}
	}
	return 0, time.Time{}, false
}

// ---- parsing ----

type qParser struct {
	s     string
	pos   int
	names Names
	depth int
}

func (p *qParser) errf(pos int, format string, args ...any) *Error {
	return badData("q: character %d: %s", utf8.RuneCountInString(p.s[:min(pos, len(p.s))])+1, fmt.Sprintf(format, args...))
}

// near quotes the text at pos for an error message.
func (p *qParser) near(pos int) string {
	if pos >= len(p.s) {
		return "the end of q"
	}
	r := p.s[pos:]
	if n := 12; len(r) > n {
		i := n
		for i < len(r) && !utf8.RuneStart(r[i]) {
			i++
		}
		return strconv.Quote(r[:i]) + "..."
	}
	return strconv.Quote(r)
}

func (p *qParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func (p *qParser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *qParser) parseOr() (qNode, error) {
	n, err := p.parseAnd()
	if err != nil {
		return n, err
	}
	for p.peek() == '|' {
		p.pos++
		r, err := p.parseAnd()
		if err != nil {
			return n, err
		}
		n = join(qOrNode, n, r)
	}
	return n, nil
}

func (p *qParser) parseAnd() (qNode, error) {
	n, err := p.parsePrimary()
	if err != nil {
		return n, err
	}
	for p.peek() == ';' {
		p.pos++
		r, err := p.parsePrimary()
		if err != nil {
			return n, err
		}
		n = join(qAndNode, n, r)
	}
	return n, nil
}

// join combines two nodes, flattening nested nodes of the same kind.
func join(k qKind, a, b qNode) qNode {
	n := qNode{kind: k}
	for _, x := range [2]qNode{a, b} {
		if x.kind == k {
			n.kids = append(n.kids, x.kids...)
		} else {
			n.kids = append(n.kids, x)
		}
	}
	return n
}

func (p *qParser) parsePrimary() (qNode, error) {
	switch p.peek() {
	case '(':
		open := p.pos
		p.depth++
		if p.depth > MaxQDepth {
			return qNode{}, p.errf(open, "parentheses nest deeper than %d levels", MaxQDepth)
		}
		p.pos++
		n, err := p.parseOr()
		if err != nil {
			return n, err
		}
		if p.peek() != ')' {
			if p.pos >= len(p.s) {
				return n, p.errf(open, "'(' is never closed")
			}
			return n, p.errf(p.pos, "expected ')', ';' or '|', found %s", p.near(p.pos))
		}
		p.pos++
		p.depth--
		return n, nil
	case 0:
		return qNode{}, p.errf(p.pos, "expected a query term, found the end of q")
	case ')', ';', '|':
		return qNode{}, p.errf(p.pos, "expected a query term, found %s", p.near(p.pos))
	}
	t, err := p.parseTerm()
	if err != nil {
		return qNode{}, err
	}
	return qNode{kind: qTermNode, term: t}, nil
}

func isNameRune(r rune) bool {
	return r == '_' || r == '-' || r == ':' || r == '/' || r == '#' || r == '@' ||
		unicode.IsLetter(r) || unicode.IsNumber(r)
}

func (p *qParser) parseTerm() (*qTerm, error) {
	t := &qTerm{pos: p.pos}
	neg := false
	if p.s[p.pos] == '!' {
		neg = true
		p.pos++
	}
	if err := p.parsePath(t); err != nil {
		return nil, err
	}
	if err := p.parseLinks(t); err != nil {
		return nil, err
	}
	p.skipSpace()
	opPos := p.pos
	rest := p.s[p.pos:]
	switch {
	case rest == "" || rest[0] == ';' || rest[0] == '|' || rest[0] == ')':
		t.op = opExists
		if neg {
			t.op = opNotExists
		}
		return t, nil
	case strings.HasPrefix(rest, "=="):
		t.op, p.pos = opEq, p.pos+2
	case strings.HasPrefix(rest, "!~="):
		t.op, p.pos = opNotMatch, p.pos+3
	case strings.HasPrefix(rest, "!="):
		t.op, p.pos = opNe, p.pos+2
	case strings.HasPrefix(rest, ">="):
		t.op, p.pos = opGe, p.pos+2
	case strings.HasPrefix(rest, "<="):
		t.op, p.pos = opLe, p.pos+2
	case strings.HasPrefix(rest, "~="):
		t.op, p.pos = opMatch, p.pos+2
	case rest[0] == '>':
		t.op, p.pos = opGt, p.pos+1
	case rest[0] == '<':
		t.op, p.pos = opLt, p.pos+1
	case rest[0] == '=':
		return nil, p.errf(opPos, "'=' is not an operator (use == to compare)")
	default:
		return nil, p.errf(opPos, "expected an operator (==, !=, >, >=, <, <=, ~=, !~=) or the end of the term, found %s", p.near(opPos))
	}
	if neg {
		return nil, p.errf(t.pos, "'!' (absence of an attribute) takes no operator")
	}
	var err error
	switch t.op {
	case opMatch, opNotMatch:
		err = p.parseRegex(t)
	case opEq, opNe:
		err = p.parseValues(t)
	default:
		var l qLit
		start := p.peekPos()
		if l, err = p.parseValue(false); err == nil {
			t.vals = []qLit{l}
			if strings.HasPrefix(p.s[p.pos:], "..") {
				err = p.errf(p.pos, "a range (low..high) needs == or !=")
			} else if p.peek() == ',' {
				err = p.errf(p.pos, "a list of values needs == or !=")
			} else if l.kind == litBool {
				err = p.errf(start, "%s compares numbers, strings and dates, not booleans", qOpNames[t.op])
			}
		}
	}
	if err != nil {
		return nil, err
	}
	switch p.peek() {
	case 0, ';', '|', ')':
		return t, nil
	}
	return nil, p.errf(p.pos, "expected ';', '|', ')' or the end of q after the value, found %s", p.near(p.pos))
}

func (p *qParser) peekPos() int {
	p.skipSpace()
	return p.pos
}

// parsePath reads Name *("." Name) *("[" Key *("." Key) "]").
func (p *qParser) parsePath(t *qTerm) error {
	start := p.pos
	for p.pos < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[p.pos:])
		if !isNameRune(r) && r != '.' {
			break
		}
		p.pos += n
	}
	tok := p.s[start:p.pos]
	if tok == "" {
		return p.errf(start, "expected an attribute name, found %s", p.near(start))
	}
	var segs []string
	head := tok
	if strings.Contains(tok, "://") {
		// A full IRI: its dots belong to it up to the last '/' or '#'.
		cut := max(strings.LastIndexByte(tok, '/'), strings.LastIndexByte(tok, '#'))
		if i := strings.IndexByte(tok[cut+1:], '.'); i >= 0 {
			head, tok = tok[:cut+1+i], tok[cut+1+i:]
		} else {
			tok = ""
		}
		segs = append(segs, head)
		if tok != "" {
			segs = append(segs, strings.Split(tok[1:], ".")...)
		}
	} else {
		segs = strings.Split(tok, ".")
	}
	if len(segs) > maxQPath {
		return p.errf(start, "the attribute path has more than %d names", maxQPath)
	}
	off := start
	for i, s := range segs {
		if s == "" {
			return p.errf(off, "empty name in the attribute path %q", p.s[start:p.pos])
		}
		if r, _ := utf8.DecodeRuneInString(s); !unicode.IsLetter(r) && r != '_' {
			return p.errf(off, "attribute name %q must start with a letter", s)
		}
		switch {
		case i == 0 && (s == "createdAt" || s == "modifiedAt") && len(segs) == 1:
			t.meta = s
		case i > 0 && attrMeta[s]:
			if i != len(segs)-1 {
				return p.errf(off, "%s has no sub-attributes", s)
			}
			t.meta = s
		case i == 0:
			t.attr = p.names.Canon(s)
		default:
			t.sub = append(t.sub, p.names.Canon(s))
		}
		off += len(s) + 1
	}
	for p.pos < len(p.s) && p.s[p.pos] == '[' {
		open := p.pos
		end := strings.IndexByte(p.s[p.pos:], ']')
		if end < 0 {
			return p.errf(open, "'[' is never closed")
		}
		inner := p.s[p.pos+1 : p.pos+end]
		if inner == "" {
			return p.errf(open, "empty compound path []")
		}
		for _, k := range strings.Split(inner, ".") {
			if k == "" {
				return p.errf(open, "empty key in the compound path [%s]", inner)
			}
			for _, r := range k {
				if r <= ' ' || r == 0x7f || strings.ContainsRune(`[;|()"'=<>!~{}`, r) {
					return p.errf(open, "key %q of the compound path contains %q", k, r)
				}
			}
			t.keys = append(t.keys, k)
		}
		p.pos += end + 1
		if len(t.keys) > maxQPath {
			return p.errf(open, "the compound path has more than %d keys", maxQPath)
		}
	}
	if t.meta != "" && len(t.keys) > 0 {
		return p.errf(start, "%s has no compound value to index with [...]", t.meta)
	}
	return nil
}

// parseLinks reads the rest of a linked-entity path after its first name:
// "{" [Type *("," Type) ":"] Path "}", nested.
func (p *qParser) parseLinks(t *qTerm) error {
	open := 0
	for p.pos < len(p.s) && p.s[p.pos] == '{' {
		if t.attr == "" || len(t.sub) > 0 || len(t.keys) > 0 || t.meta != "" {
			return p.errf(p.pos, "only a relationship name may be followed by {...}")
		}
		if len(t.hops) == MaxQLinks {
			return p.errf(p.pos, "a linked-entity path follows more than %d relationships", MaxQLinks)
		}
		p.pos++
		open++
		h := qHop{attr: t.attr}
		// An optional type hint: Type *("," Type) ":".
		i := p.pos
		for i < len(p.s) {
			r, n := utf8.DecodeRuneInString(p.s[i:])
			if !(r == '_' || r == ',' || unicode.IsLetter(r) || unicode.IsNumber(r)) {
				break
			}
			i += n
		}
		if i < len(p.s) && p.s[i] == ':' && i > p.pos && !strings.HasPrefix(p.s[i:], "://") {
			for _, ty := range strings.Split(p.s[p.pos:i], ",") {
				if r, _ := utf8.DecodeRuneInString(ty); ty == "" || !unicode.IsLetter(r) {
					return p.errf(p.pos, "%q is not an entity type", ty)
				}
				h.types = append(h.types, p.names.Canon(ty))
			}
			p.pos = i + 1
		}
		t.hops = append(t.hops, h)
		t.attr, t.sub, t.keys, t.meta = "", nil, nil, ""
		if err := p.parsePath(t); err != nil {
			return err
		}
	}
	for ; open > 0; open-- {
		if p.pos >= len(p.s) || p.s[p.pos] != '}' {
			return p.errf(p.pos, "expected '}' to close the linked-entity path, found %s", p.near(p.pos))
		}
		p.pos++
	}
	return nil
}

// parseValues reads the value of == or !=: a value, a range, a list, or a
// bracketed list.
func (p *qParser) parseValues(t *qTerm) error {
	if p.peek() == '[' {
		open := p.pos
		p.pos++
		for {
			l, err := p.parseValue(true)
			if err != nil {
				return err
			}
			t.vals = append(t.vals, l)
			if len(t.vals) > MaxQList {
				return p.errf(open, "more than %d values in the list", MaxQList)
			}
			switch p.peek() {
			case ',':
				p.pos++
				continue
			case ']':
				p.pos++
				return nil
			case 0:
				return p.errf(open, "'[' is never closed")
			}
			return p.errf(p.pos, "expected ',' or ']' in the list of values, found %s", p.near(p.pos))
		}
	}
	start := p.peekPos()
	l, err := p.parseValue(true)
	if err != nil {
		return err
	}
	t.vals = []qLit{l}
	if strings.HasPrefix(p.s[p.pos:], "..") {
		if !comparable(l) {
			return p.errf(start, "the low end of a range must be a number, a string or a date/time")
		}
		p.pos += 2
		hpos := p.peekPos()
		h, err := p.parseValue(false)
		if err != nil {
			return err
		}
		if !comparable(h) {
			return p.errf(hpos, "the high end of a range must be a number, a string or a date/time")
		}
		if !sameKind(l, h) {
			return p.errf(hpos, "the ends of a range must be of the same kind (both numbers, strings or date/times)")
		}
		t.vals, t.rng = append(t.vals, h), true
		return nil
	}
	for p.peek() == ',' {
		p.pos++
		l, err := p.parseValue(true)
		if err != nil {
			return err
		}
		t.vals = append(t.vals, l)
		if len(t.vals) > MaxQList {
			return p.errf(start, "more than %d values in the list", MaxQList)
		}
	}
	return nil
}

func comparable(l qLit) bool {
	return l.kind == litNumber || l.kind == litString || l.kind == litInstant || l.kind == litClock
}

func sameKind(a, b qLit) bool {
	if a.tkind != 0 || b.tkind != 0 {
		return a.tkind == b.tkind
	}
	return a.kind == b.kind
}

// parseValue reads one literal. Unquoted URIs and terms are allowed only
// where words may stand (== and !=).
func (p *qParser) parseValue(words bool) (qLit, error) {
	p.skipSpace()
	start := p.pos
	if p.pos >= len(p.s) {
		return qLit{}, p.errf(start, "expected a value, found the end of q")
	}
	if p.s[p.pos] == '"' {
		str, err := p.quoted()
		if err != nil {
			return qLit{}, err
		}
		l := qLit{kind: litString, str: str, canon: str}
		if validName(str) {
			l.canon = p.names.Canon(str)
		}
		if k, ts, ok := parseTemporal(str); ok {
			l.tkind, l.t = k, ts
		}
		return l, nil
	}
	if p.s[p.pos] == '\'' {
		return qLit{}, p.errf(start, "strings are quoted with \", not '")
	}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == ';' || c == '|' || c == ')' || c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
			(c == '.' && p.pos+1 < len(p.s) && p.s[p.pos+1] == '.') {
			break
		}
		p.pos++
	}
	tok := p.s[start:p.pos]
	switch {
	case tok == "":
		return qLit{}, p.errf(start, "expected a value, found %s", p.near(start))
	case tok == "true" || tok == "false":
		return qLit{kind: litBool, b: tok == "true", str: tok}, nil
	case isJSONNumber(tok):
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return qLit{}, p.errf(start, "number %s is out of range", tok)
		}
		return qLit{kind: litNumber, num: f, str: tok}, nil
	}
	if k, ts, ok := parseTemporal(tok); ok {
		return qLit{kind: k, tkind: k, t: ts, str: tok}, nil
	}
	if looksTemporal(tok) {
		return qLit{}, p.errf(start, "%q is not a valid DateTime, Date or Time", tok)
	}
	if c := tok[0]; c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' {
		return qLit{}, p.errf(start, "%q is not a valid number", tok)
	}
	if !words {
		return qLit{}, p.errf(start, "expected a number, a quoted string or a date/time, found %q", tok)
	}
	if !ValidURI(tok) && !validName(tok) {
		return qLit{}, p.errf(start, "%q is not a value (quote strings with \")", tok)
	}
	l := qLit{kind: litWord, str: tok, canon: tok}
	if validName(tok) {
		l.canon = p.names.Canon(tok)
	}
	return l, nil
}

// looksTemporal reports whether an unquoted token was meant as a date or
// time (it starts like one), so that a typo gets a precise error.
func looksTemporal(s string) bool {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	return len(s) >= 8 && (digits(s[:4]) && s[4] == '-' || digits(s[:2]) && s[2] == ':')
}

// quoted reads a JSON string at p.pos.
func (p *qParser) quoted() (string, error) {
	start := p.pos
	i := p.pos + 1
	plain := true
	for i < len(p.s) && p.s[i] != '"' {
		if p.s[i] == '\\' {
			i++
			plain = false
		} else if p.s[i] < ' ' {
			plain = false
		}
		i++
	}
	if i >= len(p.s) {
		return "", p.errf(start, "the string is never closed (missing \")")
	}
	if plain {
		// No escapes: the text itself (q is valid UTF-8).
		p.pos = i + 1
		return p.s[start+1 : i], nil
	}
	var s string
	if err := json.Unmarshal([]byte(p.s[start:i+1]), &s); err != nil {
		return "", p.errf(start, "invalid string %s: %v", p.s[start:i+1], strings.TrimPrefix(err.Error(), "json: "))
	}
	p.pos = i + 1
	return s, nil
}

func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

// parseRegex reads the pattern of ~= or !~=: a quoted JSON string, or a
// bare pattern that runs to the first ';', '|' or ')' outside its own
// parentheses and character classes.
func (p *qParser) parseRegex(t *qTerm) error {
	p.skipSpace()
	start := p.pos
	var pat string
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		var err error
		if pat, err = p.quoted(); err != nil {
			return err
		}
	} else {
		depth, class := 0, false
	scan:
		for p.pos < len(p.s) {
			c := p.s[p.pos]
			switch {
			case c == '\\':
				p.pos++
			case class:
				class = c != ']'
			case c == '[':
				class = true
				if p.pos+1 < len(p.s) && p.s[p.pos+1] == ']' {
					p.pos++ // "[]...]": the first ] is a member
				}
			case c == '(':
				depth++
			case c == ')':
				if depth == 0 {
					break scan
				}
				depth--
			case (c == ';' || c == '|') && depth == 0:
				break scan
			}
			p.pos++
		}
		p.pos = min(p.pos, len(p.s))
		pat = strings.TrimRight(p.s[start:p.pos], " \t\r\n")
	}
	if pat == "" {
		return p.errf(start, "expected a regular expression")
	}
	re, reason := compileRegexp(pat)
	if reason != "" {
		return p.errf(start, "%s", reason)
	}
	t.re = re
	return nil
}

// CompileRegexp compiles a regular expression of a request (such as
// idPattern) with the bounds of q: at most MaxQRegex bytes and
// MaxQRegexProg instructions, RE2 syntax (no backreferences or lookaround,
// so matching is linear in the text). The error is an *Error of kind
// ErrBadRequestData whose Detail starts with param.
func CompileRegexp(param, pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, badData("%s: empty regular expression", param)
	}
	re, reason := compileRegexp(pattern)
	if reason != "" {
		return nil, badData("%s: %s", param, reason)
	}
	return re, nil
}

func compileRegexp(pat string) (*regexp.Regexp, string) {
	if len(pat) > MaxQRegex {
		return nil, fmt.Sprintf("the regular expression is longer than %d bytes", MaxQRegex)
	}
	if !utf8.ValidString(pat) {
		return nil, "the regular expression is not valid UTF-8"
	}
	invalid := func(err error) string {
		return "invalid regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
	}
	sre, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return nil, invalid(err)
	}
	prog, err := syntax.Compile(sre.Simplify())
	if err != nil {
		return nil, invalid(err)
	}
	if n := len(prog.Inst); n > MaxQRegexProg {
		return nil, fmt.Sprintf("the regular expression is too complex (%d instructions, at most %d)", n, MaxQRegexProg)
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, invalid(err)
	}
	return re, ""
}
