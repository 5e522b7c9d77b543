package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FuzzValidate feeds arbitrary JSON objects, as keyValues documents, to the
// AirQualityObserved model: Validate must never panic, must fail only with
// ErrInvalidDocument, and must report sorted violations.
func FuzzValidate(f *testing.F) {
	for _, file := range []string{"AirQualityObserved.valid.json", "examples/AirQualityObserved.example.json", "examples/PointOfInterest.example.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"location": {"type": "Polygon", "coordinates": [[[1, 2], [3]]]}, "tsp": 1e400}`))
	f.Add([]byte(`{"id": "", "type": ["AirQualityObserved"], "dateObserved": null, "owner": [1, "a b"]}`))
	m := mustModel(f, sharedRegistry(f), "AirQualityObserved")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, useNumber := range []bool{false, true} {
			dec := json.NewDecoder(bytes.NewReader(b))
			if useNumber {
				dec.UseNumber()
			}
			var kv map[string]any
			if err := dec.Decode(&kv); err != nil {
				return
			}
			vs, err := m.Validate(kv)
			if err != nil {
				if !errors.Is(err, ErrInvalidDocument) {
					t.Fatalf("Validate(%s) = %v", b, err)
				}
				continue
			}
			if vs != nil && len(vs) == 0 {
				t.Fatal("empty non-nil violations")
			}
			if !sort.SliceIsSorted(vs, func(i, j int) bool {
				if vs[i].Pointer != vs[j].Pointer {
					return vs[i].Pointer < vs[j].Pointer
				}
				if vs[i].Keyword != vs[j].Keyword {
					return vs[i].Keyword < vs[j].Keyword
				}
				return vs[i].Message < vs[j].Message
			}) {
				t.Fatalf("violations not sorted: %v", vs)
			}
			for _, v := range vs {
				if v.Message == "" || v.Keyword == "" || (v.Pointer != "" && v.Pointer[0] != '/') {
					t.Fatalf("malformed violation %+v", v)
				}
			}
		}
	})
}

// FuzzPutSchema feeds arbitrary bytes to Put as a schema: the result is an
// error or a model that validates documents without panicking; it never
// panics or hangs (a $ref cycle would recurse until the stack overflows).
func FuzzPutSchema(f *testing.F) {
	f.Add([]byte(catalogueSchema))
	f.Add([]byte(`{"$ref": "#"}`))
	f.Add([]byte(`{"properties": {"a": {"$ref": "#"}}, "allOf": [{"$ref": "#/properties/a"}]}`))
	f.Add([]byte(`{"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"allOf": [{"$ref": "#/definitions/a"}]}}, "items": {"$ref": "#/definitions/a"}}`))
	f.Add([]byte(`{"$id": "https://x.example/s.json", "not": {"$ref": "https://x.example/s.json#"}}`))
	f.Add([]byte(`{"allOf": [{"$ref": "https://raw.githubusercontent.com/smart-data-models/data-models/master/common-schema.json#/definitions/Location-Commons"}]}`))
	f.Add([]byte(`{"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"n": {"minimum": 1, "exclusiveMinimum": true}}}`))
	f.Add([]byte(`{"dependencies": {"a": {"$ref": "#"}}}`))
	f.Add([]byte(`{"type": ["string", "string"]}`))
	for _, name := range []string{"dataModel.Environment/AirQualityObserved/schema.json", "data-models/common-schema.json"} {
		b, err := os.ReadFile(filepath.Join("models", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := freshRegistry(f, Options{MaxSchemaBytes: 64 << 10})
	docs := []map[string]any{
		{},
		{"id": "urn:x", "type": "Fuzz", "a": []any{1.5, "x", nil, map[string]any{"a": true}}},
		readJSON(f, "AirQualityObserved.valid.json"),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := r.Put("Fuzz", "", b)
		if err != nil {
			for _, sentinel := range []error{ErrInvalidSchema, ErrSchemaTooLarge, ErrRecursiveSchema, ErrUnresolvedRef, ErrUnsupportedKeyword, ErrConflict} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("Put error without a sentinel: %v", err)
		}
		for _, d := range docs {
			if _, err := m.Validate(d); err != nil && !errors.Is(err, ErrInvalidDocument) {
				// An internal failure is reported, not raised; record it
				// as a finding all the same.
				t.Fatalf("Validate with schema %s: %v", b, err)
			}
		}
	})
}
