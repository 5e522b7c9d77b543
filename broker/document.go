package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
)

// Documents: entities read from files rather than requests, for tools such
// as `piazza validate`. A document is one entity or an array of them, in
// any of the three representations, each with its own @context (JSON-LD)
// or none (the core context, as with application/json and no Link header).

// DocumentOptions configure a DocumentReader. The zero value reads with the
// core context and the built-in Smart Data Models contexts, fetches other
// contexts over the network with a 5 s timeout, and detects keyValues per
// entity.
type DocumentOptions struct {
	// KeyValues reads every entity as keyValues (simplified). Without it,
	// an entity none of whose members looks like an NGSI-LD attribute (an
	// object with a type such as "Property", or a value, object,
	// languageMap, vocab, valueList, objectList or json member) is read as
	// keyValues, and any other as normalized or concise; but if it has no
	// attribute with an NGSI-LD type and does not read as concise, it is
	// read as keyValues if it can be.
	KeyValues bool
	// ContextFiles serves @context URLs from local files.
	ContextFiles map[string]string
	// ContextTimeout bounds each fetch of a remote @context (default 5s).
	ContextTimeout time.Duration
	// Offline refuses to fetch @context documents that are neither built in
	// nor in ContextFiles.
	Offline bool
	// Logger receives context fetch failures; nil discards them.
	Logger *slog.Logger
}

// DocumentReader turns decoded JSON documents into entities. It caches the
// @context documents it resolves, so one reader should serve all the files
// of a run. It is safe for concurrent use.
type DocumentReader struct {
	opts   DocumentOptions
	loader *jsonld.Loader
}

// NewDocumentReader builds a reader.
func NewDocumentReader(o DocumentOptions) *DocumentReader {
	return &DocumentReader{opts: o, loader: jsonld.NewLoader(jsonld.LoaderOptions{
		Files: o.ContextFiles, Timeout: o.ContextTimeout, Offline: o.Offline, Logger: o.Logger,
		Builtin: schemas.Contexts(),
	})}
}

// DocumentEntity is one entity of a document, or the reason it could not
// be read.
type DocumentEntity struct {
	// Index is the entity's position in the document's array (0 for a
	// document that is a single entity).
	Index int
	// ID is the entity's "id" member as written, "" if it has none.
	ID string
	// KeyValues tells whether the entity was read as keyValues.
	KeyValues bool
	// Entity is the entity read (nil if Err is set).
	Entity *Entity
	// Err says why the entity could not be read: an *Error of kind
	// ErrBadRequestData, or ErrLdContextNotAvailable for an @context that
	// could not be fetched.
	Err error
}

// Read reads the entities of a document decoded with DecodeJSON (or
// encoding/json): an object or an array of objects. Each entity is read on
// its own, so one bad entity does not hide the others. The error is for a
// document that is neither an object nor an array.
func (d *DocumentReader) Read(ctx context.Context, v any) ([]DocumentEntity, error) {
	switch x := v.(type) {
	case map[string]any:
		return []DocumentEntity{d.entity(ctx, 0, x)}, nil
	case []any:
		out := make([]DocumentEntity, len(x))
		for i, el := range x {
			m, ok := el.(map[string]any)
			if !ok {
				out[i] = DocumentEntity{Index: i, Err: badData("element %d is %s, not an entity (a JSON object)", i, jsonKind(el))}
				continue
			}
			out[i] = d.entity(ctx, i, m)
		}
		return out, nil
	}
	return nil, badData("a document must be an entity (a JSON object) or an array of entities, not %s", jsonKind(v))
}

func (d *DocumentReader) entity(ctx context.Context, i int, m map[string]any) DocumentEntity {
	de := DocumentEntity{Index: i, KeyValues: d.opts.KeyValues || !hasAttrForm(m)}
	de.ID, _ = m["id"].(string)
	c := jsonld.Core()
	if raw, ok := m["@context"]; ok {
		var err error
		if c, err = d.loader.Load(ctx, raw); err != nil {
			if errors.Is(err, jsonld.ErrContextNotAvailable) {
				de.Err = &Error{Kind: ErrLdContextNotAvailable, Entity: de.ID, Detail: "@context: " + err.Error(), Cause: err}
			} else {
				de.Err = &Error{Kind: ErrBadRequestData, Entity: de.ID, Detail: "@context: " + err.Error(), Cause: err}
			}
			return de
		}
	}
	o := ParseOptions{Names: contextNames{c}, KeyValues: de.KeyValues}
	de.Entity, de.Err = ParseEntity(m, o)
	if de.Err != nil && !d.opts.KeyValues && !de.KeyValues && !hasTypedAttr(m) {
		// Only members such as {"value": ...} made it look concise, and it
		// does not read as concise: a keyValues entity whose values are
		// objects with a "value" member (SDMX dimensions, for one).
		o.KeyValues = true
		if e, err := ParseEntity(m, o); err == nil {
			de.Entity, de.Err, de.KeyValues = e, nil, true
		}
	}
	if de.Err != nil {
		de.Entity = nil
	}
	return de
}

// hasAttrForm reports whether any member of an entity looks like an
// NGSI-LD attribute in normalized or concise form.
func hasAttrForm(m map[string]any) bool {
	return anyAttr(m, looksLikeAttr)
}

// hasTypedAttr reports whether any member of an entity is an attribute
// with its NGSI-LD type ("Property", "Relationship"...): the normalized
// form, which no keyValues value is likely to imitate.
func hasTypedAttr(m map[string]any) bool {
	return anyAttr(m, func(a map[string]any) bool {
		t, ok := a["type"].(string)
		return ok && attrTypeByName(t) != 0
	})
}

// anyAttr reports whether test holds for a member of an entity that is an
// object, or for every element of a member that is an array of objects.
func anyAttr(m map[string]any, test func(map[string]any) bool) bool {
	for k, v := range m {
		if entityMembers[k] {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			if test(x) {
				return true
			}
		case []any:
			all := len(x) > 0
			for _, el := range x {
				a, ok := el.(map[string]any)
				all = all && ok && test(a)
			}
			if all {
				return true
			}
		}
	}
	return false
}

// contextNames are the Names of a document read with a JSON-LD context:
// canonical names are IRIs compacted with the core context alone (as the
// API reads requests).
type contextNames struct{ c *jsonld.Context }

func (n contextNames) Canon(term string) string {
	core := jsonld.Core()
	if n.c == core || n.c.IsCoreOnly() {
		return core.Compact(core.Expand(term))
	}
	return core.Compact(n.c.Expand(term))
}

func (n contextNames) Term(name string) string {
	core := jsonld.Core()
	if n.c == core || n.c.IsCoreOnly() {
		return core.Compact(core.Expand(name))
	}
	return n.c.Compact(core.Expand(name))
}

// ModelCheck is the verdict of one data model on an entity.
type ModelCheck struct {
	// Type is the entity type (canonical name) the model applies to.
	Type string
	// Model names the data model; "" when no model applies to Type.
	Model string
	// Violations are the model's objections, sorted by pointer; none when
	// the entity matches.
	Violations []schemas.Violation
}

// CheckModels validates an entity against the data model of each of its
// types that has one in reg, as the write path does: the keyValues
// projection, with the type's short name. It reports every type, with or
// without a model, in the entity's order, and applies no policy. The error
// means that the validator could not judge the entity (ErrInternal).
func CheckModels(reg *schemas.Registry, e *Entity) ([]ModelCheck, error) {
	out := make([]ModelCheck, 0, len(e.Types))
	var kv map[string]any
	for _, t := range e.Types {
		mc := ModelCheck{Type: t}
		m, ok := reg.Lookup(jsonld.Core().Expand(t))
		if ok {
			if kv == nil {
				kv = KeyValues(e)
			}
			kv["type"] = shortName(t)
			vs, err := m.Validate(kv)
			if err != nil {
				return nil, fmt.Errorf("%w: validating %s against %s: %v", ErrInternal, e.ID, m.Name, err)
			}
			mc.Model, mc.Violations = m.Name, vs
		}
		out = append(out, mc)
	}
	return out, nil
}
