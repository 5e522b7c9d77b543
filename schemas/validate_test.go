package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// One operator schema that exercises every keyword gojsonschema enforces,
// and a document that breaks each of them once.
const catalogueSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "type", "must"],
  "properties": {
    "int": {"type": "integer"},
    "str": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
    "num": {"type": "number", "minimum": 0, "maximum": 1.5, "multipleOf": 0.5},
    "excl": {"exclusiveMinimum": 0, "exclusiveMaximum": 10},
    "colour": {"enum": ["red", "green"]},
    "fixed": {"const": "v1"},
    "when": {"type": "string", "format": "date-time"},
    "day": {"type": "string", "format": "date"},
    "link": {"type": "string", "format": "uri"},
    "mail": {"type": "string", "format": "email"},
    "tags": {"type": "array", "minItems": 2, "maxItems": 3, "uniqueItems": true, "items": {"type": "string"}},
    "odd": {"type": "array", "contains": {"const": 1}},
    "closed": {"type": "object", "additionalProperties": false, "properties": {"a": {}}},
    "small": {"type": "object", "maxProperties": 1, "minProperties": 1},
    "names": {"type": "object", "propertyNames": {"pattern": "^x"}},
    "either": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
    "notnull": {"not": {"type": "null"}},
    "cond": {"if": {"type": "number"}, "then": {"minimum": 100}, "else": {"type": "string"}},
    "dep": {"dependencies": {"a": ["b"]}},
    "never": false,
    "a/b": {"type": "string"},
    "a.b": {"type": "string"},
    "t~x": {"type": "string"}
  }
}`

func TestViolationCatalogue(t *testing.T) {
	r := freshRegistry(t, Options{})
	m, err := r.Put("Catalogue", "", []byte(catalogueSchema))
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{
		"id":      "urn:ngsi-ld:Catalogue:1",
		"int":     2.5,
		"str":     "AB",
		"num":     1.75,
		"excl":    10,
		"colour":  "blue",
		"fixed":   "v2",
		"when":    "yesterday",
		"day":     "2025-13-01",
		"link":    "no scheme",
		"mail":    "not-an-address",
		"tags":    []any{"a", "a", "b", "c"},
		"odd":     []any{2, 3},
		"closed":  map[string]any{"a": 1, "z": 2},
		"small":   map[string]any{},
		"names":   map[string]any{"y": 1},
		"either":  3,
		"notnull": nil,
		"cond":    5,
		"dep":     map[string]any{"a": 1},
		"never":   "x",
		"a/b":     1,
		"a.b":     true,
		"t~x":     []any{},
	}
	want := []string{
		"/a.b: must be of type string; got boolean true (type)",
		"/a~1b: must be of type string; got number 1 (type)",
		"/closed/z: property is not allowed here (additionalProperties)",
		"/colour: must be one of \"red\", \"green\"; got string \"blue\" (enum)",
		"/cond: must be greater than or equal to 100; got number 5 (minimum)",
		"/cond: must match the then schema, because it matches the if schema (then)",
		"/day: must be a date (YYYY-MM-DD); got string \"2025-13-01\" (format)",
		"/dep: property \"b\" is required by another property that is present (dependencies)",
		"/either: must match at least one of the allowed forms (anyOf); got number 3 (anyOf)",
		"/either: must be of type string; got number 3 (type)",
		"/excl: must be less than 10; got number 10 (exclusiveMaximum)",
		"/fixed: must be \"v1\"; got string \"v2\" (const)",
		"/int: must be of type integer; got number 2.5 (type)",
		"/link: must be an absolute URI with a scheme; got string \"no scheme\" (format)",
		"/mail: must be an email address; got string \"not-an-address\" (format)",
		"/must: required property is missing (required)",
		"/names: must match the pattern ^x; got string \"y\" (pattern)",
		"/names/y: property name is not allowed by the propertyNames schema (propertyNames)",
		"/never: no value is allowed here (false)",
		"/notnull: must not match the schema given in not (not)",
		"/num: must be less than or equal to 1.5; got number 1.75 (maximum)",
		"/num: must be a multiple of 0.5; got number 1.75 (multipleOf)",
		"/odd: must contain at least one item that matches the contains schema (contains)",
		"/odd/0: must be 1; got number 2 (const)",
		"/small: must have at least 1 properties (minProperties)",
		"/str: must be at least 3 characters long; got 2 characters (minLength)",
		"/str: must match the pattern ^[a-z]+$; got string \"AB\" (pattern)",
		"/tags: must have at most 3 items; got 4 items (maxItems)",
		"/tags: items must be unique; items 0 and 1 are equal (uniqueItems)",
		"/type: required property is missing (required)",
		"/t~0x: must be of type string; got an array of 0 items (type)",
		"/when: must be a date-time (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string \"yesterday\" (format)",
	}
	for i := 0; i < 5; i++ { // map order must not matter
		vs, err := m.Validate(doc)
		if err != nil {
			t.Fatal(err)
		}
		if got := violationStrings(vs); !slices.Equal(got, want) {
			t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestValidateInputs(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "AirQualityObserved")
	valid := readJSON(t, "AirQualityObserved.valid.json")
	with := func(k string, v any) map[string]any {
		kv := make(map[string]any, len(valid)+1)
		for k, v := range valid {
			kv[k] = v
		}
		kv[k] = v
		return kv
	}
	type custom struct {
		Type        string    `json:"type"`
		Coordinates []float64 `json:"coordinates"`
	}
	tests := []struct {
		name    string
		kv      map[string]any
		want    []string
		wantErr error
	}{
		{"float64", valid, nil, nil},
		{"UseNumber", readJSONNumbers(t, "AirQualityObserved.valid.json"), nil, nil},
		{"Go int", with("airQualityIndex", 42), nil, nil},
		{"Go int64 negative", with("airQualityIndex", int64(-1)), []string{"/airQualityIndex: must be greater than or equal to 0; got number -1 (minimum)"}, nil},
		{"Go uint8", with("airQualityIndex", uint8(7)), nil, nil},
		{"float32", with("reliability", float32(0.5)), nil, nil},
		{"integral float is an integer", with("airQualityIndex", 42.0), nil, nil},
		{"big float", with("airQualityIndex", 1e21), nil, nil},
		{"typed slice and struct", with("location", custom{Type: "Point", Coordinates: []float64{10.8, 45.2}}), nil, nil},
		{"time.Time", with("dateObserved", time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)), nil, nil},
		{"[]string where a string is wanted", with("areaServed", []string{"a"}), []string{"/areaServed: must be of type string; got an array of 1 items (type)"}, nil},
		{"nil", nil, []string{
			"/dateObserved: required property is missing (required)",
			"/id: required property is missing (required)",
			"/location: required property is missing (required)",
			"/type: required property is missing (required)",
		}, nil},
		{"NaN", with("temperature", math.NaN()), nil, ErrInvalidDocument},
		{"Inf", with("temperature", math.Inf(1)), nil, ErrInvalidDocument},
		{"bad json.Number", with("temperature", json.Number("12,5")), nil, ErrInvalidDocument},
		{"huge exponent", with("temperature", json.Number("1e1000000")), nil, ErrInvalidDocument},
		{"long number", with("temperature", json.Number(strings.Repeat("9", 200))), nil, ErrInvalidDocument},
		{"channel", with("temperature", make(chan int)), nil, ErrInvalidDocument},
		{"too deep", with("address", deep(maxDocumentDepth+10)), nil, ErrInvalidDocument},
		{"cyclic", with("address", cyclic()), nil, ErrInvalidDocument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if tc.wantErr == nil {
				b, _ := json.Marshal(tc.kv)
				before = string(b)
			}
			vs, err := m.Validate(tc.kv)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if vs != nil {
					t.Errorf("violations %v with an error", vs)
				}
				return
			}
			if got := violationStrings(vs); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if tc.want == nil && vs != nil {
				t.Errorf("valid document: got %#v, want nil", vs)
			}
			if b, _ := json.Marshal(tc.kv); string(b) != before {
				t.Error("Validate modified its input")
			}
		})
	}
}

func TestValidateDoesNotModifyInput(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "AirQualityObserved")
	kv := readJSON(t, "AirQualityObserved.valid.json")
	kv["extra"] = []any{1.5, map[string]any{"n": 2.0}}
	saved := deepCopy(kv)
	if _, err := m.Validate(kv); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(kv, saved) {
		t.Fatal("Validate modified its input (float64 values must stay float64)")
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = deepCopy(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = deepCopy(v)
		}
		return out
	}
	return v
}

func deep(n int) map[string]any {
	m := map[string]any{"v": 1}
	for i := 0; i < n; i++ {
		m = map[string]any{"in": m}
	}
	return m
}

func cyclic() map[string]any {
	m := map[string]any{}
	m["self"] = m
	return m
}

// A panic inside the validator is reported as ErrInternal, never raised.
func TestValidateRecovers(t *testing.T) {
	broken := &Model{Name: "Broken"} // no compiled schema: gojsonschema dereferences nil
	vs, err := broken.Validate(map[string]any{"id": "x"})
	if !errors.Is(err, ErrInternal) || vs != nil {
		t.Fatalf("Validate = %v, %v; want ErrInternal", vs, err)
	}
}

// JSON pointers are built from gojsonschema's context list; this pins the
// layout that contextPointer reads through reflection.
func TestContextPointer(t *testing.T) {
	r := freshRegistry(t, Options{})
	m, err := r.Put("Pointers", "", []byte(`{"additionalProperties": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := m.Validate(map[string]any{"a.b/c~d": map[string]any{"(root)": []any{"ok", 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Pointer != "/a.b~1c~0d/(root)/1" {
		t.Fatalf("violations %v, want one at /a.b~1c~0d/(root)/1", vs)
	}
}

// Validations run in parallel with each other and with Put, Delete, Lookup
// and List (run with -race).
func TestConcurrentUse(t *testing.T) {
	r := freshRegistry(t, Options{})
	kv := readJSON(t, "AirQualityObserved.valid.json")
	bad := readJSON(t, "examples/AirQualityObserved.example.json")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				m, ok := r.Lookup("https://smartdatamodels.org/dataModel.Environment/AirQualityObserved")
				if !ok {
					errs <- errors.New("lookup failed")
					return
				}
				if vs, err := m.Validate(kv); err != nil || vs != nil {
					errs <- fmt.Errorf("valid document: %v, %v", vs, err)
					return
				}
				if vs, err := m.Validate(bad); err != nil || len(vs) != 2 {
					errs <- fmt.Errorf("bad document: %v, %v", vs, err)
					return
				}
				_ = r.List()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			name := fmt.Sprintf("M%d", i%3)
			if _, err := r.Put(name, "", []byte(`{"allOf": [{"$ref": "`+commonURL+`#/definitions/GSMA-Commons"}]}`)); err != nil {
				errs <- err
				return
			}
			if i%2 == 1 {
				if err := r.Delete(name); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
