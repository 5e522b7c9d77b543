package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

func TestRewriteExclusiveOneOf(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   int
	}{
		{"discriminated by enum", `{"oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point"]}}},
			{"type": "object", "required": ["type", "x"], "properties": {"type": {"enum": ["Line", "Ring"]}}}]}`, 1},
		{"discriminated by const, nested", `{"properties": {"a": {"items": {"oneOf": [
			{"type": "object", "required": ["k"], "properties": {"k": {"const": 1}}},
			{"type": "object", "required": ["k"], "properties": {"k": {"const": 2}}}]}}}}`, 1},
		{"overlapping enums", `{"oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point", "Line"]}}},
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Line"]}}}]}`, 0},
		{"not restricted to objects", `{"oneOf": [
			{"required": ["type"], "properties": {"type": {"enum": ["Point"]}}},
			{"required": ["type"], "properties": {"type": {"enum": ["Line"]}}}]}`, 0},
		{"discriminator not required everywhere", `{"oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point"]}}},
			{"type": "object", "properties": {"type": {"enum": ["Line"]}}}]}`, 0},
		{"$ref beside the discriminator", `{"oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point"], "$ref": "#/definitions/x"}}},
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Line"]}}}]}`, 0},
		{"anyOf already present", `{"anyOf": [{}], "oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point"]}}},
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Line"]}}}]}`, 0},
		{"inside enum values is not a schema", `{"enum": [{"oneOf": [
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Point"]}}},
			{"type": "object", "required": ["type"], "properties": {"type": {"enum": ["Line"]}}}]}]}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := decodeJSON([]byte(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			if got := rewriteExclusiveOneOf(tree); got != tc.want {
				t.Errorf("rewrote %d, want %d", got, tc.want)
			}
		})
	}
}

// The rewritten GeoJSON location of the common schema accepts exactly what
// the original accepts.
func TestRewriteKeepsVerdicts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("models", "data-models", "common-schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	compile := func(rewrite bool) *gojsonschema.Schema {
		tree, err := decodeJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		loc := tree.(map[string]any)["definitions"].(map[string]any)["Location-Commons"]
		if rewrite {
			if n := rewriteExclusiveOneOf(loc); n != 1 {
				t.Fatalf("rewrote %d oneOf, want 1", n)
			}
		}
		s, err := gojsonschema.NewSchemaLoader().Compile(treeLoader(loc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	original, rewritten := compile(false), compile(true)
	values := []string{
		`{"type": "Point", "coordinates": [1, 2]}`,
		`{"type": "Point", "coordinates": [1]}`,
		`{"type": "Point", "coordinates": [[1, 2], [3, 4]]}`,
		`{"type": "LineString", "coordinates": [[1, 2], [3, 4]]}`,
		`{"type": "LineString", "coordinates": [1, 2]}`,
		`{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}`,
		`{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}`,
		`{"type": "MultiPoint", "coordinates": [[1, 2]]}`,
		`{"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]]]}`,
		`{"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]}`,
		`{"type": "Circle", "coordinates": [1, 2]}`,
		`{"coordinates": [1, 2]}`,
		`{"type": "Point"}`,
		`{}`,
		`"Point"`,
		`[1, 2]`,
		`null`,
	}
	for _, v := range values {
		doc := map[string]any{}
		var loc any
		if err := json.Unmarshal([]byte(v), &loc); err != nil {
			t.Fatal(err)
		}
		doc["location"] = loc
		conv, _, err := toInstance(doc, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := original.Validate(treeLoader(conv))
		if err != nil {
			t.Fatal(err)
		}
		b, err := rewritten.Validate(treeLoader(conv))
		if err != nil {
			t.Fatal(err)
		}
		if a.Valid() != b.Valid() {
			t.Errorf("location %s: original valid=%v, rewritten valid=%v", v, a.Valid(), b.Valid())
		}
	}
}

// The draft 2020-12 keywords with a draft-07 equivalent are enforced; a
// schema that declares draft-07 keeps draft-07 rules.
func TestModernKeywords(t *testing.T) {
	r := freshRegistry(t, Options{})
	tests := []struct {
		name, schema string
		doc          map[string]any
		want         []string
	}{
		{"$ref with siblings (2020-12)", `{"$schema": "https://json-schema.org/draft/2020-12/schema",
			"$defs": {"s": {"type": "string"}},
			"properties": {"x": {"$ref": "#/$defs/s", "minLength": 3}, "y": {"$ref": "#/$defs/s", "allOf": [{"maxLength": 1}]}}}`,
			map[string]any{"x": "ab", "y": 7},
			[]string{"/x: must be at least 3 characters long; got 2 characters (minLength)", "/y: must be of type string; got number 7 (type)"}},
		{"$ref with siblings, no $schema", `{"properties": {"x": {"$ref": "#/definitions/s", "minLength": 3}}, "definitions": {"s": {"type": "string"}}}`,
			map[string]any{"x": "ab"},
			[]string{"/x: must be at least 3 characters long; got 2 characters (minLength)"}},
		{"$ref with siblings, draft-07 ignores them", `{"$schema": "http://json-schema.org/draft-07/schema#",
			"properties": {"x": {"$ref": "#/definitions/s", "minLength": 3}}, "definitions": {"s": {"type": "string"}}}`,
			map[string]any{"x": "ab"}, nil},
		{"root $ref with siblings", `{"$ref": "#/$defs/base", "required": ["b"], "$defs": {"base": {"required": ["a"]}}}`,
			map[string]any{},
			[]string{"/a: required property is missing (required)", "/b: required property is missing (required)"}},
		{"dependentRequired", `{"dependentRequired": {"end": ["start"]}}`,
			map[string]any{"end": 1},
			[]string{`: property "start" is required by another property that is present (dependencies)`}},
		{"dependentSchemas", `{"dependentSchemas": {"end": {"properties": {"start": {"type": "string"}}}}}`,
			map[string]any{"end": 1, "start": 2},
			[]string{"/start: must be of type string; got number 2 (type)"}},
		{"prefixItems and items", `{"properties": {"p": {"prefixItems": [{"type": "number"}, {"type": "number"}], "items": {"type": "string"}}}}`,
			map[string]any{"p": []any{1, "a", "b", 4}},
			[]string{"/p/1: must be of type number; got string \"a\" (type)", "/p/3: must be of type string; got number 4 (type)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := r.Put("Modern", "", []byte(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			vs, err := m.Validate(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(vs))
			for i, v := range vs {
				got[i] = v.Pointer + ": " + v.Message + " (" + v.Keyword + ")"
			}
			if len(got) != len(tc.want) {
				t.Fatalf("violations %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("violation %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
			if string(m.Schema()) != tc.schema {
				t.Error("Schema() is not the document as given")
			}
		})
	}
}
