package jsonld

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MaxRemoteDepth is how deeply remote contexts may nest (a context document
// whose @context names another URL, and so on) before loading fails with
// ErrInvalidContext.
const MaxRemoteDepth = 10

// MaxRemoteRefs is how many remote context references one Load may follow in
// total (counting repeats), a bound on the work a single @context can cause.
const MaxRemoteRefs = 256

// activeContext is the mutable state of context processing.
type activeContext struct {
	terms map[string]termDef
	vocab string
	base  string
}

// fromCore returns a fresh active context holding the core definitions.
func fromCore() *activeContext {
	c := Core()
	return &activeContext{terms: maps.Clone(c.terms), vocab: c.vocab}
}

// documentSource resolves a context URL to the value of its document's
// "@context" entry; expires is when that value must be fetched again (zero:
// never). The Loader implements it.
type documentSource interface {
	document(ctx context.Context, u string) (value any, expires time.Time, err error)
}

// processor runs the JSON-LD context processing algorithm for one Load.
type processor struct {
	ctx     context.Context
	docs    documentSource // nil: remote references are an error
	active  *activeContext
	initial func() *activeContext // what a null @context resets to
	stack   []string              // remote contexts being processed (cycle detection)
	refs    int                   // remote references followed so far
	expires time.Time             // earliest expiry of the documents used

	// pristine: active is a fresh copy of the core (a null needs no reset);
	// coreOnTop: nothing changed since the core was last applied (applying
	// it again is a no-op). They keep hostile arrays of nulls or of core
	// URLs linear in their length.
	pristine, coreOnTop bool
}

func newProcessor(ctx context.Context, docs documentSource) *processor {
	return &processor{ctx: ctx, docs: docs, active: fromCore(), initial: fromCore, pristine: true, coreOnTop: true}
}

// finish applies the core context last and builds the immutable Context.
func (p *processor) finish(source any) *Context {
	p.applyCore()
	c := Core()
	a := p.active
	if a.vocab == c.vocab && a.base == "" && maps.Equal(a.terms, c.terms) {
		return &Context{terms: c.terms, inverse: c.inverse, prefixes: c.prefixes, vocab: c.vocab, source: source, coreOnly: true, memo: newNameMemo()}
	}
	return newContext(a, source)
}

// applyCore (re)applies the core definitions over the active context.
func (p *processor) applyCore() {
	if p.coreOnTop {
		return
	}
	p.coreOnTop = true
	c := Core()
	maps.Copy(p.active.terms, c.terms)
	p.active.vocab = c.vocab
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidContext}, args...)...)
}

// process applies one @context value; docURL is the URL of the document it
// came from ("" for an in-body value).
func (p *processor) process(v any, docURL string) error {
	switch v := v.(type) {
	case nil:
		if !p.pristine {
			p.active = p.initial()
			p.pristine, p.coreOnTop = true, true
		}
		return nil
	case string:
		return p.processRef(v, docURL)
	case map[string]any:
		return p.processObject(v, docURL)
	case []any:
		for _, e := range v {
			switch e.(type) {
			case []any, []string:
				return invalid("an @context array may not hold an array")
			}
			if err := p.process(e, docURL); err != nil {
				return err
			}
		}
		return nil
	case []string:
		for _, e := range v {
			if err := p.processRef(e, docURL); err != nil {
				return err
			}
		}
		return nil
	default:
		return invalid("an @context must be a URL, an object, an array or null, not %s", jsonKind(v))
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// resolveRef turns a context reference into an absolute http(s)-style URL
// string, resolving relative references against the referring document.
func resolveRef(ref, docURL string) (string, error) {
	if ref == "" {
		return "", invalid("empty context URL")
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", invalid("context URL %q: %v", ref, err)
	}
	if u.IsAbs() {
		return ref, nil
	}
	if docURL == "" {
		return "", invalid("context reference %q is not an absolute URL", ref)
	}
	base, err := url.Parse(docURL)
	if err != nil {
		return "", invalid("context URL %q: %v", docURL, err)
	}
	return base.ResolveReference(u).String(), nil
}

func (p *processor) processRef(ref, docURL string) error {
	if IsCoreURL(ref) {
		p.applyCore()
		return nil
	}
	u, err := resolveRef(ref, docURL)
	if err != nil {
		return err
	}
	if IsCoreURL(u) {
		p.applyCore()
		return nil
	}
	if slices.Contains(p.stack, u) {
		return invalid("recursive context inclusion: %s includes itself (via %s)", u, strings.Join(p.stack, " -> "))
	}
	if len(p.stack) >= MaxRemoteDepth {
		return invalid("remote contexts nested more than %d deep at %s", MaxRemoteDepth, u)
	}
	p.refs++
	if p.refs > MaxRemoteRefs {
		return invalid("more than %d remote context references", MaxRemoteRefs)
	}
	if p.docs == nil {
		return invalid("remote context %s not allowed here", u)
	}
	p.pristine, p.coreOnTop = false, false
	if err := p.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrContextNotAvailable, u, err)
	}
	doc, expires, err := p.docs.document(p.ctx, u)
	if err != nil {
		return err
	}
	if !expires.IsZero() && (p.expires.IsZero() || expires.Before(p.expires)) {
		p.expires = expires
	}
	p.stack = append(p.stack, u)
	err = p.process(doc, u)
	p.stack = p.stack[:len(p.stack)-1]
	if err != nil {
		return fmt.Errorf("%w (in %s)", err, u)
	}
	return nil
}

// processObject applies a local context object (JSON-LD 1.1 Context
// Processing, step 5.5 onwards).
func (p *processor) processObject(m map[string]any, docURL string) error {
	remote := len(p.stack) > 0
	p.pristine, p.coreOnTop = false, false
	if imp, ok := m["@import"]; ok {
		merged, err := p.importContext(imp, m, docURL)
		if err != nil {
			return err
		}
		m = merged
	}
	if _, ok := m["@context"]; ok {
		return invalid("a context may not define @context (keyword redefinition)")
	}
	if v, ok := m["@version"]; ok {
		if f, isNum := v.(float64); !isNum || f != 1.1 {
			return invalid("@version must be the number 1.1, not %v", v)
		}
	}
	for _, k := range []string{"@protected", "@propagate"} {
		if v, ok := m[k]; ok {
			if _, isBool := v.(bool); !isBool {
				return invalid("%s must be true or false, not %s", k, jsonKind(v))
			}
		}
	}
	if v, ok := m["@base"]; ok && !remote {
		switch b := v.(type) {
		case nil:
			p.active.base = ""
		case string:
			u, err := url.Parse(b)
			if err != nil {
				return invalid("@base %q: %v", b, err)
			}
			if !u.IsAbs() {
				if p.active.base == "" {
					return invalid("@base %q is relative and there is no base to resolve it against", b)
				}
				bu, err := url.Parse(p.active.base)
				if err != nil {
					return invalid("@base %q: %v", p.active.base, err)
				}
				b = bu.ResolveReference(u).String()
			}
			p.active.base = b
		default:
			return invalid("@base must be a string or null, not %s", jsonKind(v))
		}
	}
	if v, ok := m["@vocab"]; ok {
		switch s := v.(type) {
		case nil:
			p.active.vocab = ""
		case string:
			if s == "" {
				p.active.vocab = p.active.base
				break
			}
			iri, err := p.expandIRI(s, nil, nil)
			if err != nil {
				return err
			}
			if !isAbsolute(iri) || isKeyword(iri) {
				return invalid("@vocab %q is not an absolute IRI", s)
			}
			p.active.vocab = iri
		default:
			return invalid("@vocab must be a string or null, not %s", jsonKind(v))
		}
	}
	defined := make(map[string]bool, len(m))
	for _, term := range slices.Sorted(maps.Keys(m)) {
		if err := p.createTerm(m, term, defined); err != nil {
			return err
		}
	}
	return nil
}

// importContext implements "@import": the referenced document's @context
// must be an object without its own @import; the importing object's entries
// override it.
func (p *processor) importContext(imp any, m map[string]any, docURL string) (map[string]any, error) {
	ref, ok := imp.(string)
	if !ok {
		return nil, invalid("@import must be a URL string, not %s", jsonKind(imp))
	}
	u, err := resolveRef(ref, docURL)
	if err != nil {
		return nil, err
	}
	var doc any
	if IsCoreURL(u) {
		doc = coreObject()
	} else {
		if p.docs == nil {
			return nil, invalid("@import of %s not allowed here", u)
		}
		if slices.Contains(p.stack, u) {
			return nil, invalid("recursive @import of %s", u)
		}
		p.refs++
		if p.refs > MaxRemoteRefs {
			return nil, invalid("more than %d remote context references", MaxRemoteRefs)
		}
		var expires time.Time
		doc, expires, err = p.docs.document(p.ctx, u)
		if err != nil {
			return nil, err
		}
		if !expires.IsZero() && (p.expires.IsZero() || expires.Before(p.expires)) {
			p.expires = expires
		}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, invalid("@import %s: the imported @context must be an object, not %s", u, jsonKind(doc))
	}
	if _, nested := obj["@import"]; nested {
		return nil, invalid("@import %s: the imported context itself uses @import", u)
	}
	merged := make(map[string]any, len(obj)+len(m))
	maps.Copy(merged, obj)
	for k, v := range m {
		if k != "@import" {
			merged[k] = v
		}
	}
	return merged, nil
}

// coreObject returns the core document's @context object (parsed anew: the
// caller only reads it).
func coreObject() map[string]any {
	obj, _ := parseDocument(CoreContextURL, coreDocument)
	m, _ := obj.(map[string]any)
	return m
}

// createTerm implements JSON-LD 1.1 Create Term Definition for term of the
// local context m; defined tracks terms done (true) and in progress (false).
func (p *processor) createTerm(m map[string]any, term string, defined map[string]bool) error {
	if done, ok := defined[term]; ok {
		if done {
			return nil
		}
		return invalid("cyclic IRI mapping involving term %q", term)
	}
	if term == "" {
		return invalid("a term may not be the empty string")
	}
	if term[0] == '@' {
		// Keywords are handled by processObject; other names of keyword
		// form are ignored as JSON-LD 1.1 requires.
		defined[term] = true
		return nil
	}
	defined[term] = false

	var (
		idVal             any
		hasID             bool
		typVal            any
		hasType           bool
		simple            bool
		explicitPrefix    bool
		hasExplicitPrefix bool
	)
	switch v := m[term].(type) {
	case nil:
		delete(p.active.terms, term)
		defined[term] = true
		return nil
	case string:
		idVal, hasID, simple = v, true, true
	case map[string]any:
		if id, ok := v["@id"]; ok {
			idVal, hasID = id, true
		} else if r, ok := v["@reverse"]; ok {
			idVal, hasID = r, true
		}
		typVal, hasType = v["@type"]
		if pf, ok := v["@prefix"]; ok {
			b, isBool := pf.(bool)
			if !isBool {
				return invalid("term %q: @prefix must be true or false", term)
			}
			explicitPrefix, hasExplicitPrefix = b, true
		}
	default:
		return invalid("term %q: a definition must be a string, an object or null, not %s", term, jsonKind(v))
	}

	var def termDef
	if hasID && idVal == nil {
		// {"@id": null}: explicitly not mapped.
		delete(p.active.terms, term)
		defined[term] = true
		return nil
	}
	id, isString := idVal.(string)
	if hasID && !isString {
		return invalid("term %q: @id must be a string, not %s", term, jsonKind(idVal))
	}
	switch {
	case hasID && id != term:
		if hasKeywordForm(id) {
			if !isKeyword(id) {
				defined[term] = true // unknown keyword form: ignored
				return nil
			}
			if id == "@context" {
				return invalid("term %q: @context may not be aliased", term)
			}
			def.iri = id
			break
		}
		iri, err := p.expandIRI(id, m, defined)
		if err != nil {
			return err
		}
		if !isAbsolute(iri) {
			return invalid("term %q: %q is not an absolute IRI and there is no @vocab", term, id)
		}
		def.iri = iri
	case strings.IndexByte(term, ':') > 0:
		i := strings.IndexByte(term, ':')
		prefix, suffix := term[:i], term[i+1:]
		if prefix != "_" && !strings.HasPrefix(suffix, "//") {
			if _, inLocal := m[prefix]; inLocal {
				if err := p.createTerm(m, prefix, defined); err != nil {
					return err
				}
			}
			if d, ok := p.active.terms[prefix]; ok {
				def.iri = d.iri + suffix
			}
		}
		if def.iri == "" {
			if isAbsolute(term) {
				def.iri = term
			} else if p.active.vocab != "" {
				def.iri = p.active.vocab + term
			} else {
				return invalid("term %q has no IRI and there is no @vocab", term)
			}
		}
	default:
		if p.active.vocab == "" {
			return invalid("term %q has no IRI and there is no @vocab", term)
		}
		def.iri = p.active.vocab + term
	}

	if hasType {
		t, ok := typVal.(string)
		if !ok {
			return invalid("term %q: @type must be a string, not %s", term, jsonKind(typVal))
		}
		switch t {
		case "@id", "@vocab", "@json", "@none":
			def.typ = t
		default:
			if hasKeywordForm(t) {
				return invalid("term %q: invalid @type %q", term, t)
			}
			iri, err := p.expandIRI(t, m, defined)
			if err != nil {
				return err
			}
			if !isAbsolute(iri) {
				return invalid("term %q: @type %q is not an absolute IRI", term, t)
			}
			def.typ = iri
		}
	}

	switch {
	case hasExplicitPrefix:
		def.prefix = explicitPrefix && !strings.ContainsAny(term, ":/") && !isKeyword(def.iri)
	default:
		def.prefix = simple && !strings.ContainsAny(term, ":/") &&
			(endsWithGenDelim(def.iri) || strings.HasPrefix(def.iri, "_:")) && !isKeyword(def.iri)
	}
	p.active.terms[term] = def
	defined[term] = true
	return nil
}

// expandIRI is JSON-LD IRI expansion with vocab = true during processing:
// terms of the local context m that value depends on are defined first.
func (p *processor) expandIRI(value string, m map[string]any, defined map[string]bool) (string, error) {
	if hasKeywordForm(value) {
		return value, nil
	}
	if m != nil {
		if _, inLocal := m[value]; inLocal {
			if err := p.createTerm(m, value, defined); err != nil {
				return "", err
			}
		}
	}
	if d, ok := p.active.terms[value]; ok {
		return d.iri, nil
	}
	if i := strings.IndexByte(value, ':'); i > 0 {
		prefix, suffix := value[:i], value[i+1:]
		if prefix == "_" || strings.HasPrefix(suffix, "//") {
			return value, nil
		}
		if m != nil {
			if _, inLocal := m[prefix]; inLocal {
				if err := p.createTerm(m, prefix, defined); err != nil {
					return "", err
				}
			}
		}
		if d, ok := p.active.terms[prefix]; ok && d.prefix {
			return d.iri + suffix, nil
		}
		if isScheme(prefix) {
			return value, nil
		}
	}
	if p.active.vocab != "" {
		return p.active.vocab + value, nil
	}
	return value, nil
}
