package schemas

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
)

// DefaultMaxSchemaBytes is the default for Options.MaxSchemaBytes.
const DefaultMaxSchemaBytes = 2 << 20

// Options configures a Registry. The zero value is usable: the embedded
// models only, no logging, schemas up to DefaultMaxSchemaBytes.
type Options struct {
	// Dir is a directory of the operator's own schemas, one model per
	// <Name>.json file (not recursive); "" for none. See README.md for how
	// a file's name and type IRI are chosen.
	Dir string
	// Logger receives load and change events; nil discards them.
	Logger *slog.Logger
	// MaxSchemaBytes bounds the size of a schema document read from Dir or
	// given to Put; 0 means DefaultMaxSchemaBytes.
	MaxSchemaBytes int64
}

// Registry maps entity types to compiled data models. It is safe for
// concurrent use: lookups and validations run in parallel with each other and
// with Put and Delete, which are serialised among themselves.
type Registry struct {
	log      *slog.Logger
	maxBytes int64
	// embedded holds the embedded documents by canonical URL; immutable
	// after NewRegistry.
	embedded map[string]*document
	// builtinIRI holds the type IRI of each embedded model by name;
	// immutable after NewRegistry.
	builtinIRI map[string]string

	// change serialises Put and Delete, so that a compile sees a stable set
	// of documents without holding mu.
	change sync.Mutex
	mu     sync.RWMutex
	byName map[string]*Model
	byIRI  map[string]*Model
	// docs holds the schema documents of the models, by canonical $id, so
	// that other schemas may $ref them.
	docs map[string]*document
}

// NewRegistry loads and compiles the embedded models, then the operator's
// schemas in o.Dir. A file that cannot be read or compiled is an error that
// names the file and the reason; a file named like an embedded model replaces
// it.
func NewRegistry(o Options) (*Registry, error) {
	r := &Registry{
		log:        o.Logger,
		maxBytes:   o.MaxSchemaBytes,
		embedded:   make(map[string]*document),
		builtinIRI: make(map[string]string),
		byName:     make(map[string]*Model),
		byIRI:      make(map[string]*Model),
		docs:       make(map[string]*document),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "schemas")
	if r.maxBytes <= 0 {
		r.maxBytes = DefaultMaxSchemaBytes
	}
	if err := r.loadEmbedded(); err != nil {
		return nil, err
	}
	if o.Dir != "" {
		if err := r.loadDir(o.Dir); err != nil {
			return nil, err
		}
	}
	r.log.Info("schema models loaded", "models", len(r.byName), "dir", o.Dir)
	return r, nil
}

// addEmbedded registers an embedded file under its location URL and its $id.
func (r *Registry) addEmbedded(file string) (*document, error) {
	raw, err := models.ReadFile("models/" + file)
	if err != nil {
		return nil, fmt.Errorf("schemas: embedded %s: %w", file, err)
	}
	d, err := newDocument(raw, "embedded "+file)
	if err != nil {
		return nil, err
	}
	loc := embeddedURL(file)
	if d.key == "" {
		d.key = loc
	}
	for _, k := range []string{loc, d.key} {
		if prev, ok := r.embedded[k]; ok && prev != d {
			return nil, fmt.Errorf("%w: embedded %s and %s share the URL %s", ErrConflict, prev.owner, d.owner, k)
		}
		r.embedded[k] = d
	}
	return d, nil
}

func (r *Registry) loadEmbedded() error {
	for _, f := range supportDocs {
		if _, err := r.addEmbedded(f); err != nil {
			return err
		}
	}
	docs := make([]*document, len(builtinModels))
	for i, b := range builtinModels {
		d, err := r.addEmbedded(b.repo + "/" + b.dir + "/schema.json")
		if err != nil {
			return err
		}
		docs[i] = d
	}
	for i, b := range builtinModels {
		iri, err := contextTerm(b.repo, b.name)
		if err != nil {
			return err
		}
		r.builtinIRI[b.name] = iri
		m, err := r.compile(b.name, iri, SourceEmbedded, docs[i], r.lookupEmbedded)
		if err != nil {
			return err
		}
		r.install(m, nil)
	}
	return nil
}

// loadDir loads every *.json file of dir as a model named after the file.
// All the files are registered as documents first, so they may $ref each
// other by $id.
func (r *Registry) loadDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("schemas: schema directory: %w", err)
	}
	type pending struct {
		name, path string
		doc        *document
	}
	var files []pending
	local := make(map[string]*document)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		name := strings.TrimSuffix(e.Name(), ".json")
		if err := checkName(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		raw, err := r.readFile(p)
		if err != nil {
			return err
		}
		d, err := newDocument(raw, p)
		if err != nil {
			return err
		}
		if d.key != "" {
			if prev := r.lookupEmbedded(d.key); prev != nil {
				return fmt.Errorf("%w: %s: \"$id\" %s is the URL of embedded %s", ErrConflict, p, d.id, prev.owner)
			}
			if prev, ok := local[d.key]; ok {
				return fmt.Errorf("%w: %s and %s have the same \"$id\" %s", ErrConflict, prev.owner, p, d.id)
			}
			local[d.key] = d
		}
		files = append(files, pending{name: name, path: p, doc: d})
	}
	lookup := func(key string) *document {
		if d, ok := local[key]; ok {
			return d
		}
		return r.lookupEmbedded(key)
	}
	for _, f := range files {
		iri, err := r.typeIRIFor(f.name, f.doc)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		m, err := r.compile(f.name, iri, f.path, f.doc, lookup)
		if err != nil {
			return err // names the file
		}
		if prev, ok := r.byIRI[iri]; ok && prev.Name != m.Name {
			return fmt.Errorf("%w: %s: type %s is already bound to model %s (%s)", ErrConflict, f.path, iri, prev.Name, prev.Source)
		}
		r.install(m, r.byName[m.Name])
		r.log.Info("schema model loaded from file", "model", m.Name, "type", m.TypeIRI, "file", f.path)
	}
	return nil
}

// readFile reads a schema file, refusing one over the size limit.
func (r *Registry) readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, r.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", p, err)
	}
	if int64(len(raw)) > r.maxBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrSchemaTooLarge, p, r.maxBytes)
	}
	return raw, nil
}

// typeIRIKeyword is the optional top-level annotation with which an
// operator's schema names the expanded type it applies to.
const typeIRIKeyword = "x-ngsi-ld-type"

// typeIRIFor chooses the type IRI of an operator model read from a file: the
// schema's x-ngsi-ld-type annotation, else the IRI of the embedded model of
// the same name (the file replaces it), else the default vocabulary IRI.
func (r *Registry) typeIRIFor(name string, d *document) (string, error) {
	if v, ok := d.tree.(map[string]any)[typeIRIKeyword]; ok {
		iri, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: %q must be a string", ErrInvalidName, typeIRIKeyword)
		}
		return iri, checkIRI(iri)
	}
	return r.defaultTypeIRI(name), nil
}

func (r *Registry) defaultTypeIRI(name string) string {
	if iri, ok := r.builtinIRI[name]; ok {
		return iri
	}
	return DefaultContextIRI + name
}

func (r *Registry) lookupEmbedded(key string) *document { return r.embedded[key] }

// compile builds a model from a checked document.
func (r *Registry) compile(name, iri, source string, d *document, lookup docLookup) (*Model, error) {
	s, err := compileSchema(d, lookup)
	if err != nil {
		return nil, err
	}
	title, _ := d.tree.(map[string]any)["title"].(string)
	return &Model{
		Name:    name,
		TypeIRI: iri,
		Source:  source,
		ID:      d.id,
		Title:   title,
		raw:     d.raw,
		doc:     d,
		schema:  s,
		base:    gojsonschema.NewGoLoader(nil),
	}, nil
}

// install makes m current, replacing prev (the model of the same name, or
// nil). The caller holds change (or is NewRegistry).
func (r *Registry) install(m, prev *Model) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev != nil {
		if r.byIRI[prev.TypeIRI] == prev {
			delete(r.byIRI, prev.TypeIRI)
		}
		if prev.Source != SourceEmbedded && prev.doc.key != "" && r.docs[prev.doc.key] == prev.doc {
			delete(r.docs, prev.doc.key)
		}
	}
	r.byName[m.Name] = m
	r.byIRI[m.TypeIRI] = m
	if m.Source != SourceEmbedded && m.doc.key != "" {
		r.docs[m.doc.key] = m.doc
	}
}

// Put adds a model at run time, or replaces the model of the same name
// (embedded ones included). typeIRI "" means the schema's "x-ngsi-ld-type"
// if it has one, else the IRI of the embedded model of that name, if any,
// else the default vocabulary IRI of name. The schema is
// refused, with an error that says why, if it is not a JSON object, is
// larger than MaxSchemaBytes, $refs a document the registry does not hold
// (the embedded Smart Data Models documents and the other models' schemas by
// their $id), has a $ref cycle that never descends into the document, uses a
// draft 2020-12 keyword that the validator would ignore, or does not compile.
// The model lives in memory only: persisting it is the caller's business.
func (r *Registry) Put(name, typeIRI string, schema []byte) (m *Model, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if typeIRI != "" {
		if err := checkIRI(typeIRI); err != nil {
			return nil, err
		}
	}
	if int64(len(schema)) > r.maxBytes {
		return nil, fmt.Errorf("%w: model %s: %d bytes, the limit is %d", ErrSchemaTooLarge, name, len(schema), r.maxBytes)
	}
	raw := append([]byte(nil), schema...)
	d, err := newDocument(raw, "model "+name)
	if err != nil {
		return nil, err
	}
	if typeIRI == "" {
		if typeIRI, err = r.typeIRIFor(name, d); err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
	}

	r.change.Lock()
	defer r.change.Unlock()
	// Only holders of change modify the maps, so reading them here is safe.
	prev := r.byName[name]
	if other, ok := r.byIRI[typeIRI]; ok && other.Name != name {
		return nil, fmt.Errorf("%w: model %s: type %s is already bound to model %s", ErrConflict, name, typeIRI, other.Name)
	}
	if d.key != "" {
		if e := r.lookupEmbedded(d.key); e != nil {
			return nil, fmt.Errorf("%w: model %s: \"$id\" %s is the URL of embedded %s", ErrConflict, name, d.id, e.owner)
		}
		if o, ok := r.docs[d.key]; ok && (prev == nil || o != prev.doc) {
			return nil, fmt.Errorf("%w: model %s: \"$id\" %s is the $id of %s", ErrConflict, name, d.id, o.owner)
		}
	}
	lookup := func(key string) *document {
		if e := r.lookupEmbedded(key); e != nil {
			return e
		}
		if prev != nil && prev.doc.key == key {
			return nil // being replaced
		}
		return r.docs[key]
	}
	m, err = r.compile(name, typeIRI, SourceAPI, d, lookup)
	if err != nil {
		return nil, err
	}
	r.install(m, prev)
	r.log.Info("schema model put", "model", name, "type", typeIRI, "replaced", prev != nil)
	return m, nil
}

// Restore makes a model this registry held before current again, exactly
// as it was (an embedded model too, which Put cannot re-add): it undoes a
// Put or Delete that could not be completed elsewhere. It fails with
// ErrConflict if another model has taken the type IRI meanwhile.
func (r *Registry) Restore(m *Model) error {
	r.change.Lock()
	defer r.change.Unlock()
	if other, ok := r.byIRI[m.TypeIRI]; ok && other.Name != m.Name {
		return fmt.Errorf("%w: model %s: type %s is now bound to model %s", ErrConflict, m.Name, m.TypeIRI, other.Name)
	}
	r.install(m, r.byName[m.Name])
	return nil
}

// Delete removes the model of that name, embedded ones included. Models
// compiled earlier against its schema keep working: each compiled model
// holds what it $refs.
func (r *Registry) Delete(name string) error {
	r.change.Lock()
	defer r.change.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	delete(r.byName, name)
	if r.byIRI[m.TypeIRI] == m {
		delete(r.byIRI, m.TypeIRI)
	}
	if m.doc.key != "" && r.docs[m.doc.key] == m.doc {
		delete(r.docs, m.doc.key)
	}
	r.log.Info("schema model deleted", "model", name)
	return nil
}

// Lookup returns the model that applies to an entity of the given expanded
// type: the model bound to that IRI, or, for a type in the NGSI-LD default
// vocabulary (an entity posted with only the core @context), the model of
// the same short name.
func (r *Registry) Lookup(typeIRI string) (*Model, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if m, ok := r.byIRI[typeIRI]; ok {
		return m, true
	}
	if name, ok := strings.CutPrefix(typeIRI, DefaultContextIRI); ok {
		m, ok := r.byName[name]
		return m, ok
	}
	return nil, false
}

// Get returns the model of that name.
func (r *Registry) Get(name string) (*Model, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.byName[name]
	return m, ok
}

// List returns every model, sorted by name. The slice belongs to the caller.
func (r *Registry) List() []*Model {
	r.mu.RLock()
	out := make([]*Model, 0, len(r.byName))
	for _, m := range r.byName {
		out = append(out, m)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// checkName accepts model names that are safe in a URL path segment and a
// file name: 1 to 128 letters, digits, '_', '-' and '.', not starting with
// '.'.
func checkName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("%w: %q (1 to 128 letters, digits, '_', '-', '.', not starting with '.')", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%w: %q (1 to 128 letters, digits, '_', '-', '.', not starting with '.')", ErrInvalidName, name)
		}
	}
	return nil
}

// checkIRI accepts absolute IRIs.
func checkIRI(iri string) error {
	u, err := url.Parse(iri)
	if err != nil || !u.IsAbs() || strings.ContainsAny(iri, " \t\r\n") {
		return fmt.Errorf("%w: type %q is not an absolute IRI", ErrInvalidName, iri)
	}
	return nil
}
