package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// roundTrip checks the central property of the entity model: what the
// broker writes, it reads back as the same entity. e must be a whole entity
// (an id and a type) without merge deletions. The normalized, concise and
// stored renderings must each parse back to an entity whose normalized
// rendering is the same bytes; every rendering, simplified included, must be
// valid JSON.
func roundTrip(e *Entity) error {
	norm := AppendEntity(nil, e, RenderOptions{Format: Normalized})
	for _, f := range []struct {
		name string
		ro   RenderOptions
		po   ParseOptions
	}{
		{"normalized", RenderOptions{Format: Normalized}, ParseOptions{}},
		{"concise", RenderOptions{Format: Concise}, ParseOptions{}},
		{"normalized+sysAttrs", RenderOptions{Format: Normalized, SysAttrs: true}, ParseOptions{}},
		{"concise+sysAttrs", RenderOptions{Format: Concise, SysAttrs: true}, ParseOptions{}},
		{"stored", storedOptions, ParseOptions{stored: true}},
	} {
		out := AppendEntity(nil, e, f.ro)
		if !json.Valid(out) {
			return fmt.Errorf("%s rendering is not valid JSON: %s", f.name, out)
		}
		v, err := DecodeJSON(out)
		if err != nil {
			return fmt.Errorf("%s rendering does not decode: %v\n%s", f.name, err, out)
		}
		e2, err := ParseEntity(v, f.po)
		if err != nil {
			return fmt.Errorf("%s rendering does not parse: %v\n%s", f.name, err, out)
		}
		if again := AppendEntity(nil, e2, RenderOptions{Format: Normalized}); !bytes.Equal(again, norm) {
			return fmt.Errorf("%s rendering reads back as another entity:\nrendered %s\nfirst    %s\nthen     %s", f.name, out, norm, again)
		}
		if f.name == "stored" {
			if again := AppendEntity(nil, e2, storedOptions); !bytes.Equal(again, out) {
				return fmt.Errorf("stored form loses data:\nfirst %s\nthen  %s", out, again)
			}
		}
	}
	if kv := AppendEntity(nil, e, RenderOptions{Format: Simplified, SysAttrs: true}); !json.Valid(kv) {
		return fmt.Errorf("simplified rendering is not valid JSON: %s", kv)
	}
	return nil
}

// hasDeletions reports whether e holds merge deletions (never stored).
func hasDeletions(e *Entity) bool {
	var sub func(a *Attribute) bool
	sub = func(a *Attribute) bool {
		if a.Delete {
			return true
		}
		for _, s := range a.Sub {
			if sub(s) {
				return true
			}
		}
		return false
	}
	for _, is := range e.Attrs {
		for _, a := range is {
			if sub(a) {
				return true
			}
		}
	}
	return false
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseGoodFixtures parses testdata/entities/*.good.json and checks the
// round trip through every rendering.
func TestParseGoodFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/entities/*.good.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v, err := DecodeJSON(readFixture(t, f))
			if err != nil {
				t.Fatal(err)
			}
			e, err := ParseEntity(v, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := roundTrip(e); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestParseBadFixtures parses testdata/entities/*.bad.json: {"want": a
// substring of the error, "input": the entity}. Every error must be an
// *Error of kind ErrBadRequestData.
func TestParseBadFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/entities/*.bad.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var fx struct {
				Want  string          `json:"want"`
				Input json.RawMessage `json:"input"`
			}
			if err := json.Unmarshal(readFixture(t, f), &fx); err != nil || fx.Want == "" {
				t.Fatalf("fixture: %v", err)
			}
			v, err := DecodeJSON(fx.Input)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseEntity(v, ParseOptions{})
			if err == nil {
				t.Fatalf("parsed; want an error with %q", fx.Want)
			}
			var be *Error
			if !errors.As(err, &be) || !errors.Is(err, ErrBadRequestData) {
				t.Fatalf("error %v (%T) is not a BadRequestData *Error", err, err)
			}
			if !strings.Contains(be.Detail, fx.Want) {
				t.Fatalf("detail %q does not hold %q", be.Detail, fx.Want)
			}
		})
	}
}

// TestParseSmartDataModels reads the Smart Data Models examples (keyValues
// documents) as simplified and as concise input.
func TestParseSmartDataModels(t *testing.T) {
	files, _ := filepath.Glob("testdata/sdm/*.example.json")
	if len(files) < 5 {
		t.Fatalf("examples: %v", files)
	}
	// A concise reading of these keyValues documents fails where a value is
	// an array of objects with a "value" member: concise input takes that
	// for the instances of a multi-attribute (GS CIM 009, 4.5.3).
	conciseFails := map[string]string{
		"SDMX-Observation.example.json":        "attribute dimensions: two instances without datasetId",
		"service_requests.example.json":        "",
		"AirQualityObserved.example.json":      "",
		"CarbonFootprint.example.json":         "",
		"KeyPerformanceIndicator.example.json": "",
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			v, err := DecodeJSON(readFixture(t, f))
			if err != nil {
				t.Fatal(err)
			}
			raw := v.(map[string]any)
			if id, _ := raw["id"].(string); !ValidURI(id) {
				// Some examples have ids that are not URIs: NGSI-LD refuses them.
				if _, err := ParseEntity(v, ParseOptions{KeyValues: true}); err == nil || !strings.Contains(err.Error(), "not a valid URI") {
					t.Fatalf("id %q: error %v", id, err)
				}
				raw["id"] = "urn:ngsi-ld:" + raw["type"].(string) + ":" + id
			}
			e, err := ParseEntity(v, ParseOptions{KeyValues: true})
			if err != nil {
				t.Fatalf("keyValues: %v", err)
			}
			for k, x := range raw {
				if entityMembers[k] {
					continue
				}
				is := e.Attrs[k]
				if len(is) != 1 {
					t.Fatalf("attribute %s: %d instances", k, len(is))
				}
				if got, want := string(appendValue(nil, is[0].Value)), string(appendValue(nil, x)); got != want {
					t.Errorf("attribute %s: value %s, want %s", k, got, want)
				}
				m, isObj := x.(map[string]any)
				if wantGeo := isObj && isGeometry(m); (is[0].Type == GeoProperty) != wantGeo {
					t.Errorf("attribute %s: kind %v", k, is[0].Type)
				}
			}
			if err := roundTrip(e); err != nil {
				t.Fatal(err)
			}
			// Simplified output gives the document back.
			kv := AppendEntity(nil, e, RenderOptions{Format: Simplified})
			if got, want := string(kv), string(appendValue(nil, v)); !sameJSONText(got, want) {
				t.Errorf("simplified output\n%s\nwant\n%s", got, want)
			}
			want, known := conciseFails[name]
			if !known {
				t.Fatalf("add %s to conciseFails", name)
			}
			ec, err := ParseEntity(v, ParseOptions{})
			switch {
			case want == "" && err != nil:
				t.Fatalf("concise: %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("concise: error %v, want %q", err, want)
			case err == nil:
				if a, b := AppendEntity(nil, ec, RenderOptions{}), AppendEntity(nil, e, RenderOptions{}); !bytes.Equal(a, b) {
					t.Errorf("concise and keyValues readings differ:\n%s\n%s", a, b)
				}
			}
		})
	}
}

// sameJSONText compares JSON texts with object keys in any order.
func sameJSONText(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		o     ParseOptions
		check func(t *testing.T, e *Entity)
		err   string
	}{
		{name: "fragment without id and type", in: `{"p":{"type":"Property","value":1}}`, o: ParseOptions{Fragment: true},
			check: func(t *testing.T, e *Entity) {
				if e.ID != "" || e.Types != nil || len(e.Attrs["p"]) != 1 {
					t.Errorf("%+v", e)
				}
			}},
		{name: "fragment keeps a given id", in: `{"id":"urn:a:b","p":1}`, o: ParseOptions{Fragment: true},
			check: func(t *testing.T, e *Entity) {
				if e.ID != "urn:a:b" {
					t.Errorf("id %q", e.ID)
				}
			}},
		{name: "fragment checks a given id", in: `{"id":"a b","p":1}`, o: ParseOptions{Fragment: true}, err: "not a valid URI"},
		{name: "null without AllowNull", in: `{"p":null}`, o: ParseOptions{Fragment: true}, err: "null"},
		{name: "null deletes", in: `{"p":null,"q":"urn:ngsi-ld:null","r":{"type":"Property","value":"urn:ngsi-ld:null","datasetId":"urn:ds:1"},
			"s":{"type":"Property","value":1,"sub":null}}`, o: ParseOptions{Fragment: true, AllowNull: true},
			check: func(t *testing.T, e *Entity) {
				for _, k := range []string{"p", "q", "r"} {
					if a := e.Attrs[k][0]; !a.Delete {
						t.Errorf("%s not a deletion: %+v", k, a)
					}
				}
				if ds := e.Attrs["r"][0].DatasetID; ds != "urn:ds:1" {
					t.Errorf("deletion lost its datasetId: %q", ds)
				}
				if s := e.Attrs["s"][0]; s.Delete || !s.Sub["sub"].Delete {
					t.Errorf("sub-attribute deletion: %+v", s)
				}
			}},
		{name: "keyValues reads values", in: `{"id":"urn:a:b","type":"T","p":{"type":"Relationship","object":"urn:a:c"},"l":[{"value":1}],"location":{"type":"Point","coordinates":[1,2]}}`,
			o: ParseOptions{KeyValues: true},
			check: func(t *testing.T, e *Entity) {
				if a := e.Attrs["p"][0]; a.Type != Property || string(appendValue(nil, a.Value)) != `{"object":"urn:a:c","type":"Relationship"}` {
					t.Errorf("p %+v", a)
				}
				if a := e.Attrs["l"]; len(a) != 1 || a[0].Type != Property {
					t.Errorf("l %+v", a)
				}
				if a := e.Attrs["location"][0]; a.Type != GeoProperty {
					t.Errorf("location %+v", a)
				}
			}},
		{name: "keyValues location must be a geometry", in: `{"id":"urn:a:b","type":"T","location":"here"}`, o: ParseOptions{KeyValues: true}, err: "GeoProperty"},
		{name: "keyValues bad geometry", in: `{"id":"urn:a:b","type":"T","area":{"type":"Point","coordinates":[500,0]}}`, o: ParseOptions{KeyValues: true}, err: "longitude"},
		{name: "inferred kinds", in: `{"id":"urn:a:b","type":"T","a":{"value":1},"b":{"object":"urn:x:y"},"c":{"languageMap":{"en":"x"}},
			"d":{"vocab":"v"},"e":{"valueList":[]},"f":{"objectList":[]},"g":{"json":{}},"h":{"value":{"type":"Point","coordinates":[0,0]}},"i":{"x":1}}`,
			check: func(t *testing.T, e *Entity) {
				want := map[string]AttrType{"a": Property, "b": Relationship, "c": LanguageProperty, "d": VocabProperty, "e": ListProperty,
					"f": ListRelationship, "g": JsonProperty, "h": GeoProperty, "i": Property}
				for k, w := range want {
					if got := e.Attrs[k][0].Type; got != w {
						t.Errorf("%s: %v, want %v", k, got, w)
					}
				}
			}},
		{name: "types deduplicated", in: `{"id":"urn:a:b","type":["T","U","T"]}`,
			check: func(t *testing.T, e *Entity) {
				if fmt.Sprint(e.Types) != "[T U]" {
					t.Errorf("types %v", e.Types)
				}
			}},
		{name: "system members ignored on input", in: `{"id":"urn:a:b","type":"T","createdAt":"2020-01-01T00:00:00Z","p":{"value":1,"createdAt":"2020-01-01T00:00:00Z"}}`,
			check: func(t *testing.T, e *Entity) {
				if !e.CreatedAt.IsZero() || !e.Attrs["p"][0].CreatedAt.IsZero() {
					t.Errorf("a client set the system times")
				}
			}},
		{name: "names canonicalised", in: `{"id":"urn:a:b","type":"Short","temp":{"value":1,"acc":2},"v":{"vocab":["x","y"]},"r":{"object":"urn:a:c","objectType":"Short"}}`,
			o: ParseOptions{Names: prefixNames{}},
			check: func(t *testing.T, e *Entity) {
				if e.Types[0] != "ex:Short" || e.Attrs["ex:temp"] == nil || e.Attrs["ex:temp"][0].Sub["ex:acc"] == nil {
					t.Errorf("%+v", e)
				}
				if fmt.Sprint(e.Attrs["ex:v"][0].Value) != "[ex:x ex:y]" || e.Attrs["ex:r"][0].ObjectType != "ex:Short" {
					t.Errorf("vocab %v objectType %v", e.Attrs["ex:v"][0].Value, e.Attrs["ex:r"][0].ObjectType)
				}
				out := AppendEntity(nil, e, RenderOptions{Names: prefixNames{}})
				want := `{"id":"urn:a:b","type":"Short","r":{"type":"Relationship","object":"urn:a:c","objectType":"Short"},"temp":{"type":"Property","value":1,"acc":{"type":"Property","value":2}},"v":{"type":"VocabProperty","vocab":["x","y"]}}`
				if string(out) != want {
					t.Errorf("compacted\n%s\nwant\n%s", out, want)
				}
			}},
		{name: "two terms for one attribute", in: `{"id":"urn:a:b","type":"T","temp":1,"ex:temp":2}`, o: ParseOptions{Names: prefixNames{}}, err: "appears twice"},
		{name: "two terms, two datasets", in: `{"id":"urn:a:b","type":"T","temp":1,"ex:temp":{"value":2,"datasetId":"urn:ds:1"}}`, o: ParseOptions{Names: prefixNames{}},
			check: func(t *testing.T, e *Entity) {
				if len(e.Attrs["ex:temp"]) != 2 {
					t.Errorf("instances %v", e.Attrs["ex:temp"])
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := DecodeJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			e, err := ParseEntity(v, tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, e)
		})
	}
}

// prefixNames is a Names that puts "ex:" before every unprefixed term.
type prefixNames struct{}

func (prefixNames) Canon(t string) string {
	if strings.Contains(t, ":") {
		return t
	}
	return "ex:" + t
}
func (prefixNames) Term(n string) string { return strings.TrimPrefix(n, "ex:") }

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in, err string
	}{
		{in: `{"a":1}`},
		{in: ` [1, 2] `},
		{in: `{"n": 12345678901234567890123}`},
		{in: ``, err: "empty body"},
		{in: `   `, err: "empty body"},
		{in: `{"a":1`, err: "unexpected end of JSON input"},
		{in: `{"a":1} {"b":2}`, err: "data after the JSON document"},
		{in: `{"a":1} x`, err: "data after the JSON document"},
		{in: `{"a":1}]`, err: "data after the JSON document"},
		{in: "{\n\"a\":\n\t1,,\n}", err: "line 3, column 4"},
		{in: `{'a':1}`, err: "line 1, column 2"},
		{in: "\xff", err: "line 1, column 1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, err := DecodeJSON([]byte(tc.in))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.in == `{"n": 12345678901234567890123}` && string(appendValue(nil, v)) != `{"n":12345678901234567890123}` {
					t.Errorf("number not kept exactly: %s", appendValue(nil, v))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
