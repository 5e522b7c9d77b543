package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
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
		if err := rewriteModern(tree, nil); err != nil {
			return fmt.Errorf("%s: %w", d.owner, err)
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
