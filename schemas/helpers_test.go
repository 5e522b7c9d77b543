package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testRegistry is shared by the tests that only read from it; building one
// compiles every embedded model.
var testRegistry = sync.OnceValues(func() (*Registry, error) { return NewRegistry(Options{}) })

func sharedRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := testRegistry()
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// freshRegistry is for tests that change the registry.
func freshRegistry(t testing.TB, o Options) *Registry {
	t.Helper()
	r, err := NewRegistry(o)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

func mustModel(t testing.TB, r *Registry, name string) *Model {
	t.Helper()
	m, ok := r.Get(name)
	if !ok {
		t.Fatalf("no model %q", name)
	}
	return m
}

// readJSON decodes a testdata file the way a typical caller does
// (json.Unmarshal: numbers as float64).
func readJSON(t testing.TB, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var kv map[string]any
	if err := json.Unmarshal(b, &kv); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return kv
}

// readJSONNumbers decodes with UseNumber, as a broker that keeps numbers
// exact does.
func readJSONNumbers(t testing.TB, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var kv map[string]any
	if err := dec.Decode(&kv); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return kv
}

// keyValues projects a normalized entity (NGSI-LD, or NGSI v2 as in the
// Smart Data Models examples) to its simplified form: each attribute becomes
// its value, object (Relationship) or languageMap; id, type and @context stay.
func keyValues(entity map[string]any) map[string]any {
	out := make(map[string]any, len(entity))
	for k, v := range entity {
		switch k {
		case "id", "type", "@context":
			out[k] = v
			continue
		}
		attr, ok := v.(map[string]any)
		if !ok {
			out[k] = v
			continue
		}
		switch {
		case attr["value"] != nil:
			out[k] = attr["value"]
		case attr["object"] != nil:
			out[k] = attr["object"]
		case attr["languageMap"] != nil:
			out[k] = attr["languageMap"]
		default:
			out[k] = v
		}
	}
	return out
}

func violationStrings(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}
