package broker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/piazza-city/piazza/schemas"
)

var (
	docRegOnce sync.Once
	docReg     *schemas.Registry
	docRegErr  error
)

// registry is one registry of the embedded models for the tests here
// (compiling them takes tens of milliseconds).
func registry(t testing.TB) *schemas.Registry {
	t.Helper()
	docRegOnce.Do(func() { docReg, docRegErr = schemas.NewRegistry(schemas.Options{}) })
	if docRegErr != nil {
		t.Fatal(docRegErr)
	}
	return docReg
}

func readDoc(t *testing.T, d *DocumentReader, js string) []DocumentEntity {
	t.Helper()
	v, err := DecodeJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	des, err := d.Read(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	return des
}

// violationList renders checks as "Model /pointer keyword; ...".
func violationList(cs []ModelCheck) string {
	var s []string
	for _, c := range cs {
		if c.Model == "" {
			s = append(s, "no model for "+c.Type)
		}
		for _, v := range c.Violations {
			s = append(s, c.Model+" "+v.Pointer+" "+v.Keyword)
		}
	}
	return strings.Join(s, "; ")
}

const sdmEnvironment = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"

func TestReadDocument(t *testing.T) {
	reg := registry(t)
	d := NewDocumentReader(DocumentOptions{Offline: true})
	upstream, err := os.ReadFile("testdata/sdm/AirQualityObserved.example.json")
	if err != nil {
		t.Fatal(err)
	}
	const upstreamFaults = "AirQualityObserved /dateObserved format; AirQualityObserved /tsp type"
	cases := []struct {
		name      string
		doc       string
		keyValues bool   // detected form
		types     string // canonical type of the entity
		want      string // violationList, or the error's text
	}{
		{"upstream example, keyValues", string(upstream), true, "AirQualityObserved", upstreamFaults},
		{"upstream example with the model's @context", strings.Replace(string(upstream), "{", `{"@context":"`+sdmEnvironment+`",`, 1), true,
			"https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", upstreamFaults},
		{"normalized", `{"id":"urn:a:1","type":"AirQualityObserved","dateObserved":{"type":"Property","value":"2024-01-10T10:00:00Z"},
			"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.7,45.1]}},"tsp":{"type":"Property","value":2}}`, false, "AirQualityObserved", ""},
		{"concise", `{"id":"urn:a:1","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z",
			"location":{"type":"Point","coordinates":[10.7,45.1]},"tsp":{"value":2.5,"unitCode":"GQ"}}`, false, "AirQualityObserved", "AirQualityObserved /tsp type"},
		{"keyValues with a value member inside a value is not", `{"id":"urn:a:1","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z",
			"location":{"type":"Point","coordinates":[10.7,45.1]},"tsp":{"value":2}}`, false, "AirQualityObserved", ""},
		{"keyValues with value members that do not read as concise", `{"id":"urn:a:1","type":"X",
			"dimensions":[{"key":"urn:d:1","value":"N"},{"key":"urn:d:2","value":"W2"}]}`, true, "X", "no model for X"},
		{"normalized that does not read stays normalized", `{"id":"urn:a:1","type":"X","a":{"type":"Property","value":1},
			"dimensions":[{"key":"urn:d:1","value":"N"},{"key":"urn:d:2","value":"W2"}]}`, false, "", "two instances without datasetId"},
		{"missing required", `{"id":"urn:a:1","type":"AirQualityObserved"}`, true, "AirQualityObserved",
			"AirQualityObserved /dateObserved required; AirQualityObserved /location required"},
		{"no model", `{"id":"urn:a:1","type":"Bench","seats":3}`, true, "Bench", "no model for Bench"},
		{"two types", `{"id":"urn:a:1","type":["Bench","AirQualityObserved"],"dateObserved":"2024-01-10T10:00:00Z",
			"location":{"type":"Point","coordinates":[10.7,45.1]},"tsp":7.5}`, true, "Bench", "no model for Bench; AirQualityObserved /tsp type"},
		{"no id", `{"type":"AirQualityObserved"}`, true, "", "the entity has no id"},
		{"bad geometry", `{"id":"urn:a:1","type":"X","location":{"type":"Point","coordinates":[200,45]}}`, true, "", "invalid GeoJSON"},
		{"context not available", `{"@context":"http://127.0.0.1:1/ctx.jsonld","id":"urn:a:1","type":"X"}`, true, "", "@context"},
		{"bad context", `{"@context":42,"id":"urn:a:1","type":"X"}`, true, "", "@context"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			des := readDoc(t, d, c.doc)
			if len(des) != 1 {
				t.Fatalf("%d entities", len(des))
			}
			de := des[0]
			if de.KeyValues != c.keyValues {
				t.Errorf("read as keyValues: %v", de.KeyValues)
			}
			if c.types == "" {
				if de.Err == nil || !strings.Contains(de.Err.Error(), c.want) || de.Entity != nil {
					t.Fatalf("error %v, want one saying %q", de.Err, c.want)
				}
				return
			}
			if de.Err != nil {
				t.Fatal(de.Err)
			}
			if de.Entity.Types[0] != c.types {
				t.Errorf("types %v", de.Entity.Types)
			}
			cs, err := CheckModels(reg, de.Entity)
			if err != nil {
				t.Fatal(err)
			}
			if got := violationList(cs); got != c.want {
				t.Errorf("violations %q, want %q", got, c.want)
			}
		})
	}

	t.Run("forced keyValues", func(t *testing.T) {
		kv := NewDocumentReader(DocumentOptions{KeyValues: true, Offline: true})
		de := readDoc(t, kv, `{"id":"urn:a:1","type":"Bench","spec":{"value":2,"unit":"m"}}`)[0]
		if de.Err != nil || !de.KeyValues || canon(de.Entity.Attrs["spec"][0].Value) != `{"unit":"m","value":2}` {
			t.Fatalf("%+v", de)
		}
	})
	t.Run("arrays: each element on its own", func(t *testing.T) {
		des := readDoc(t, d, `[{"id":"urn:a:1","type":"X"}, 7, {"type":"X"}, {"id":"urn:a:4","type":"X","a":{"type":"Property","value":1}}]`)
		if len(des) != 4 || des[0].Err != nil || des[0].ID != "urn:a:1" || des[1].Err == nil || des[1].Index != 1 ||
			des[2].Err == nil || des[3].Err != nil || des[3].KeyValues || des[3].Index != 3 {
			t.Fatalf("%+v", des)
		}
		if !strings.Contains(des[1].Err.Error(), "element 1 is a number") {
			t.Fatalf("element error %v", des[1].Err)
		}
	})
	t.Run("neither object nor array", func(t *testing.T) {
		for _, doc := range []any{"x", 1.5, nil, true} {
			if _, err := d.Read(context.Background(), doc); !errors.Is(err, ErrBadRequestData) {
				t.Errorf("%v: %v", doc, err)
			}
		}
	})
	t.Run("unreachable context is LdContextNotAvailable", func(t *testing.T) {
		de := readDoc(t, d, `{"@context":"http://127.0.0.1:1/ctx.jsonld","id":"urn:a:1","type":"X"}`)[0]
		if !errors.Is(de.Err, ErrLdContextNotAvailable) {
			t.Fatalf("%v", de.Err)
		}
	})
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestCheckModelsAsWritePath checks that CheckModels judges as the write
// path does under enforce.
func TestCheckModelsAsWritePath(t *testing.T) {
	reg := registry(t)
	v, err := NewValidator(reg, ValidationConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{badAQ, goodAQ,
		`{"id":"urn:a:1","type":"AirQualityObserved"}`,
		`{"id":"urn:a:1","type":["Bench","AirQualityObserved"],"tsp":"x","location":{"type":"Point","coordinates":[1,2]}}`,
		`{"id":"urn:a:1","type":"KeyPerformanceIndicator","kpiValue":"high"}`,
	} {
		e := mustParse(t, js, ParseOptions{KeyValues: true})
		cs, err := CheckModels(reg, e)
		if err != nil {
			t.Fatal(err)
		}
		var fromChecks []schemas.Violation
		for _, c := range cs {
			if len(c.Violations) > 0 && fromChecks == nil {
				fromChecks = c.Violations
			}
		}
		vd := v.check("", e)
		if vd.err != nil {
			t.Fatal(vd.err)
		}
		if canon(toAny(fromChecks)) != canon(toAny(vd.violations)) {
			t.Errorf("%s:\nCheckModels %v\nwrite path  %v", js, fromChecks, vd.violations)
		}
	}
}

func toAny(vs []schemas.Violation) any {
	out := []any{}
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

// FuzzReadDocument reads any JSON as a document and checks every entity
// read against the models: no panic, and an entity or an error for each
// element.
func FuzzReadDocument(f *testing.F) {
	for _, p := range []string{"testdata/sdm/AirQualityObserved.example.json", "testdata/sdm/KeyPerformanceIndicator.example.json",
		"testdata/sdm/service_requests.example.json"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add(`[` + badAQ + `,` + goodAQ + `,1]`)
	f.Add(`{"@context":"` + sdmEnvironment + `","id":"urn:a:1","type":"AirQualityObserved","tsp":{"type":"Property","value":1}}`)
	f.Add(`{"id":"urn:a:1","type":"X","a":[{"type":"Property","value":1,"datasetId":"urn:d:1"},{"value":2}]}`)
	reg := registry(f)
	d := NewDocumentReader(DocumentOptions{Offline: true})
	f.Fuzz(func(t *testing.T, doc string) {
		v, err := DecodeJSON([]byte(doc))
		if err != nil {
			return
		}
		des, err := d.Read(context.Background(), v)
		if err != nil {
			return
		}
		for _, de := range des {
			if (de.Entity == nil) == (de.Err == nil) {
				t.Fatalf("element %d: entity %v, error %v", de.Index, de.Entity, de.Err)
			}
			if de.Entity != nil {
				if _, err := CheckModels(reg, de.Entity); err != nil && !errors.Is(err, ErrInternal) {
					t.Fatalf("check: %v", err)
				}
			}
		}
	})
}
