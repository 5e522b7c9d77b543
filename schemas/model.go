package schemas

import (
	"fmt"

	"github.com/xeipuuv/gojsonschema"
)

// Source values of the models that are not read from a file.
const (
	// SourceEmbedded marks a Smart Data Model built into Piazza.
	SourceEmbedded = "embedded"
	// SourceAPI marks a model added at run time with Registry.Put.
	SourceAPI = "api"
)

// Model is one data model: an entity type and its compiled JSON Schema. Its
// exported fields marshal to JSON as a listing entry (name, typeIRI, source,
// id, title); the schema itself is Schema().
//
// A *Model is immutable once a Registry returns it (its fields must not be
// changed) and safe for concurrent use; replacing a model in the registry
// makes a new *Model, so a caller holding the old one keeps a consistent
// view.
type Model struct {
	// Name is the short type name, e.g. "AirQualityObserved"; unique in a
	// registry.
	Name string `json:"name"`
	// TypeIRI is the expanded type the model applies to, e.g.
	// "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved".
	TypeIRI string `json:"typeIRI"`
	// Source says where the schema came from: SourceEmbedded, the path of a
	// file in Options.Dir, or SourceAPI.
	Source string `json:"source"`
	// ID is the schema's "$id", or "" if it has none.
	ID string `json:"id,omitempty"`
	// Title is the schema's "title", or "".
	Title string `json:"title,omitempty"`

	raw    []byte
	doc    *document
	schema *gojsonschema.Schema
	base   gojsonschema.JSONLoader
}

// Schema returns the schema document as loaded, byte for byte. The slice is
// a copy that belongs to the caller.
func (m *Model) Schema() []byte {
	return append([]byte(nil), m.raw...)
}

// Validate checks a keyValues (simplified) document against the model. It
// returns nil, nil when the document is valid, and otherwise every violation,
// sorted by pointer. kv is read, never modified or kept (a nil map is an
// empty document); it may hold the values encoding/json decodes to (with or
// without UseNumber), Go integers, and any other value with a JSON form
// (slower).
//
// The error is not a verdict on the document: it is ErrInvalidDocument for a
// value that has no JSON form or is nested too deep, and ErrInternal when the
// validator itself fails (a panic inside it is recovered and reported).
func (m *Model) Validate(kv map[string]any) (vs []Violation, err error) {
	defer func() {
		if p := recover(); p != nil {
			vs, err = nil, fmt.Errorf("%w: model %s: %v", ErrInternal, m.Name, p)
		}
	}()
	var doc any = map[string]any{}
	if kv != nil {
		doc, _, err = toInstance(kv, 0)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
	}
	res, err := m.schema.Validate(instanceLoader{JSONLoader: m.base, doc: doc})
	if err != nil {
		return nil, fmt.Errorf("%w: model %s: %v", ErrInternal, m.Name, err)
	}
	if res.Valid() {
		return nil, nil
	}
	vs, err = violations(res.Errors())
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	if len(vs) == 0 {
		// Only an allOf summary: should not happen, but never call an
		// invalid document valid.
		vs = []Violation{{Keyword: "allOf", Message: "must match all the schemas in allOf"}}
	}
	return vs, nil
}

// instanceLoader hands an already converted document to gojsonschema.
type instanceLoader struct {
	gojsonschema.JSONLoader
	doc any
}

func (l instanceLoader) LoadJSON() (any, error) { return l.doc, nil }
