package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEmbeddedModels(t *testing.T) {
	r := sharedRegistry(t)
	tests := []struct {
		name, iri, file string
	}{
		{"AirQualityObserved", "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", "dataModel.Environment/AirQualityObserved/schema.json"},
		{"CarbonFootprint", "https://smartdatamodels.org/dataModel.Environment/CarbonFootprint", "dataModel.Environment/CarbonFootprint/schema.json"},
		{"KeyPerformanceIndicator", "https://smartdatamodels.org/dataModel.KeyPerformanceIndicator/KeyPerformanceIndicator", "dataModel.KeyPerformanceIndicator/KeyPerformanceIndicator/schema.json"},
		{"Observation", "https://smartdatamodels.org/dataModel.SDMX/Observation", "dataModel.SDMX/Observation/schema.json"},
		{"PointOfInterest", "https://smartdatamodels.org/dataModel.PointOfInterest/PointOfInterest", "dataModel.PointOfInterest/PointOfInterest/schema.json"},
		{"PublicService", "https://smartdatamodels.org/dataModel.CPSV-AP/PublicService", "dataModel.CPSV-AP/PublicService/schema.json"},
		{"service_requests", "https://smartdatamodels.org/dataModel.IssueTracking/service_requests", "dataModel.IssueTracking/service_requests/schema.json"},
	}
	var names []string
	for _, m := range r.List() {
		names = append(names, m.Name)
	}
	var want []string
	for _, tc := range tests {
		want = append(want, tc.name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("List() = %v, want %v (sorted by name)", names, want)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustModel(t, r, tc.name)
			if m.TypeIRI != tc.iri || m.Source != SourceEmbedded {
				t.Errorf("TypeIRI, Source = %q, %q; want %q, %q", m.TypeIRI, m.Source, tc.iri, SourceEmbedded)
			}
			raw, err := os.ReadFile(filepath.Join("models", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Schema(), raw) {
				t.Errorf("Schema() is not the embedded file %s", tc.file)
			}
			if got, ok := r.Lookup(tc.iri); !ok || got != m {
				t.Errorf("Lookup(%s) = %v, %v", tc.iri, got, ok)
			}
			if got, ok := r.Lookup(DefaultContextIRI + tc.name); !ok || got != m {
				t.Errorf("Lookup(default-context/%s) = %v, %v", tc.name, got, ok)
			}
			if m.ID == "" || m.Title == "" {
				t.Errorf("ID %q, Title %q: want both", m.ID, m.Title)
			}
		})
	}
	for _, iri := range []string{
		"https://smartdatamodels.org/dataModel.Environment/WaterObserved",
		DefaultContextIRI + "WaterObserved",
		DefaultContextIRI,
		"AirQualityObserved",
		"",
	} {
		if m, ok := r.Lookup(iri); ok {
			t.Errorf("Lookup(%q) = %s, want no model", iri, m.Name)
		}
	}
}

// The upstream AirQualityObserved example fails its own schema in exactly
// two ways; the report must say exactly those two things.
func TestUpstreamAirQualityObservedExample(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "AirQualityObserved")
	want := []Violation{
		{Pointer: "/dateObserved", Keyword: "format", Message: `must be a date-time with a UTC offset (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string "2016-03-15T11:00:00", which has no offset`},
		{Pointer: "/tsp", Keyword: "type", Message: "must be of type integer; got number 73.3"},
	}
	// The normalized example has one more upstream defect of its own:
	// "precipitation" is {"type": "Boolean", "value": false}.
	wantNormalized := []Violation{want[0],
		{Pointer: "/precipitation", Keyword: "type", Message: "must be of type number; got boolean false"},
		want[1]}
	tests := []struct {
		name string
		kv   map[string]any
		want []Violation
	}{
		{"keyValues", readJSON(t, "examples/AirQualityObserved.example.json"), want},
		{"keyValues UseNumber", readJSONNumbers(t, "examples/AirQualityObserved.example.json"), want},
		{"normalized projected", keyValues(readJSON(t, "examples/AirQualityObserved.example-normalized.json")), wantNormalized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Validate(tc.kv)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(violationStrings(got), "\n"), strings.Join(violationStrings(tc.want), "\n"))
			}
		})
	}
}

// Every embedded model against its upstream examples: example.json
// (keyValues) and example-normalized.json projected to keyValues. The
// expected violations are upstream defects, reported as they are.
func TestUpstreamExamples(t *testing.T) {
	r := sharedRegistry(t)
	aqo := []string{
		`/dateObserved: must be a date-time with a UTC offset (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string "2016-03-15T11:00:00", which has no offset (format)`,
		`/tsp: must be of type integer; got number 73.3 (type)`,
	}
	// An ISO 8601 duration where the schema says date-time.
	publicService := []string{
		`/processingTime: must be a date-time (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string "P2Y9M5DT6H5M20S" (format)`,
	}
	tests := []struct {
		model                string
		keyValues, projected []string // Violation.String()
	}{
		{"AirQualityObserved", aqo, []string{aqo[0], `/precipitation: must be of type number; got boolean false (type)`, aqo[1]}},
		{"CarbonFootprint", nil, nil},
		{"KeyPerformanceIndicator", nil, nil},
		{"Observation", nil, []string{`/decimals: must be of type number; got boolean true (type)`}},
		{"PointOfInterest", nil, nil},
		{"PublicService", publicService, publicService},
		{"service_requests", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			m := mustModel(t, r, tc.model)
			for _, c := range []struct {
				form string
				kv   map[string]any
				want []string
			}{
				{"example.json", readJSON(t, "examples/"+tc.model+".example.json"), tc.keyValues},
				{"example-normalized.json", keyValues(readJSON(t, "examples/"+tc.model+".example-normalized.json")), tc.projected},
			} {
				vs, err := m.Validate(c.kv)
				if err != nil {
					t.Fatal(err)
				}
				if got := violationStrings(vs); !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
					t.Errorf("%s:\n%s\nwant:\n%s", c.form, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
				}
			}
		})
	}
}

func TestValidAirQualityObserved(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "AirQualityObserved")
	kv := readJSON(t, "AirQualityObserved.valid.json")
	vs, err := m.Validate(kv)
	if err != nil || vs != nil {
		t.Fatalf("Validate = %v, %v; want nil, nil", vs, err)
	}
}

// What gojsonschema's "date-time" check accepts: RFC 3339 with an offset,
// and also (more than RFC 3339 allows) a bare date or a bare time; a date and
// time without offset is refused.
func TestDateTimeFormat(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "AirQualityObserved")
	base := readJSON(t, "AirQualityObserved.valid.json")
	tests := []struct {
		value string
		valid bool
	}{
		{"2016-03-15T11:00:00Z", true},
		{"2016-03-15T11:00:00+01:00", true},
		{"2016-03-15T11:00:00.123456Z", true},
		{"2016-03-15T11:00:00", false},
		{"2016-03-15T11:00:00.5", false},
		{"2016-03-15 11:00:00Z", false},
		{"2016-03-15T25:00:00Z", false},
		{"15/03/2016", false},
		{"", false},
		// Leniency of gojsonschema v1.2.0 (not RFC 3339 date-times):
		{"2016-03-15", true},
		{"11:00:00", true},
		{"11:00:00+01:00", true},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			kv := make(map[string]any, len(base))
			for k, v := range base {
				kv[k] = v
			}
			kv["dateObserved"] = tc.value
			vs, err := m.Validate(kv)
			if err != nil {
				t.Fatal(err)
			}
			if (vs == nil) != tc.valid {
				t.Fatalf("valid = %v, want %v (%v)", vs == nil, tc.valid, vs)
			}
			if !tc.valid && (len(vs) != 1 || vs[0].Pointer != "/dateObserved" || vs[0].Keyword != "format") {
				t.Fatalf("violations %v, want one format violation at /dateObserved", vs)
			}
		})
	}
}

func TestContexts(t *testing.T) {
	c := Contexts()
	if len(c) != 2*len(contextRepos) {
		t.Errorf("%d contexts, want %d", len(c), 2*len(contextRepos))
	}
	for _, b := range builtinModels {
		for _, u := range []string{
			"https://raw.githubusercontent.com/smart-data-models/" + b.repo + "/master/context.jsonld",
			"https://smart-data-models.github.io/" + b.repo + "/context.jsonld",
		} {
			doc, ok := c[u]
			if !ok {
				t.Errorf("no context %s", u)
				continue
			}
			var ctx struct {
				Context map[string]any `json:"@context"`
			}
			if err := json.Unmarshal(doc, &ctx); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			m := mustModel(t, sharedRegistry(t), b.name)
			if ctx.Context[b.name] != m.TypeIRI {
				t.Errorf("%s: %s expands to %v, model TypeIRI %s", u, b.name, ctx.Context[b.name], m.TypeIRI)
			}
		}
	}
	// Fresh on every call.
	for u := range c {
		c[u][0] = 'X'
		if Contexts()[u][0] == 'X' {
			t.Fatal("Contexts shares its byte slices")
		}
		break
	}
}

func TestCanonicalURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json#/definitions/airQualityLevel",
			"https://smart-data-models.github.io/dataModel.Environment/Environment-schema.json", true},
		{"https://raw.githubusercontent.com/smart-data-models/data-models/main/common-schema.json",
			"https://smart-data-models.github.io/data-models/common-schema.json", true},
		{"http://smart-data-models.github.io/data-models/common-schema.json#",
			"https://smart-data-models.github.io/data-models/common-schema.json", true},
		{"HTTPS://Example.ORG/a/B.json", "https://example.org/a/B.json", true},
		{"https://raw.githubusercontent.com/other/repo/master/x.json", "https://raw.githubusercontent.com/other/repo/master/x.json", true},
		{"#/definitions/x", "", false},
		{"common-schema.json", "", false},
		{"file:///etc/passwd", "", false},
	}
	for _, tc := range tests {
		got, ok := canonicalURL(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("canonicalURL(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDirModels(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ParkingFee.json", `{
	  "$schema": "https://json-schema.org/draft/2020-12/schema",
	  "$id": "https://city.example/schemas/ParkingFee.json",
	  "x-ngsi-ld-type": "https://city.example/ns/ParkingFee",
	  "allOf": [{"$ref": "https://smart-data-models.github.io/data-models/common-schema.json#/definitions/GSMA-Commons"},
	            {"$ref": "https://city.example/schemas/Money.json"}],
	  "required": ["id", "type", "amount"]
	}`)
	write("Money.json", `{"$id": "https://city.example/schemas/Money.json",
	  "properties": {"amount": {"type": "number", "minimum": 0}}}`)
	write("AirQualityObserved.json", `{"required": ["id", "type", "stationCode"]}`)
	write("README.txt", "not a schema")

	r := freshRegistry(t, Options{Dir: dir})
	fee := mustModel(t, r, "ParkingFee")
	if fee.TypeIRI != "https://city.example/ns/ParkingFee" || fee.Source != filepath.Join(dir, "ParkingFee.json") {
		t.Errorf("ParkingFee: TypeIRI %q, Source %q", fee.TypeIRI, fee.Source)
	}
	money := mustModel(t, r, "Money")
	if money.TypeIRI != DefaultContextIRI+"Money" {
		t.Errorf("Money: TypeIRI %q", money.TypeIRI)
	}
	aqo := mustModel(t, r, "AirQualityObserved")
	if aqo.Source == SourceEmbedded || aqo.TypeIRI != "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved" {
		t.Errorf("the file did not replace the embedded AirQualityObserved with its type IRI: %+v", aqo)
	}
	vs, err := fee.Validate(map[string]any{"id": "urn:ngsi-ld:ParkingFee:1", "type": "ParkingFee", "amount": -2})
	if err != nil {
		t.Fatal(err)
	}
	if got := violationStrings(vs); !slices.Equal(got, []string{"/amount: must be greater than or equal to 0; got number -2 (minimum)"}) {
		t.Errorf("violations %q", got)
	}
	vs, _ = aqo.Validate(readJSON(t, "AirQualityObserved.valid.json"))
	if got := violationStrings(vs); !slices.Equal(got, []string{"/stationCode: required property is missing (required)"}) {
		t.Errorf("violations %q", got)
	}

	bad := []struct {
		file, body string
		want       error
	}{
		{"Broken.json", `{"type": "object",`, ErrInvalidSchema},
		{"Loop.json", `{"$ref": "#"}`, ErrRecursiveSchema},
		{"Remote.json", `{"$ref": "https://example.org/other.json"}`, ErrUnresolvedRef},
		{"Huge.json", `{"description": "` + strings.Repeat("x", 2048) + `"}`, ErrSchemaTooLarge},
		{"bad name.json", `{}`, ErrInvalidName},
	}
	for _, tc := range bad {
		t.Run(tc.file, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, tc.file), []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := NewRegistry(Options{Dir: d, MaxSchemaBytes: 1024})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %q does not name the file %s", err, tc.file)
			}
		})
	}
	if _, err := NewRegistry(Options{Dir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing directory must be an error")
	}
}

// Every $ref of the embedded models resolves to an embedded document,
// preloaded under the very URL it is written with.
func TestPreloadedForms(t *testing.T) {
	r := sharedRegistry(t)
	want := map[string][]string{
		"AirQualityObserved": {
			"https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json",
			commonURL,
		},
		"CarbonFootprint":         {commonURL},
		"KeyPerformanceIndicator": {commonURL},
		"Observation":             {commonURL},
		"PointOfInterest":         {commonURL},
		"PublicService":           {commonURL},
		"service_requests":        {commonURL},
	}
	for _, m := range r.List() {
		a, err := analyse(m.doc, r.lookupEmbedded)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		var forms []string
		for f, d := range a.forms {
			forms = append(forms, f)
			if d.owner == "" || !strings.HasPrefix(d.owner, "embedded ") {
				t.Errorf("%s: %s resolves to %q", m.Name, f, d.owner)
			}
		}
		slices.Sort(forms)
		if !slices.Equal(forms, want[m.Name]) {
			t.Errorf("%s: preloaded %v, want %v", m.Name, forms, want[m.Name])
		}
		for _, p := range a.refs {
			if _, ok := a.targets[p]; !ok {
				t.Errorf("%s: $ref at %v unresolved", m.Name, a.visited[p])
			}
		}
	}
}

func TestModelJSON(t *testing.T) {
	m := mustModel(t, sharedRegistry(t), "PointOfInterest")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"PointOfInterest","typeIRI":"https://smartdatamodels.org/dataModel.PointOfInterest/PointOfInterest","source":"embedded","id":"https://smart-data-models.github.io/dataModel.PointOfInterest/PointOfInterest/schema.json","title":"Smart Data Models - Point of Interest schema"}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
}
