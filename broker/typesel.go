package broker

import "slices"

// This file is the NGSI-LD Entity Type Selection Language (GS CIM 009
// V1.9.1, clause 4.17; the type parameter of clause 6.4):
//
//	Selection = And *(("|" / ",") And)   ; either
//	And       = Primary *(";" Primary)   ; both (binds tighter)
//	Primary   = "(" Selection ")" / Type
//
// "A,B" and "A|B" select entities of type A or B; "(A;B)" (or "A;B") those
// that have both types; "(A;B)|C" combines them. Types are terms of the
// request's @context, expanded with Names.Canon. "*" alone selects every
// type.

// TypeSelection is a parsed type selection. It is immutable and safe for
// concurrent use.
type TypeSelection struct {
	src   string
	all   bool
	root  boolNode[string]
	anyOf []string
}

// ParseTypeSelection parses the type parameter. names expands the terms (nil
// means CanonicalNames). A malformed selection is an *Error of kind
// ErrBadRequestData whose Detail gives the character position and reason.
func ParseTypeSelection(s string, names Names) (*TypeSelection, error) {
	if names == nil {
		names = CanonicalNames
	}
	if s == "*" {
		return &TypeSelection{src: s, all: true}, nil
	}
	p := &boolParser[string]{what: "type", s: s, commaIsOr: true, atom: func(tok string) (string, int, string) {
		if tok == "*" {
			return "", 0, "'*' selects every type and stands alone"
		}
		if !validName(tok) {
			return "", 0, "not a valid type name"
		}
		return names.Canon(tok), 0, ""
	}}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	t := &TypeSelection{src: s, root: root, anyOf: candidates(&root)}
	return t, nil
}

// candidates returns types of which every match has at least one: for an
// OR, the union of its branches' candidates; for an AND, the smallest
// candidate set among its branches.
func candidates(n *boolNode[string]) []string {
	switch n.op {
	case 0:
		return []string{n.atom}
	case '|':
		var out []string
		for i := range n.kids {
			for _, c := range candidates(&n.kids[i]) {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
		return out
	}
	var best []string
	for i := range n.kids {
		if c := candidates(&n.kids[i]); best == nil || len(c) < len(best) {
			best = c
		}
	}
	return best
}

// String returns the text the selection was parsed from.
func (t *TypeSelection) String() string { return t.src }

// All reports whether the selection is "*" (every type). A nil
// TypeSelection also selects every type.
func (t *TypeSelection) All() bool { return t == nil || t.all }

// Match reports whether an entity with the given canonical types is
// selected.
func (t *TypeSelection) Match(types []string) bool {
	if t.All() {
		return true
	}
	return t.root.eval(func(name string) bool { return slices.Contains(types, name) })
}

// AnyOf returns candidate types for a type index: every selected entity has
// at least one of them. It returns nil when All is true. The caller must not
// modify the slice.
func (t *TypeSelection) AnyOf() []string {
	if t.All() {
		return nil
	}
	return t.anyOf
}

// Types returns every canonical type the selection names, in order of
// appearance (for discovery and for error messages).
func (t *TypeSelection) Types() []string {
	if t.All() {
		return nil
	}
	var out []string
	t.root.atoms(func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	})
	return out
}
