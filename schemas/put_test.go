package schemas

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

const commonURL = "https://smart-data-models.github.io/data-models/common-schema.json"

func TestPutRefused(t *testing.T) {
	r := freshRegistry(t, Options{MaxSchemaBytes: 4096})
	if _, err := r.Put("Owned", "https://city.example/ns/Owned", []byte(`{"$id": "https://city.example/Owned.json"}`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model, iri, schema string
		want                     error
		says                     string // the error names the reason
	}{
		{"malformed JSON", "Bad", "", `{"type": "object"`, ErrInvalidSchema, "not valid JSON"},
		{"trailing data", "Bad", "", `{} {}`, ErrInvalidSchema, "after the JSON value"},
		{"not an object", "Bad", "", `["type"]`, ErrInvalidSchema, "must be a JSON object"},
		{"boolean schema", "Bad", "", `true`, ErrInvalidSchema, "must be a JSON object"},
		{"too large", "Bad", "", `{"description": "` + strings.Repeat("x", 5000) + `"}`, ErrSchemaTooLarge, "4096"},
		{"self $ref", "Bad", "", `{"$ref": "#"}`, ErrRecursiveSchema, "#"},
		{"$ref ping-pong", "Bad", "", `{"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}`, ErrRecursiveSchema, "#/definitions/a -> #/definitions/b -> #/definitions/a"},
		{"allOf self", "Bad", "", `{"allOf": [{"type": "object"}, {"$ref": "#"}]}`, ErrRecursiveSchema, "never descends"},
		{"anyOf through not", "Bad", "", `{"definitions": {"x": {"not": {"anyOf": [{"$ref": "#/definitions/x"}]}}}, "properties": {"a": {"$ref": "#/definitions/x"}}}`, ErrRecursiveSchema, "#/definitions/x"},
		{"if then self", "Bad", "", `{"$id": "https://city.example/IfLoop.json", "if": {"type": "object"}, "then": {"$ref": "https://city.example/IfLoop.json"}}`, ErrRecursiveSchema, "IfLoop.json"},
		{"remote $ref", "Bad", "", `{"$ref": "https://example.org/schemas/thing.json"}`, ErrUnresolvedRef, "https://example.org/schemas/thing.json"},
		{"file $ref", "Bad", "", `{"$ref": "file:///etc/passwd"}`, ErrUnresolvedRef, "file:///etc/passwd"},
		{"relative $ref without $id", "Bad", "", `{"$ref": "common-schema.json"}`, ErrUnresolvedRef, "absolute"},
		{"missing definition", "Bad", "", `{"$ref": "` + commonURL + `#/definitions/NoSuchThing"}`, ErrUnresolvedRef, "NoSuchThing"},
		{"anchor", "Bad", "", `{"$ref": "#thing"}`, ErrUnresolvedRef, "anchors"},
		{"$ref not a string", "Bad", "", `{"$ref": 3}`, ErrInvalidSchema, "must be a string"},
		{"minContains", "Bad", "", `{"properties": {"p": {"contains": {"type": "number"}, "minContains": 2}}}`, ErrUnsupportedKeyword, "minContains"},
		{"dependentRequired clash", "Bad", "", `{"dependentRequired": {"a": ["b"]}, "dependentSchemas": {"a": {"required": ["c"]}}}`, ErrUnsupportedKeyword, `"a"`},
		{"dependentSchemas loop", "Bad", "", `{"dependentSchemas": {"a": {"$ref": "#"}}}`, ErrRecursiveSchema, "dependentSchemas"},
		{"unevaluatedProperties", "Bad", "", `{"unevaluatedProperties": false}`, ErrUnsupportedKeyword, "unevaluatedProperties"},
		{"nested $id", "Bad", "", `{"definitions": {"a": {"$id": "https://x.example/a.json"}}}`, ErrUnsupportedKeyword, "nested"},
		{"bad regex", "Bad", "", `{"properties": {"p": {"type": "string", "pattern": "(?=lookahead)"}}}`, ErrInvalidSchema, "pattern at #/properties/p: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
		{"bad patternProperties", "Bad", "", `{"patternProperties": {"^(a": {}}}`, ErrInvalidSchema, "patternProperties at #"},
		{"bad type", "Bad", "", `{"type": "entity"}`, ErrInvalidSchema, "entity"},
		{"bad minimum", "Bad", "", `{"minimum": "zero"}`, ErrInvalidSchema, "minimum"},
		{"relative $id", "Bad", "", `{"$id": "Bad.json"}`, ErrInvalidSchema, "absolute"},
		{"expansion bomb", "Bad", "", schemaBomb(30), ErrInvalidSchema, "more than 10000 subschemas"},
		{"nested too deep", "Bad", "", strings.Repeat(`{"items":`, 200) + `{}` + strings.Repeat(`}`, 200), ErrInvalidSchema, "deeper than 128"},
		{"embedded $id", "Bad", "", `{"$id": "` + commonURL + `"}`, ErrConflict, "common-schema"},
		{"other model's $id", "Bad", "", `{"$id": "https://city.example/Owned.json"}`, ErrConflict, "Owned"},
		{"type bound elsewhere", "Bad", "https://city.example/ns/Owned", `{}`, ErrConflict, "Owned"},
		{"empty name", "", "", `{}`, ErrInvalidName, `""`},
		{"name with slash", "a/b", "", `{}`, ErrInvalidName, "a/b"},
		{"dot name", "..", "", `{}`, ErrInvalidName, ".."},
		{"relative IRI", "Bad", "Bad", `{}`, ErrInvalidName, "absolute IRI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := r.Put(tc.model, tc.iri, []byte(tc.schema))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, %v; want %v", m, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if _, ok := r.Get("Bad"); ok {
				t.Error("a refused schema was installed")
			}
		})
	}
}

// schemaBomb builds a schema without cycles under which 2^n subschemas apply
// to the document: d0 = allOf[d1, d1], d1 = allOf[d2, d2], ...
func schemaBomb(n int) string {
	var b strings.Builder
	b.WriteString(`{"$ref": "#/definitions/d0", "definitions": {`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `"d%d": {"allOf": [{"$ref": "#/definitions/d%d"}, {"$ref": "#/definitions/d%d"}]}, `, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `"d%d": {"type": "object"}}}`, n)
	return b.String()
}

// Legitimate recursion descends into the document and must keep working.
func TestPutRecursiveTree(t *testing.T) {
	r := freshRegistry(t, Options{})
	m, err := r.Put("Tree", "", []byte(`{"type": "object", "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	leaf := map[string]any{"label": 7}
	doc := map[string]any{"label": "root", "children": []any{map[string]any{"label": "a", "children": []any{leaf}}}}
	vs, err := m.Validate(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := violationStrings(vs); !slices.Equal(got, []string{"/children/0/children/0/label: must be of type string; got number 7 (type)"}) {
		t.Errorf("violations %q", got)
	}
}

func TestPutReplaceDelete(t *testing.T) {
	r := freshRegistry(t, Options{})
	// Both URL forms of the common schema, in one operator schema.
	schema := `{
	  "$id": "https://city.example/schemas/Bench.json",
	  "allOf": [
	    {"$ref": "` + commonURL + `#/definitions/GSMA-Commons"},
	    {"$ref": "https://raw.githubusercontent.com/smart-data-models/data-models/master/common-schema.json#/definitions/Location-Commons"},
	    {"properties": {"seats": {"type": "integer", "minimum": 1}}}
	  ],
	  "required": ["id", "type", "seats"]
	}`
	m, err := r.Put("Bench", "https://city.example/ns/Bench", []byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != SourceAPI || m.ID != "https://city.example/schemas/Bench.json" || string(m.Schema()) != schema {
		t.Errorf("model %+v", m)
	}
	if got, ok := r.Lookup("https://city.example/ns/Bench"); !ok || got != m {
		t.Fatal("Lookup by IRI failed")
	}
	if got, ok := r.Lookup(DefaultContextIRI + "Bench"); !ok || got != m {
		t.Fatal("Lookup by default-context IRI failed")
	}
	vs, err := m.Validate(map[string]any{"id": "urn:ngsi-ld:Bench:1", "type": "Bench", "seats": 0, "location": map[string]any{"type": "Point", "coordinates": []any{10.79}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/location: must match at least one of the allowed forms (anyOf); got an object with 2 properties (anyOf)",
		"/location/coordinates: must have at least 2 items; got 1 items (minItems)",
		"/seats: must be greater than or equal to 1; got number 0 (minimum)",
	}
	if got := violationStrings(vs); !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Another model may $ref it by its $id.
	if _, err := r.Put("BigBench", "", []byte(`{"allOf": [{"$ref": "https://city.example/schemas/Bench.json"}, {"properties": {"seats": {"minimum": 10}}}]}`)); err != nil {
		t.Fatal(err)
	}

	// Replace: same name, new schema and type.
	m2, err := r.Put("Bench", "https://city.example/ns/Seat", []byte(`{"$id": "https://city.example/schemas/Bench.json", "required": ["colour"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get("Bench"); got != m2 {
		t.Fatal("Get does not return the replacement")
	}
	if _, ok := r.Lookup("https://city.example/ns/Bench"); ok {
		t.Error("the old type IRI still resolves")
	}
	if vs, _ := m.Validate(map[string]any{"id": "x", "type": "Bench", "seats": 3}); vs != nil {
		t.Errorf("the old *Model changed: %v", vs)
	}

	// The type IRI may come from the schema.
	if m, err := r.Put("Kiosk", "", []byte(`{"x-ngsi-ld-type": "https://city.example/ns/Kiosk"}`)); err != nil || m.TypeIRI != "https://city.example/ns/Kiosk" {
		t.Errorf("Put with x-ngsi-ld-type: %v, %v", m, err)
	}
	if _, err := r.Put("Kiosk2", "", []byte(`{"x-ngsi-ld-type": "Kiosk"}`)); !errors.Is(err, ErrInvalidName) {
		t.Errorf("relative x-ngsi-ld-type: %v", err)
	}

	// Replace an embedded model: the type IRI stays the model's own.
	aqo, err := r.Put("AirQualityObserved", "", []byte(`{"required": ["stationCode"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if aqo.TypeIRI != "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved" {
		t.Errorf("TypeIRI %q", aqo.TypeIRI)
	}

	if err := r.Delete("Bench"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Get("Bench"); ok {
		t.Error("Get after Delete")
	}
	if _, ok := r.Lookup("https://city.example/ns/Seat"); ok {
		t.Error("Lookup after Delete")
	}
	if err := r.Delete("Bench"); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("second Delete = %v", err)
	}
	// Its $id is free again, and no longer resolvable.
	if _, err := r.Put("Other", "", []byte(`{"$ref": "https://city.example/schemas/Bench.json"}`)); !errors.Is(err, ErrUnresolvedRef) {
		t.Errorf("$ref to a deleted model = %v", err)
	}
	// The model that $refs it keeps working.
	big, _ := r.Get("BigBench")
	vs, err = big.Validate(map[string]any{"id": "urn:ngsi-ld:Bench:2", "type": "BigBench", "seats": 3})
	if got := violationStrings(vs); err != nil || !slices.Equal(got, []string{"/seats: must be greater than or equal to 10; got number 3 (minimum)"}) {
		t.Errorf("BigBench after Delete: %q, %v", got, err)
	}
}

// failingTransport counts requests and fails them all.
type failingTransport struct{ calls atomic.Int64 }

func (f *failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	f.calls.Add(1)
	return nil, errors.New("network use in a test")
}

// The registry never reaches the network: loading, compiling every embedded
// model, and refusing remote $refs all happen with a transport that fails.
func TestNeverFetches(t *testing.T) {
	ft := &failingTransport{}
	saved := http.DefaultTransport
	http.DefaultTransport = ft
	t.Cleanup(func() { http.DefaultTransport = saved })

	r, err := NewRegistry(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`{"$ref": "https://example.org/x.json"}`,
		`{"$ref": "http://json-schema.org/draft-07/schema#"}`,
		`{"properties": {"a": {"$ref": "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/transportation-schema.json"}}}`,
	} {
		if _, err := r.Put("Remote", "", []byte(s)); !errors.Is(err, ErrUnresolvedRef) {
			t.Errorf("Put(%s) = %v, want ErrUnresolvedRef", s, err)
		}
	}
	for _, m := range r.List() {
		if _, err := m.Validate(map[string]any{"id": "urn:x", "type": m.Name}); err != nil {
			t.Error(err)
		}
	}
	if n := ft.calls.Load(); n != 0 {
		t.Fatalf("%d HTTP requests", n)
	}
}

// Even if the analysis missed a $ref, gojsonschema's loader must not fetch:
// compile straight through gojsonschema with the root loader the registry
// uses.
func TestRefusingFactory(t *testing.T) {
	ft := &failingTransport{}
	saved := http.DefaultTransport
	http.DefaultTransport = ft
	t.Cleanup(func() { http.DefaultTransport = saved })

	for _, ref := range []string{"https://example.org/x.json", "file:///etc/passwd"} {
		tree, err := decodeJSON([]byte(`{"properties": {"a": {"$ref": "` + ref + `"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = gojsonschema.NewSchemaLoader().Compile(treeLoader(tree))
		if !errors.Is(err, ErrUnresolvedRef) {
			t.Errorf("compile with $ref %s: %v, want ErrUnresolvedRef", ref, err)
		}
	}
	if n := ft.calls.Load(); n != 0 {
		t.Fatalf("%d HTTP requests", n)
	}
}

func TestRestore(t *testing.T) {
	r := freshRegistry(t, Options{})
	aq, ok := r.Get("AirQualityObserved")
	if !ok {
		t.Fatal("embedded model missing")
	}
	if err := r.Delete("AirQualityObserved"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put("AirQualityObserved", "", []byte(aq.Schema())); !errors.Is(err, ErrConflict) {
		t.Fatalf("Put of an embedded schema: %v (Restore exists because this is refused)", err)
	}
	if err := r.Restore(aq); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Lookup(aq.TypeIRI); !ok || got != aq {
		t.Fatal("restored model not found by its type")
	}
	// A restore cannot take a type that another model holds meanwhile.
	if err := r.Delete("AirQualityObserved"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put("Air", aq.TypeIRI, []byte(`{"type":"object"}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(aq); !errors.Is(err, ErrConflict) {
		t.Fatalf("restore over another model's type: %v", err)
	}
}
