package schemas

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// position identifies one schema object: a document, the URL form under
// which gojsonschema reaches it (relative $refs resolve against it), and the
// decoded JSON object itself (by identity, so that no JSON pointer string has
// to be built on the way: the analysis stays linear in the document size).
type position struct {
	doc  *document
	form string
	node uintptr
}

// posInfo is what the analysis knows of a visited position. Its JSON pointer
// is built only for messages, from the parent chain.
type posInfo struct {
	node   map[string]any
	parent *posInfo
	token  string // the pointer tokens from parent, escaped: "/properties/a"
	ptr    string // the JSON pointer, for a position without parent
	form   string
}

func (i *posInfo) pointer() string {
	if i.parent == nil {
		return i.ptr
	}
	return i.parent.pointer() + i.token
}

// String renders the position as URL#pointer, cut to a readable length.
func (i *posInfo) String() string {
	s := i.form + "#" + i.pointer()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func nodeID(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }

// analysis walks a schema and every schema location its $refs reach. It
// collects the URL forms under which gojsonschema will ask for documents, and
// refuses a $ref to a document the registry does not hold, a location that
// does not exist, an unsupported keyword, a nesting deeper than
// maxSchemaDepth, a $ref cycle that never descends into the instance, and a
// schema under which too many subschemas apply to one value.
type analysis struct {
	root    *document
	lookup  docLookup
	visited map[position]*posInfo
	order   []position // visited positions, in visiting order
	refs    []position // positions holding a $ref to a schema object
	targets map[position]position
	forms   map[string]*document // URL form -> document to preload under it
}

// maxSchemaDepth bounds how deeply schemas nest in a document (the Smart Data
// Models nest about 10 deep); it keeps every recursion here and in
// gojsonschema shallow.
const maxSchemaDepth = 128

func analyse(root *document, lookup docLookup) (*analysis, error) {
	a := &analysis{
		root:    root,
		lookup:  lookup,
		visited: make(map[position]*posInfo),
		targets: make(map[position]position),
		forms:   make(map[string]*document),
	}
	if err := a.walk(root, root.id, root.tree, nil, "", "", 0); err != nil {
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

// walk visits the schema node (depth levels below its document's root,
// reached from parent through token, or at pointer ptr if parent is nil)
// and every schema below it.
func (a *analysis) walk(doc *document, form string, node any, parent *posInfo, token, ptr string, depth int) error {
	m, ok := node.(map[string]any)
	if !ok {
		return nil // true/false schemas, or a non-schema that gojsonschema will refuse
	}
	p := position{doc: doc, form: form, node: nodeID(m)}
	if _, seen := a.visited[p]; seen {
		return nil
	}
	info := &posInfo{node: m, parent: parent, token: token, ptr: ptr, form: form}
	if depth > maxSchemaDepth {
		return fmt.Errorf("%w: schemas nested deeper than %d levels at %s", ErrInvalidSchema, maxSchemaDepth, info)
	}
	a.visited[p] = info
	a.order = append(a.order, p)
	for _, k := range unsupportedKeywords {
		if _, ok := m[k]; ok {
			return fmt.Errorf("%w: %q at %s (gojsonschema implements drafts 4 to 7 and would ignore it)", ErrUnsupportedKeyword, k, info)
		}
	}
	if parent != nil || ptr != "" {
		if _, ok := m["$id"].(string); ok {
			return fmt.Errorf("%w: nested \"$id\" at %s is not supported; split the document or use JSON pointers", ErrUnsupportedKeyword, info)
		}
	}
	if pat, ok := m["pattern"].(string); ok {
		if _, err := regexp.Compile(pat); err != nil {
			return fmt.Errorf("%w: pattern at %s: %v (patterns use Go's RE2 syntax: no lookaround, no backreferences)", ErrInvalidSchema, info, err)
		}
	}
	if pp, ok := m["patternProperties"].(map[string]any); ok {
		for _, pat := range sortedKeys(pp) {
			if _, err := regexp.Compile(pat); err != nil {
				return fmt.Errorf("%w: patternProperties at %s: %v (patterns use Go's RE2 syntax: no lookaround, no backreferences)", ErrInvalidSchema, info, err)
			}
		}
	}
	if v, ok := m["$ref"]; ok {
		ref, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: \"$ref\" at %s must be a string", ErrInvalidSchema, info)
		}
		tdoc, tform, frag, tnode, err := a.resolve(info, ref)
		if err != nil {
			return err
		}
		if tm, ok := tnode.(map[string]any); ok {
			t := position{doc: tdoc, form: tform, node: nodeID(tm)}
			a.refs = append(a.refs, p)
			a.targets[p] = t
			if err := a.walk(tdoc, tform, tm, nil, "", frag, strings.Count(frag, "/")); err != nil {
				return err
			}
		}
	}
	for _, k := range schemaMapKeywords {
		if sub, ok := m[k].(map[string]any); ok {
			for _, name := range sortedKeys(sub) {
				if err := a.walk(doc, form, sub[name], info, "/"+k+"/"+escapePointer(name), "", depth+2); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range schemaKeywords {
		if sub, ok := m[k]; ok {
			if err := a.walk(doc, form, sub, info, "/"+k, "", depth+1); err != nil {
				return err
			}
		}
	}
	for _, k := range schemaListKeywords {
		if list, ok := m[k].([]any); ok {
			for i, sub := range list {
				if err := a.walk(doc, form, sub, info, "/"+k+"/"+strconv.Itoa(i), "", depth+2); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resolve finds the target of a $ref written at info, the way gojsonschema
// will: relative to the URL form of its document. It returns the target's
// document, URL form, JSON pointer and node.
func (a *analysis) resolve(info *posInfo, ref string) (*document, string, string, any, error) {
	where := func(format string, args ...any) error {
		return fmt.Errorf("%w: $ref %.200q at %s: %s", ErrUnresolvedRef, ref, info, fmt.Sprintf(format, args...))
	}
	ru, err := url.Parse(ref)
	if err != nil {
		return nil, "", "", nil, where("not a URL reference: %v", err)
	}
	var form string
	if info.form == "" {
		switch {
		case ru.Scheme == "" && ru.Host == "" && ru.Path == "" && ru.RawQuery == "":
			form = "" // a fragment within a root that has no $id
		case ru.IsAbs():
			u := *ru
			u.Fragment, u.RawFragment = "", ""
			form = u.String()
		default:
			return nil, "", "", nil, where("a relative reference needs an absolute \"$id\" on the schema")
		}
	} else {
		base, err := url.Parse(info.form)
		if err != nil {
			return nil, "", "", nil, where("base %q: %v", info.form, err)
		}
		u := *base.ResolveReference(ru)
		u.Fragment, u.RawFragment = "", ""
		form = u.String()
	}
	frag := ru.Fragment
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return nil, "", "", nil, where("only JSON pointer fragments are supported, not anchors")
	}

	var doc *document
	if form == a.root.id {
		doc = a.root
	} else {
		key, ok := canonicalURL(form)
		if !ok {
			return nil, "", "", nil, where("not an absolute URL")
		}
		if key == a.root.key && a.root.key != "" {
			doc = a.root
		} else if doc = a.lookup(key); doc == nil {
			return nil, "", "", nil, where("document %.200s is not held by the registry (the validator never fetches schemas)", form)
		}
	}
	if form != a.root.id || doc != a.root {
		if prev, ok := a.forms[form]; ok && prev != doc {
			return nil, "", "", nil, where("URL %s names two documents", form)
		}
		a.forms[form] = doc
	}
	node, err := pointerGet(doc.tree, frag)
	if err != nil {
		return nil, "", "", nil, where("%v", err)
	}
	return doc, form, frag, node, nil
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
				return nil, fmt.Errorf("no %.200q in the document", ptr)
			}
			node = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) || (len(tok) > 1 && tok[0] == '0') {
				return nil, fmt.Errorf("no %.200q in the document", ptr)
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("no %.200q in the document", ptr)
		}
	}
	return node, nil
}

// sameInstance lists the schema positions that p applies to the same
// instance value as p itself: its $ref target and its in-place applicators.
// A cycle through these edges never consumes any of the document, so
// validation would recurse forever.
func (a *analysis) sameInstance(p position) []position {
	info, ok := a.visited[p]
	if !ok {
		return nil
	}
	m := info.node
	var out []position
	add := func(v any) {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, position{doc: p.doc, form: p.form, node: nodeID(sub)})
		}
	}
	if t, ok := a.targets[p]; ok {
		out = append(out, t)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := m[k].([]any); ok {
			for _, v := range list {
				add(v)
			}
		}
	}
	for _, k := range []string{"not", "if", "then", "else"} {
		add(m[k])
	}
	for _, k := range []string{"dependencies", "dependentSchemas"} {
		if deps, ok := m[k].(map[string]any); ok {
			for _, name := range sortedKeys(deps) {
				add(deps[name])
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
			var chain []string
			for _, q := range append(stack[i:], p) {
				if info := a.visited[q]; info != nil {
					chain = append(chain, info.String())
				}
				if len(chain) > 20 {
					chain = append(chain, "…")
					break
				}
			}
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
	for _, p := range a.order {
		if expand(p) > maxExpansion {
			return fmt.Errorf("%w: more than %d subschemas apply to a single value at %s (shared $refs under allOf/anyOf/oneOf multiply); validation would take too long", ErrInvalidSchema, maxExpansion, a.visited[p])
		}
	}
	return nil
}
