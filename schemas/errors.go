package schemas

import "errors"

// Sentinel errors of the schemas package. Errors returned by the package wrap
// one of these with context (the model name, the file, the $ref, the reason);
// test with errors.Is.
var (
	// ErrInvalidSchema means that a schema document was refused: it is not
	// JSON, not a JSON object, or gojsonschema could not compile it.
	ErrInvalidSchema = errors.New("schemas: invalid schema")
	// ErrSchemaTooLarge means that a schema document is larger than
	// Options.MaxSchemaBytes.
	ErrSchemaTooLarge = errors.New("schemas: schema too large")
	// ErrRecursiveSchema means that a schema's $refs form a cycle that never
	// descends into the validated document (for example {"$ref": "#"}), which
	// would make validation recurse forever.
	ErrRecursiveSchema = errors.New("schemas: recursive schema")
	// ErrUnresolvedRef means that a $ref names a document that the registry
	// does not hold, or a location that does not exist in it. The registry
	// never fetches a schema over the network or from the file system.
	ErrUnresolvedRef = errors.New("schemas: unresolved $ref")
	// ErrUnsupportedKeyword means that a schema uses a draft 2019-09/2020-12
	// keyword that changes the validation outcome and that the validator
	// (gojsonschema, drafts 4 to 7) would silently ignore.
	ErrUnsupportedKeyword = errors.New("schemas: unsupported keyword")
	// ErrInvalidName means that a model name or type IRI is not acceptable.
	ErrInvalidName = errors.New("schemas: invalid model name")
	// ErrModelNotFound means that no model is registered under a name.
	ErrModelNotFound = errors.New("schemas: model not found")
	// ErrConflict means that a type IRI or a schema $id is already bound to
	// another model.
	ErrConflict = errors.New("schemas: conflict with another model")
	// ErrInvalidDocument means that a keyValues document cannot be validated
	// at all: it holds a value that has no JSON form (NaN, a channel...), an
	// invalid json.Number, or is nested deeper than MaxDocumentDepth.
	ErrInvalidDocument = errors.New("schemas: document cannot be validated")
	// ErrInternal means that the validator failed internally (a recovered
	// panic). It is a bug in Piazza or gojsonschema, never a verdict on the
	// entity.
	ErrInternal = errors.New("schemas: internal validator failure")
)
