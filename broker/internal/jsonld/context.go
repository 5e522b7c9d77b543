package jsonld

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// CoreContextURL is the URL of the NGSI-LD core context this package builds
// in. It is what the broker puts in Link headers when it answers with the
// core context only.
const CoreContextURL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"

// DefaultVocab is the core context's "@vocab": names that no context defines
// expand to this IRI followed by the name.
const DefaultVocab = "https://uri.etsi.org/ngsi-ld/default-context/"

//go:embed contexts/ngsi-ld-core-context-v1.8.jsonld
var coreDocument []byte

// coreURLs are the URLs that resolve to the built-in core context without
// network access: every published version from 1.3 on and the unversioned
// name, over https and (as some clients write it) http.
var coreURLs = func() map[string]struct{} {
	m := make(map[string]struct{})
	for _, scheme := range []string{"https", "http"} {
		base := scheme + "://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"
		m[base+".jsonld"] = struct{}{}
		for v := 3; v <= 9; v++ {
			m[fmt.Sprintf("%s-v1.%d.jsonld", base, v)] = struct{}{}
		}
	}
	return m
}()

// IsCoreURL reports whether u names an NGSI-LD core context (any version
// from 1.3 to 1.9, or the unversioned URL). Such URLs never cause a fetch.
func IsCoreURL(u string) bool {
	_, ok := coreURLs[u]
	return ok
}

// termDef is one processed term definition.
type termDef struct {
	iri    string // absolute IRI, blank node identifier or keyword
	typ    string // "@id", "@vocab", "@json", "@none", an IRI, or ""
	prefix bool   // usable as the prefix of a compact IRI
}

// prefixDef is a term usable as a compact IRI prefix.
type prefixDef struct {
	term string
	iri  string
}

// Context is a processed @context: the term definitions, the vocabulary
// mapping and the prefixes that expansion and compaction need. A Context is
// immutable once built and safe for concurrent use; the Loader shares one
// Context between all requests that send the same @context.
type Context struct {
	terms    map[string]termDef
	inverse  map[string]string // IRI -> preferred term
	prefixes []prefixDef
	vocab    string
	base     string
	source   any
	coreOnly bool

	// memo holds the answers of FromCore and ToCore (memo.go); it changes
	// no answer, only their cost.
	memo *nameMemo
}

// coreOnce guards coreContext, the processed built-in core context, built on
// first use. It is an immutable value, not mutable global state.
var (
	coreOnce    sync.Once
	coreContext *Context
)

// Core returns the NGSI-LD core context (v1.8), processed once on first use.
// Its Source is CoreContextURL. It is the context of every request that
// sends none. It is safe for concurrent use.
func Core() *Context {
	coreOnce.Do(func() {
		c, err := buildCore()
		if err != nil {
			// The document is embedded and tested: this is a build defect.
			panic("jsonld: built-in core context: " + err.Error())
		}
		coreContext = c
	})
	return coreContext
}

func buildCore() (*Context, error) {
	var doc map[string]any
	if err := json.Unmarshal(coreDocument, &doc); err != nil {
		return nil, err
	}
	p := &processor{active: &activeContext{terms: make(map[string]termDef, 256)}}
	p.initial = func() *activeContext { return &activeContext{terms: make(map[string]termDef)} }
	if err := p.process(doc["@context"], ""); err != nil {
		return nil, err
	}
	c := newContext(p.active, CoreContextURL)
	c.coreOnly = true
	return c, nil
}

// newContext builds the immutable Context from a finished active context.
func newContext(a *activeContext, source any) *Context {
	c := &Context{
		terms:   a.terms,
		inverse: make(map[string]string, len(a.terms)),
		vocab:   a.vocab,
		base:    a.base,
		source:  source,
		memo:    newNameMemo(),
	}
	for term, d := range a.terms {
		if cur, ok := c.inverse[d.iri]; !ok || len(term) < len(cur) || (len(term) == len(cur) && term < cur) {
			c.inverse[d.iri] = term
		}
		if d.prefix && term != "_" {
			c.prefixes = append(c.prefixes, prefixDef{term: term, iri: d.iri})
		}
	}
	return c
}

// Expand returns the IRI of an attribute name, entity type or vocabulary
// value (vocab-relative IRI expansion): a defined term gives its IRI, a
// compact IRI "prefix:suffix" with a defined prefix gives the prefix's IRI
// followed by suffix, an absolute IRI or blank node identifier is returned as
// it is, and anything else is appended to the context's @vocab. Keywords
// (names starting with '@') and "" are returned unchanged. Expand does not
// allocate unless it has to build a new string (a compact IRI or a
// vocab-relative name).
func (c *Context) Expand(term string) string {
	if term == "" || term[0] == '@' {
		return term
	}
	if d, ok := c.terms[term]; ok {
		return d.iri
	}
	if i := strings.IndexByte(term, ':'); i > 0 {
		prefix, suffix := term[:i], term[i+1:]
		if prefix == "_" || strings.HasPrefix(suffix, "//") {
			return term
		}
		if d, ok := c.terms[prefix]; ok && d.prefix {
			return d.iri + suffix
		}
		if isScheme(prefix) {
			return term
		}
	}
	if c.vocab != "" {
		return c.vocab + term
	}
	return term
}

// Compact returns the shortest name that expands back to iri in this
// context: the term whose IRI is iri (the shortest, then the
// lexicographically least); else, when iri starts with @vocab and the rest
// is not a term and holds no ':', '/' or '#', that rest; else the shortest
// compact IRI "prefix:suffix" over the defined prefixes; else iri unchanged.
// Compact(Expand(x)) expands to Expand(x) for every x. Compact does not
// allocate unless it builds a compact IRI.
func (c *Context) Compact(iri string) string {
	if iri == "" {
		return iri
	}
	if t, ok := c.inverse[iri]; ok {
		return t
	}
	if c.vocab != "" && len(iri) > len(c.vocab) && strings.HasPrefix(iri, c.vocab) {
		rest := iri[len(c.vocab):]
		if rest[0] != '@' && !strings.ContainsAny(rest, ":/#") {
			if _, isTerm := c.terms[rest]; !isTerm {
				return rest
			}
		}
	}
	best := ""
	for _, p := range c.prefixes {
		if len(iri) <= len(p.iri) || !strings.HasPrefix(iri, p.iri) {
			continue
		}
		suffix := iri[len(p.iri):]
		if strings.HasPrefix(suffix, "//") {
			continue
		}
		n := len(p.term) + 1 + len(suffix)
		if best != "" && n > len(best) {
			continue
		}
		cand := p.term + ":" + suffix
		if _, isTerm := c.terms[cand]; isTerm {
			continue
		}
		if best == "" || n < len(best) || cand < best {
			best = cand
		}
	}
	if best != "" {
		return best
	}
	return iri
}

// TypeOf returns the "@type" coercion of a term: "@id", "@vocab", "@json",
// "@none", an expanded IRI (the core's "DateTime" terms give
// "https://uri.etsi.org/ngsi-ld/DateTime"), or "" when the term has none or
// is not defined.
func (c *Context) TypeOf(term string) string {
	return c.terms[term].typ
}

// Source returns the @context value as the client sent it (a URL string, an
// object or an array), for echoing back in responses and notifications. The
// value is shared by every request that sent an equal context: callers must
// not modify it.
func (c *Context) Source() any { return c.source }

// IsCoreOnly reports whether the context defines nothing beyond the NGSI-LD
// core context (no @context, the core URL, or contexts that only repeat it).
func (c *Context) IsCoreOnly() bool { return c.coreOnly }

// Vocab returns the vocabulary mapping ("@vocab") that names no term defines
// expand against. After the core context is applied it is DefaultVocab.
func (c *Context) Vocab() string { return c.vocab }

// Base returns the "@base" IRI an in-body context set, or "".
func (c *Context) Base() string { return c.base }

// IsDefined reports whether term has a term definition in the context.
func (c *Context) IsDefined(term string) bool {
	_, ok := c.terms[term]
	return ok
}

// Len returns the number of term definitions in the context.
func (c *Context) Len() int { return len(c.terms) }

// isScheme reports whether s is a URI scheme: ALPHA *( ALPHA / DIGIT / "+" /
// "-" / "." ) (RFC 3986).
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z':
		case i > 0 && ('0' <= ch && ch <= '9' || ch == '+' || ch == '-' || ch == '.'):
		default:
			return false
		}
	}
	return true
}

// isAbsolute reports whether s is a keyword, a blank node identifier or an
// absolute IRI, i.e. something an IRI mapping may hold.
func isAbsolute(s string) bool {
	if isKeyword(s) || strings.HasPrefix(s, "_:") {
		return true
	}
	i := strings.IndexByte(s, ':')
	return i > 0 && isScheme(s[:i])
}

// keywords are the JSON-LD 1.1 keywords.
var keywords = map[string]struct{}{
	"@base": {}, "@container": {}, "@context": {}, "@direction": {}, "@graph": {},
	"@id": {}, "@import": {}, "@included": {}, "@index": {}, "@json": {},
	"@language": {}, "@list": {}, "@nest": {}, "@none": {}, "@prefix": {},
	"@propagate": {}, "@protected": {}, "@reverse": {}, "@set": {}, "@type": {},
	"@value": {}, "@version": {}, "@vocab": {},
}

func isKeyword(s string) bool {
	_, ok := keywords[s]
	return ok
}

// hasKeywordForm reports whether s looks like a keyword: '@' followed by one
// or more ASCII letters. JSON-LD 1.1 ignores terms and IRIs of that form that
// are not keywords.
func hasKeywordForm(s string) bool {
	if len(s) < 2 || s[0] != '@' {
		return false
	}
	for i := 1; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z') {
			return false
		}
	}
	return true
}

// endsWithGenDelim reports whether an IRI ends in one of RFC 3986's
// gen-delims, the JSON-LD 1.1 condition for a simple term to be a prefix.
func endsWithGenDelim(iri string) bool {
	if iri == "" {
		return false
	}
	switch iri[len(iri)-1] {
	case ':', '/', '?', '#', '[', ']', '@':
		return true
	}
	return false
}
