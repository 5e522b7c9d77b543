package broker

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is the NGSI-LD Scope Query Language (GS CIM 009 V1.9.1, clause
// 4.19), the scopeQ parameter, and the small boolean grammar it shares with
// the Entity Type Selection Language (typesel.go).
//
//	ScopeQ  = And *(("|" / ",") And)   ; OR, also written with a comma
//	And     = Primary *(";" Primary)   ; AND, binds tighter
//	Primary = "(" ScopeQ ")" / Scope
//	Scope   = "/#"                     ; any non-empty scope
//	        / 1*("/" Level) ["/#"]     ; Level: a name, or "+" for any one level
//
// "/a/b" matches the scope /a/b only; "/a/b/#" matches /a/b and every scope
// below it; "/a/+/c" matches /a/x/c for any x. An entity matches a scope term
// when any of its scopes does; "(/a;/b)" asks for an entity with both. An
// entity without scopes matches no scopeQ. The grammar of clause 4.19 allows
// ";" only inside parentheses and one level of them; this parser accepts any
// nesting up to MaxQDepth and ";" anywhere (binding tighter than "|").

// MaxSelectionLength bounds the length of a scopeQ or a type selection, in
// bytes.
const MaxSelectionLength = 8 << 10

// maxSelectionAtoms bounds the scopes or types of one selection.
const maxSelectionAtoms = 512

// ScopeQuery is a parsed scopeQ. It is immutable and safe for concurrent use.
type ScopeQuery struct {
	src  string
	root boolNode[scopePattern]
}

type scopePattern struct {
	levels []string // "+" is any one level
	below  bool     // ends in "/#": the scope and everything below it
	any    bool     // "/#" alone: any scope
}

// ParseScopeQ parses a scopeQ. A malformed one is an *Error of kind
// ErrBadRequestData whose Detail gives the character position and reason.
func ParseScopeQ(s string) (*ScopeQuery, error) {
	p := &boolParser[scopePattern]{what: "scopeQ", s: s, commaIsOr: true, atom: parseScopePattern}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	return &ScopeQuery{src: s, root: root}, nil
}

// String returns the text the query was parsed from.
func (s *ScopeQuery) String() string { return s.src }

// Match reports whether an entity with the given scopes matches. A nil
// ScopeQuery matches everything.
func (s *ScopeQuery) Match(scopes []string) bool {
	if s == nil {
		return true
	}
	return s.root.eval(func(p scopePattern) bool {
		for _, sc := range scopes {
			if p.match(sc) {
				return true
			}
		}
		return false
	})
}

// match reports whether one scope ("/a/b/c") matches the pattern.
func (p scopePattern) match(scope string) bool {
	if len(scope) < 2 || scope[0] != '/' {
		return false
	}
	if p.any {
		return true
	}
	rest := scope[1:]
	for _, l := range p.levels {
		if rest == "" {
			return false // the scope is shorter than the pattern
		}
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if l != "+" && l != seg {
			return false
		}
	}
	return rest == "" || p.below
}

func parseScopePattern(tok string) (scopePattern, int, string) {
	if tok == "/#" {
		return scopePattern{any: true}, 0, ""
	}
	if tok == "" || tok[0] != '/' {
		return scopePattern{}, 0, "a scope starts with '/' (e.g. /Madrid/Gardens)"
	}
	var p scopePattern
	if strings.HasSuffix(tok, "/#") {
		p.below = true
		tok = tok[:len(tok)-2]
	}
	off := 1
	for _, l := range strings.Split(tok[1:], "/") {
		switch {
		case l == "":
			return p, off, "empty scope level (two '/' in a row, or a trailing '/')"
		case l == "#":
			return p, off, "'#' may only end a scope, as /#"
		case l == "+":
		case strings.ContainsAny(l, "#+"):
			return p, off, fmt.Sprintf("scope level %q: '+' and '#' stand alone as a level", l)
		default:
			for _, r := range l {
				if r <= ' ' || r == 0x7f {
					return p, off, fmt.Sprintf("scope level %q contains a space or control character", l)
				}
			}
		}
		p.levels = append(p.levels, l)
		off += len(l) + 1
	}
	return p, 0, ""
}

// ---- the boolean grammar shared by scopeQ and type selections ----

// boolNode is an AND or OR of nodes, or an atom.
type boolNode[T any] struct {
	op   byte // ';' AND, '|' OR, 0 an atom
	kids []boolNode[T]
	atom T
}

func (n *boolNode[T]) eval(f func(T) bool) bool {
	switch n.op {
	case ';':
		for i := range n.kids {
			if !n.kids[i].eval(f) {
				return false
			}
		}
		return true
	case '|':
		for i := range n.kids {
			if n.kids[i].eval(f) {
				return true
			}
		}
		return false
	}
	return f(n.atom)
}

func (n *boolNode[T]) atoms(f func(T)) {
	if n.op == 0 {
		f(n.atom)
		return
	}
	for i := range n.kids {
		n.kids[i].atoms(f)
	}
}

// boolParser parses atoms combined with ';' (AND), '|' (OR, and ',' when
// commaIsOr) and parentheses. An atom is the text between those characters
// (spaces around it trimmed); atom returns it parsed, or an offset within
// the token and a reason.
type boolParser[T any] struct {
	what      string
	s         string
	pos       int
	depth     int
	n         int
	commaIsOr bool
	atom      func(tok string) (T, int, string)
}

func (p *boolParser[T]) errf(pos int, format string, args ...any) *Error {
	return badData("%s: character %d: %s", p.what, utf8.RuneCountInString(p.s[:min(pos, len(p.s))])+1, fmt.Sprintf(format, args...))
}

func (p *boolParser[T]) parse() (boolNode[T], error) {
	if len(p.s) > MaxSelectionLength {
		return boolNode[T]{}, badData("%s: longer than %d bytes (%d)", p.what, MaxSelectionLength, len(p.s))
	}
	if !utf8.ValidString(p.s) {
		return boolNode[T]{}, badData("%s: not valid UTF-8", p.what)
	}
	if strings.TrimSpace(p.s) == "" {
		return boolNode[T]{}, badData("%s: empty", p.what)
	}
	n, err := p.parseOr()
	if err != nil {
		return n, err
	}
	if c := p.peek(); c != 0 {
		if c == ')' {
			return n, p.errf(p.pos, "')' without a matching '('")
		}
		return n, p.errf(p.pos, "unexpected %q", c)
	}
	return n, nil
}

func (p *boolParser[T]) peek() byte {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *boolParser[T]) isOr(c byte) bool { return c == '|' || c == ',' && p.commaIsOr }

func (p *boolParser[T]) parseOr() (boolNode[T], error) {
	n, err := p.parseAnd()
	if err != nil {
		return n, err
	}
	for p.isOr(p.peek()) {
		p.pos++
		r, err := p.parseAnd()
		if err != nil {
			return n, err
		}
		n = joinBool('|', n, r)
	}
	return n, nil
}

func (p *boolParser[T]) parseAnd() (boolNode[T], error) {
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
		n = joinBool(';', n, r)
	}
	return n, nil
}

func joinBool[T any](op byte, a, b boolNode[T]) boolNode[T] {
	n := boolNode[T]{op: op}
	for _, x := range [2]boolNode[T]{a, b} {
		if x.op == op {
			n.kids = append(n.kids, x.kids...)
		} else {
			n.kids = append(n.kids, x)
		}
	}
	return n
}

func (p *boolParser[T]) parsePrimary() (boolNode[T], error) {
	c := p.peek()
	switch {
	case c == '(':
		open := p.pos
		if p.depth++; p.depth > MaxQDepth {
			return boolNode[T]{}, p.errf(open, "parentheses nest deeper than %d levels", MaxQDepth)
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
			return n, p.errf(p.pos, "expected ')', found %q", p.s[p.pos])
		}
		p.pos++
		p.depth--
		return n, nil
	case c == 0:
		return boolNode[T]{}, p.errf(p.pos, "expected a %s, found the end", p.atomName())
	case c == ')' || c == ';' || p.isOr(c):
		return boolNode[T]{}, p.errf(p.pos, "expected a %s, found %q", p.atomName(), c)
	}
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '(' || c == ')' || c == ';' || c == '|' || c == ',' || c == ' ' || c == '\t' {
			break
		}
		p.pos++
	}
	if p.pos < len(p.s) && (p.s[p.pos] == '(' || p.s[p.pos] == ',' && !p.commaIsOr) {
		return boolNode[T]{}, p.errf(p.pos, "unexpected %q", p.s[p.pos])
	}
	if p.n++; p.n > maxSelectionAtoms {
		return boolNode[T]{}, p.errf(start, "more than %d %ss", maxSelectionAtoms, p.atomName())
	}
	a, off, reason := p.atom(p.s[start:p.pos])
	if reason != "" {
		return boolNode[T]{}, p.errf(start+off, "%s %s: %s", p.atomName(), strconv.Quote(p.s[start:p.pos]), reason)
	}
	return boolNode[T]{atom: a}, nil
}

func (p *boolParser[T]) atomName() string {
	if p.what == "scopeQ" {
		return "scope"
	}
	return "type"
}
