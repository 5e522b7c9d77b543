package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/xeipuuv/gojsonschema"
)

// document is a schema document that other schemas may $ref: an embedded
// Smart Data Models file or an operator model's schema. It is immutable.
type document struct {
	// key is the canonical URL of the document (see canonicalURL).
	key string
	// id is the document's "$id" exactly as written, or "".
	id string
	// raw is the document as loaded.
	raw []byte
	// tree is raw decoded (numbers as json.Number); read only.
	tree any
	// owner names where it came from, for error messages.
	owner string
}

// docLookup finds a document by canonical URL.
type docLookup func(key string) *document

// decodeJSON decodes one JSON value with numbers kept as json.Number, as
// gojsonschema expects, and refuses trailing data.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// newDocument decodes a schema document and checks the parts of it that the
// registry relies on: a JSON object, with an absolute "$id" if any.
func newDocument(raw []byte, owner string) (*document, error) {
	tree, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not valid JSON: %v", ErrInvalidSchema, owner, err)
	}
	m, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: a schema must be a JSON object", ErrInvalidSchema, owner)
	}
	d := &document{raw: raw, tree: tree, owner: owner}
	if v, ok := m["$id"]; ok {
		id, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s: \"$id\" must be a string", ErrInvalidSchema, owner)
		}
		key, ok := canonicalURL(id)
		if !ok {
			return nil, fmt.Errorf("%w: %s: \"$id\" %q is not an absolute URL", ErrInvalidSchema, owner, id)
		}
		if _, err := url.Parse(id); err != nil {
			return nil, fmt.Errorf("%w: %s: \"$id\" %q: %v", ErrInvalidSchema, owner, id, err)
		}
		d.id, d.key = id, key
	}
	return d, nil
}

// schemaMapKeywords hold an object whose every value is a schema.
var schemaMapKeywords = []string{"properties", "patternProperties", "definitions", "$defs", "dependencies", "dependentSchemas"}

// schemaKeywords hold one schema.
var schemaKeywords = []string{"additionalProperties", "additionalItems", "contains", "propertyNames", "not", "if", "then", "else", "items"}

// schemaListKeywords hold an array of schemas.
var schemaListKeywords = []string{"allOf", "anyOf", "oneOf", "items", "prefixItems"}

// unsupportedKeywords are the draft 2019-09/2020-12 keywords that change what
// a schema accepts, that gojsonschema does not know and that have no draft-07
// translation (optimize.go translates the others): gojsonschema would ignore
// them and accept documents the author meant to refuse, so schemas using them
// are refused instead.
var unsupportedKeywords = []string{
	"unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains",
	"$dynamicRef", "$recursiveRef",
}

// position is one schema location: a document, the URL form under which
// gojsonschema reaches it (relative $refs resolve against it) and a JSON
// pointer into it.
type position struct {
	doc  *document
	form string
	ptr  string
}

func (p position) String() string { return p.form + "#" + p.ptr }

// analysis walks a schema and every schema location its $refs reach. It
// collects the URL forms under which gojsonschema will ask for documents, and
// refuses a $ref to a document the registry does not hold, a location that
// does not exist, an unsupported keyword, and a $ref cycle that never descends
// into the instance.
type analysis struct {
	root    *document
	lookup  docLookup
	visited map[position]any // position -> schema node
	refs    []position       // positions holding a $ref
	targets map[position]position
	forms   map[string]*document // URL form -> document to preload under it
}

func analyse(root *document, lookup docLookup) (*analysis, error) {
	a := &analysis{
		root:    root,
		lookup:  lookup,
		visited: make(map[position]any),
		targets: make(map[position]position),
		forms:   make(map[string]*document),
	}
	if err := a.walk(position{doc: root, form: root.id}, root.tree); err != nil {
		return nil, err
	}
	if err := a.checkCycles(); err != nil {
		return nil, err
	}
	if err := a.checkExpansion(); err != nil {
		return nil, err
	}
	return a, nil
}

// walk visits the schema node at p and every schema below it.
func (a *analysis) walk(p position, node any) error {
	m, ok := node.(map[string]any)
	if !ok {
		return nil // true/false schemas, or a non-schema that gojsonschema will refuse
	}
	if _, seen := a.visited[p]; seen {
		return nil
	}
	a.visited[p] = node
	for _, k := range unsupportedKeywords {
		if _, ok := m[k]; ok {
			return fmt.Errorf("%w: %q at %s (gojsonschema implements drafts 4 to 7 and would ignore it)", ErrUnsupportedKeyword, k, p)
		}
	}
	if p.ptr != "" {
		if _, ok := m["$id"].(string); ok {
			return fmt.Errorf("%w: nested \"$id\" at %s is not supported; split the document or use JSON pointers", ErrUnsupportedKeyword, p)
		}
	}
	if v, ok := m["$ref"]; ok {
		ref, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: \"$ref\" at %s must be a string", ErrInvalidSchema, p)
		}
		t, tnode, err := a.resolve(p, ref)
		if err != nil {
			return err
		}
		a.refs = append(a.refs, p)
		a.targets[p] = t
		if err := a.walk(t, tnode); err != nil {
			return err
		}
	}
	for _, k := range schemaMapKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			for _, name := range sortedKeys(sub) {
				if err := a.walk(p.child(k, name), sub[name]); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range schemaKeywords {
		if sub, ok := m[k]; ok {
			if err := a.walk(p.child(k), sub); err != nil {
				return err
			}
		}
	}
	for _, k := range schemaListKeywords {
		if list, ok := m[k].([]any); ok {
			for i, sub := range list {
				if err := a.walk(p.child(k, strconv.Itoa(i)), sub); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// child returns the position below p along the given pointer tokens.
func (p position) child(tokens ...string) position {
	var b strings.Builder
	b.WriteString(p.ptr)
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	p.ptr = b.String()
	return p
}

// resolve finds the target of a $ref written at p, the way gojsonschema will:
// relative to the URL form of p's document.
func (a *analysis) resolve(p position, ref string) (position, any, error) {
	where := func(format string, args ...any) error {
		return fmt.Errorf("%w: $ref %q at %s: %s", ErrUnresolvedRef, ref, p, fmt.Sprintf(format, args...))
	}
	ru, err := url.Parse(ref)
	if err != nil {
		return position{}, nil, where("not a URL reference: %v", err)
	}
	var form string
	if p.form == "" {
		if ru.Scheme == "" && ru.Host == "" && ru.Path == "" && ru.RawQuery == "" {
			form = "" // a fragment within a root that has no $id
		} else if ru.IsAbs() {
			u := *ru
			u.Fragment, u.RawFragment = "", ""
			form = u.String()
		} else {
			return position{}, nil, where("a relative reference needs an absolute \"$id\" on the schema")
		}
	} else {
		base, err := url.Parse(p.form)
		if err != nil {
			return position{}, nil, where("base %q: %v", p.form, err)
		}
		u := *base.ResolveReference(ru)
		u.Fragment, u.RawFragment = "", ""
		form = u.String()
	}
	frag := ru.Fragment
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return position{}, nil, where("only JSON pointer fragments are supported, not anchors")
	}

	var doc *document
	switch {
	case form == a.root.id:
		doc = a.root
	default:
		key, ok := canonicalURL(form)
		if !ok {
			return position{}, nil, where("not an absolute URL")
		}
		if key == a.root.key && a.root.key != "" {
			doc = a.root
		} else if doc = a.lookup(key); doc == nil {
			return position{}, nil, where("document %s is not held by the registry (the validator never fetches schemas)", form)
		}
	}
	if form != a.root.id || doc != a.root {
		if prev, ok := a.forms[form]; ok && prev != doc {
			return position{}, nil, where("URL %s names two documents", form)
		}
		a.forms[form] = doc
	}
	node, err := pointerGet(doc.tree, frag)
	if err != nil {
		return position{}, nil, where("%v", err)
	}
	return position{doc: doc, form: form, ptr: frag}, node, nil
}

// pointerGet returns the value at a JSON pointer (RFC 6901, already
// percent-decoded).
func pointerGet(tree any, ptr string) (any, error) {
	if ptr == "" {
		return tree, nil
	}
	node := tree
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, fmt.Errorf("no %q in the document", ptr)
			}
			node = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) || (len(tok) > 1 && tok[0] == '0') {
				return nil, fmt.Errorf("no %q in the document", ptr)
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("no %q in the document", ptr)
		}
	}
	return node, nil
}

// sameInstance lists the schema positions that p applies to the same
// instance value as p itself: its $ref target and its in-place applicators.
// A cycle through these edges never consumes any of the document, so
// validation would recurse forever.
func (a *analysis) sameInstance(p position) []position {
	m, ok := a.visited[p].(map[string]any)
	if !ok {
		return nil
	}
	var out []position
	if t, ok := a.targets[p]; ok {
		out = append(out, t)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := m[k].([]any); ok {
			for i := range list {
				out = append(out, p.child(k, strconv.Itoa(i)))
			}
		}
	}
	for _, k := range []string{"not", "if", "then", "else"} {
		if _, ok := m[k]; ok {
			out = append(out, p.child(k))
		}
	}
	for _, k := range []string{"dependencies", "dependentSchemas"} {
		if deps, ok := m[k].(map[string]any); ok {
			for _, name := range sortedKeys(deps) {
				if _, ok := deps[name].(map[string]any); ok {
					out = append(out, p.child(k, name))
				}
			}
		}
	}
	return out
}

// checkCycles refuses a cycle of same-instance edges. Every such cycle goes
// through a $ref (structural edges only go down the tree), so the search
// starts from the $refs.
func (a *analysis) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	colour := make(map[position]int)
	var stack []position
	var visit func(p position) error
	visit = func(p position) error {
		switch colour[p] {
		case grey:
			i := len(stack) - 1
			for i > 0 && stack[i] != p {
				i--
			}
			chain := make([]string, 0, len(stack)-i+1)
			for _, q := range stack[i:] {
				chain = append(chain, q.String())
			}
			chain = append(chain, p.String())
			return fmt.Errorf("%w: $ref cycle that never descends into the document: %s", ErrRecursiveSchema, strings.Join(chain, " -> "))
		case black:
			return nil
		}
		colour[p] = grey
		stack = append(stack, p)
		for _, q := range a.sameInstance(p) {
			if err := visit(q); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		colour[p] = black
		return nil
	}
	for _, p := range a.refs {
		if err := visit(p); err != nil {
			return err
		}
	}
	return nil
}

// maxExpansion bounds how many subschemas may apply to one value of the
// document. gojsonschema validates a value against every one of them, so
// shared $refs under allOf/anyOf/oneOf can make the work grow exponentially
// with the schema's size (a "billion laughs" of schemas) without any cycle.
const maxExpansion = 10000

// checkExpansion refuses a schema under which more than maxExpansion
// subschemas apply to a single value. It runs after checkCycles, on the
// acyclic graph of same-instance edges.
func (a *analysis) checkExpansion() error {
	count := make(map[position]int, len(a.visited))
	var expand func(p position) int
	expand = func(p position) int {
		if n, ok := count[p]; ok {
			return n
		}
		n := 1
		for _, q := range a.sameInstance(p) {
			n += expand(q)
			if n > maxExpansion {
				n = maxExpansion + 1
				break
			}
		}
		count[p] = n
		return n
	}
	ps := make([]position, 0, len(a.visited))
	for p := range a.visited {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	for _, p := range ps {
		if expand(p) > maxExpansion {
			return fmt.Errorf("%w: more than %d subschemas apply to a single value at %s (shared $refs under allOf/anyOf/oneOf multiply); validation would take too long", ErrInvalidSchema, maxExpansion, p)
		}
	}
	return nil
}

// compileSchema turns a checked document into a gojsonschema schema, with
// every document its $refs reach preloaded under the URL forms they are
// reached by. gojsonschema is given a loader factory that refuses every
// document, so nothing can be fetched even if the analysis missed a $ref.
func compileSchema(root *document, lookup docLookup) (*gojsonschema.Schema, error) {
	return compileWith(root, lookup, true)
}

// compileWith is compileSchema with the rewrites of optimize.go optional
// (benchmarks compare with and without).
func compileWith(root *document, lookup docLookup, rewrite bool) (s *gojsonschema.Schema, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("%w: %s: gojsonschema failed: %v", ErrInvalidSchema, root.owner, p)
		}
	}()
	a, err := analyse(root, lookup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", root.owner, err)
	}
	sl := gojsonschema.NewSchemaLoader()
	sl.Draft = gojsonschema.Draft7 // for $schema URLs it does not know (2019-09, 2020-12)
	sl.AutoDetect = true
	sl.Validate = false

	forms := make([]string, 0, len(a.forms))
	for f := range a.forms {
		forms = append(forms, f)
	}
	sort.Strings(forms)
	for _, f := range forms {
		d := a.forms[f]
		tree, err := decodeJSON(d.raw) // gojsonschema rewrites $refs in place: give it its own copy
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidSchema, d.owner, err)
		}
		if err := prepareTree(tree, d, rewrite); err != nil {
			return nil, fmt.Errorf("%s: %w", root.owner, err)
		}
		if f != d.id {
			// Under another URL form: without "$id", or gojsonschema would
			// register the same $id twice.
			delete(tree.(map[string]any), "$id")
		}
		if err := sl.AddSchema(f, treeLoader(tree)); err != nil {
			return nil, fmt.Errorf("%w: %s: preloading %s: %v", ErrInvalidSchema, root.owner, f, err)
		}
	}
	tree, err := decodeJSON(root.raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidSchema, root.owner, err)
	}
	if err := prepareTree(tree, root, rewrite); err != nil {
		return nil, fmt.Errorf("%s: %w", root.owner, err)
	}
	s, err = sl.Compile(treeLoader(tree))
	if err != nil {
		if errors.Is(err, ErrUnresolvedRef) {
			return nil, fmt.Errorf("%s: %w", root.owner, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidSchema, root.owner, err)
	}
	return s, nil
}

// prepareTree applies the rewrites of optimize.go to a fresh copy of a
// document: the draft 2020-12 translations always (they are semantics), the
// oneOf rewrite when asked (it is speed).
func prepareTree(tree any, d *document, speed bool) error {
	if modernDraft(tree) {
		if err := rewriteModern(tree, d.owner+"#"); err != nil {
			return err
		}
	}
	if speed {
		rewriteExclusiveOneOf(tree)
	}
	return nil
}

// offlineLoader is a gojsonschema loader for an already decoded JSON value,
// whose loader factory refuses every URL: gojsonschema asks the factory of
// the root loader for any $ref it does not hold, and its default factory
// would fetch http(s) URLs and read files.
type offlineLoader struct {
	gojsonschema.JSONLoader // gives JsonSource and JsonReference ("#")
	tree                    any
}

func treeLoader(tree any) offlineLoader {
	return offlineLoader{JSONLoader: gojsonschema.NewGoLoader(nil), tree: tree}
}

func (l offlineLoader) LoadJSON() (any, error) { return l.tree, nil }

func (l offlineLoader) LoaderFactory() gojsonschema.JSONLoaderFactory { return refusingFactory{} }

// refusingFactory makes loaders that fail: the registry never fetches.
type refusingFactory struct{}

func (refusingFactory) New(source string) gojsonschema.JSONLoader {
	return refusedLoader{JSONLoader: gojsonschema.NewGoLoader(nil), source: source}
}

type refusedLoader struct {
	gojsonschema.JSONLoader
	source string
}

func (l refusedLoader) LoadJSON() (any, error) {
	return nil, fmt.Errorf("%w: %s is not held by the registry (the validator never fetches schemas)", ErrUnresolvedRef, l.source)
}

// sortedKeys returns the keys of m in order, so that walks are deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// escapePointer escapes one JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
