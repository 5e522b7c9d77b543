package adapters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
	"github.com/piazza-city/piazza/schemas"
)

// registryValidator validates entities with the embedded Smart Data Models
// registry Piazza uses (schemas package), as 'piazza ingest' does.
func registryValidator(t testing.TB) func(adapters.Entity) error {
	t.Helper()
	reg, err := schemas.NewRegistry(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return func(e adapters.Entity) error {
		m, ok := reg.Get(e.Type())
		if !ok {
			return fmt.Errorf("no model for %s", e.Type())
		}
		vs, err := m.Validate(e.KeyValues())
		if err != nil {
			return err
		}
		if len(vs) > 0 {
			return fmt.Errorf("%v", vs)
		}
		return nil
	}
}

// memSink keeps what it is given, by id.
type memSink struct{ byID map[string]adapters.Entity }

func (s *memSink) Deliver(_ context.Context, b []adapters.Entity) (adapters.DeliveryResult, error) {
	for _, e := range b {
		s.byID[e.ID()] = e
	}
	return adapters.DeliveryResult{Written: len(b)}, nil
}
func (s *memSink) Close() error { return nil }

func runPreset(t *testing.T, preset, file, rejects string) (adapters.Summary, *memSink) {
	t.Helper()
	cfg, err := adapters.PresetPipeline(preset, file, adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rejects, cfg.AllowRejects = rejects, true
	sink := &memSink{byID: map[string]adapters.Entity{}}
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Sink: sink, Validate: registryValidator(t)})
	if err != nil {
		t.Fatalf("%v %+v", err, sum.Errors)
	}
	return sum, sink
}

func kv(t *testing.T, s *memSink, id string) map[string]any {
	t.Helper()
	e, ok := s.byID[id]
	if !ok {
		t.Fatalf("no entity %s (have %d)", id, len(s.byID))
	}
	b, _ := json.Marshal(e.KeyValues())
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestINEMARPreset(t *testing.T) {
	sum, sink := runPreset(t, "inemar_emissioni_comunali", filepath.Join("testdata", "inemar", "inemar_emissioni_comunali_mantova_2021.csv"), "")
	// 15 rows: 15 Observations, and a CarbonFootprint for each of the five
	// positive CO2 eq rows (the absorption of macrosector 11 makes none).
	if sum.Read != 15 || sum.Mapped != 20 || sum.Rejected != 0 {
		t.Fatalf("summary %+v", sum)
	}
	tests := []struct {
		id   string
		want map[string]any
	}{
		{"urn:ngsi-ld:Observation:inemar:020030:2021:ms2:pm10", map[string]any{"obsValue": 21.47, "refArea": "020030", "timePeriod": "2021"}},
		// kt/anno converted to tonnes
		{"urn:ngsi-ld:Observation:inemar:020030:2021:ms2:co2", map[string]any{"obsValue": 71912.0}},
		{"urn:ngsi-ld:Observation:inemar:020030:2021:ms11:co2eq", map[string]any{"obsValue": -430.0}},
		// an ISTAT code that lost its leading zero, and a macrosector by number
		{"urn:ngsi-ld:Observation:inemar:020069:2021:ms7:pm2_5", map[string]any{"obsValue": 3.2, "refArea": "020069"}},
		{"urn:ngsi-ld:Observation:inemar:020069:2021:ms10:acidificanti", map[string]any{"obsValue": 61.0}},
		{"urn:ngsi-ld:CarbonFootprint:inemar:020030:2021:ms2", map[string]any{"CO2eq": 74205.0, "emissionSource": "Combustione non industriale", "emissionDate": "2021-01-01T00:00:00+01:00"}},
		{"urn:ngsi-ld:CarbonFootprint:inemar:020069:2021:ms7", map[string]any{"CO2eq": 18600.0, "emissionSource": "7"}},
	}
	for _, tt := range tests {
		got := kv(t, sink, tt.id)
		for k, w := range tt.want {
			if fmt.Sprint(got[k]) != fmt.Sprint(w) {
				t.Errorf("%s: %s = %v, want %v", tt.id, k, got[k], w)
			}
		}
	}
	if _, ok := sink.byID["urn:ngsi-ld:CarbonFootprint:inemar:020030:2021:ms11"]; ok {
		t.Error("a CarbonFootprint was made of a negative CO2 eq (absorption)")
	}
	if u := sink.byID["urn:ngsi-ld:Observation:inemar:020030:2021:ms2:co2"]["obsValue"].(map[string]any)["unitCode"]; u != "TNE" {
		t.Errorf("unitCode %v", u)
	}
}

// TestOpen311PresetRemovesPersonalData: names, e-mail addresses, phone
// numbers and device ids reach neither the entities nor the reject file.
func TestOpen311PresetRemovesPersonalData(t *testing.T) {
	file := filepath.Join("testdata", "open311", "requests.json")
	rejects := filepath.Join(t.TempDir(), "scarti.jsonl")
	sum, sink := runPreset(t, "open311_service_requests", file, rejects)
	if sum.Read != 4 || sum.Mapped != 3 || sum.Rejected != 1 {
		t.Fatalf("summary %+v", sum)
	}
	got := kv(t, sink, "urn:ngsi-ld:service_requests:open311:638344")
	for k, w := range map[string]any{"service_request_id": "638344", "status": "closed", "service_code": "006",
		"requested_datetime": "2024-03-04T08:37:38+01:00", "address_string": "Via Roma 12, Mantova"} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	personal := personalData(t, file)
	delivered, _ := json.Marshal(sink.byID)
	rej, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range personal {
		if strings.Contains(string(delivered), p) {
			t.Errorf("personal data %q delivered", p)
		}
		if strings.Contains(string(rej), p) {
			t.Errorf("personal data %q kept in the reject file", p)
		}
	}
	if !strings.Contains(string(rej), `"service_request_id":"638351"`) {
		t.Errorf("the rejected request is not in the reject file: %s", rej)
	}
}

// personalData lists the values of the personal fields in an Open311 file.
func personalData(t testing.TB, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []map[string]any
	if err := json.Unmarshal(data, &reqs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range reqs {
		for _, k := range []string{"first_name", "last_name", "email", "phone", "device_id", "account_id"} {
			if v, ok := r[k]; ok {
				out = append(out, fmt.Sprint(v))
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("the fixture has too little personal data to test with: %v", out)
	}
	return out
}

func TestScaleWhenRedact(t *testing.T) {
	m, err := adapters.ParseMapping([]byte(`
decimal: ","
redact: [email]
lookups:
  unit: {t: 1, kt: 1000}
entities:
  - type: Observation
    id: "urn:x:{{id}}"
    attributes:
      v: {from: v, as: number, scale: {from: u, lookup: unit}}
      half: {from: v, as: number, scale: {value: 0.5}}
      who: {template: "{{email}}", default: none}
  - when: [{column: u, equals: [kt]}]
    type: Big
    id: "urn:big:{{id}}"
    attributes:
      v: {from: v, as: integer, scale: {from: u, lookup: unit}}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := adapters.NewHeader([]string{"id", "v", "u", "email"}, "id;v;u;email")
	tests := []struct {
		values []any
		want   string
		err    string
	}{
		{[]any{"1", "1,5", "t", "a@b.it"}, `[{"half":0.75,"id":"urn:x:1","v":1.5,"who":"none"}]`, ""},
		{[]any{"2", "1,234", "kt", "a@b.it"}, `[{"half":0.617,"id":"urn:x:2","v":1234,"who":"none"} {"id":"urn:big:2","v":1234}]`, ""},
		{[]any{"3", "1", "Mt", ""}, "", `value not in lookup table "unit": "Mt"`},
	}
	for _, tt := range tests {
		rec := adapters.Record{Input: "x.csv", Line: 2, Header: h, Values: tt.values, Raw: strings.Join(func() []string {
			s := make([]string, len(tt.values))
			for i, v := range tt.values {
				s[i] = fmt.Sprint(v)
			}
			return s
		}(), ";")}
		m.Redact(&rec)
		if strings.Contains(rec.Raw, "a@b.it") || rec.Values[3] != nil {
			t.Errorf("not redacted: %q %v", rec.Raw, rec.Values)
		}
		es, err := m.Map(&rec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err %v, want %q", err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			kv := e.KeyValues()
			delete(kv, "type")
			b, _ := json.Marshal(kv)
			got = append(got, string(b))
		}
		if g := "[" + strings.Join(got, " ") + "]"; g != tt.want {
			t.Errorf("got %s\nwant %s", g, tt.want)
		}
	}
	for _, bad := range []string{
		"type: A\nid: 'urn:a:{{x}}'\nattributes:\n  v: {from: v, scale: {value: 2}}\n",             // scale without as: number
		"type: A\nid: 'urn:a:{{x}}'\nattributes:\n  v: {from: v, as: number, scale: {value: x}}\n", // not a number
		"redact: ['']\ntype: A\nid: 'urn:a:{{x}}'\nattributes:\n  v: v\n",
		"entities:\n  - when: [{column: u}]\n    type: A\n    id: 'urn:a:{{x}}'\n    attributes:\n      v: v\n",
	} {
		if _, err := adapters.ParseMapping([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// TestNewPresetExamples keeps the first entity of the newer presets as
// golden files, which presets/README.md shows.
func TestNewPresetExamples(t *testing.T) {
	files := map[string]string{
		"inemar_emissioni_comunali": filepath.Join("testdata", "inemar", "inemar_emissioni_comunali_mantova_2021.csv"),
		"open311_service_requests":  filepath.Join("testdata", "open311", "requests.json"),
		"arpa_lombardia_aria":       filepath.Join("testdata", "arpa_lombardia", "sensori_aria.json"),
		"eea_aq_timeseries":         filepath.Join("testdata", "eea", "IT_8_IT0000A_2024_timeseries.csv"),
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			cfg, err := adapters.PresetPipeline(name, file, adapters.SinkConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if name == "arpa_lombardia_aria" {
				tbl, _ := adapters.SourceFor(filepath.Join("testdata", "arpa_lombardia", "stazioni.json"))
				cfg.Tables = map[string]adapters.SourceConfig{"sensori": tbl}
			}
			if name == "eea_aq_timeseries" {
				tbl, _ := adapters.SourceFor(filepath.Join("testdata", "eea", "PanEuropean_metadata_excerpt.csv"))
				tbl, _ = tbl.With("separator", "tab")
				cfg.Tables = map[string]adapters.SourceConfig{"punti": tbl}
			}
			cfg.AllowRejects = true
			sum, err := adapters.Run(context.Background(), cfg, adapters.Options{DryRun: true, SampleSize: 1})
			if err != nil || len(sum.Sample) != 1 {
				t.Fatalf("%v %v", sum, err)
			}
			got, _ := json.MarshalIndent(sum.Sample[0], "", "  ")
			golden(t, filepath.Join("testdata", "presets", name+".example.json"), append(got, '\n'))
		})
	}
}

// TestARPALombardiaPreset joins the measurement feed with the sensor
// registry, here served over HTTP as the portal does.
func TestARPALombardiaPreset(t *testing.T) {
	reg, err := os.ReadFile(filepath.Join("testdata", "arpa_lombardia", "stazioni.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		_, _ = w.Write(reg)
	}))
	defer srv.Close()
	cfg, err := adapters.PresetPipeline("arpa_lombardia_aria", filepath.Join("testdata", "arpa_lombardia", "sensori_aria.json"), adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := adapters.SourceFor(srv.URL + "/resource/ib47-atvt.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tables = map[string]adapters.SourceConfig{"sensori": tbl}
	sink := &memSink{byID: map[string]adapters.Entity{}}
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Sink: sink, Validate: registryValidator(t)})
	if err != nil {
		t.Fatalf("%v %+v", err, sum.Errors)
	}
	// 8 measurements: one -9999 skipped, ammonia and an unknown sensor make
	// no entity, five AirQualityObserved.
	if sum.Read != 8 || sum.Skipped != 1 || sum.Mapped != 5 || len(sink.byID) != 5 {
		t.Fatalf("summary %+v, %d entities", sum, len(sink.byID))
	}
	for id, want := range map[string]map[string]any{
		"urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5504": {"no2": 41.7, "name": "Mantova v.Ariosto", "dateObserved": "2024-01-10T10:00:00+01:00"},
		"urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5507": {"pm10": 52.0},
		"urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5512": {"pm25": 38.4, "name": "Mantova S.Agnese"},
		"urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5515": {"o3": 142.3, "dateObserved": "2024-07-10T15:00:00+02:00"},
		"urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5520": {"co": 0.9},
	} {
		got := kv(t, sink, id)
		for k, w := range want {
			if fmt.Sprint(got[k]) != fmt.Sprint(w) {
				t.Errorf("%s: %s = %v, want %v", id, k, got[k], w)
			}
		}
		if loc := fmt.Sprint(got["location"]); !strings.Contains(loc, "Point") {
			t.Errorf("%s: location %v", id, loc)
		}
	}
	if u := sink.byID["urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5520"]["co"].(map[string]any)["unitCode"]; u != "GP" {
		t.Errorf("CO unitCode %v, want GP (mg/m³)", u)
	}
}

func TestTableErrors(t *testing.T) {
	file := filepath.Join("testdata", "arpa_lombardia", "sensori_aria.json")
	cfg, err := adapters.PresetPipeline("arpa_lombardia_aria", file, adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tables map[string]string
		want   string
	}{
		{"unknown table", map[string]string{"stazioni": "x.csv"}, `no such table`},
		{"missing file", map[string]string{"sensori": "/nonexistent/stazioni.json"}, "no such file"},
		{"no key column", map[string]string{"sensori": filepath.Join("testdata", "anpr", "anpr_certificati_export_excerpt_2021-11_2021-12.csv")}, `"idsensore"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.Tables = map[string]adapters.SourceConfig{}
			for n, p := range tt.tables {
				sc, err := adapters.SourceFor(p)
				if err != nil {
					t.Fatal(err)
				}
				c.Tables[n] = sc
			}
			_, err := adapters.Run(context.Background(), c, adapters.Options{DryRun: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := adapters.ParseMapping([]byte("tables: {t: {source: {kind: csv, path: x.csv}}}\ntype: A\nid: 'urn:a:{{x}}'\nattributes:\n  v: {from: x, lookup: t.y}\n")); err == nil {
		t.Error("a table without key accepted")
	}
	if _, err := adapters.ParseMapping([]byte("type: A\nid: 'urn:a:{{x}}'\nattributes:\n  v: {from: x, lookup: t.y}\n")); err == nil {
		t.Error("a lookup in an undeclared table accepted")
	}
}

func TestEEAPreset(t *testing.T) {
	cfg, err := adapters.PresetPipeline("eea_aq_timeseries", filepath.Join("testdata", "eea", "IT_8_IT0000A_2024_timeseries.csv"), adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := adapters.SourceFor(filepath.Join("testdata", "eea", "PanEuropean_metadata_excerpt.csv"))
	if tbl, err = tbl.With("separator", "tab"); err != nil {
		t.Fatal(err)
	}
	cfg.Tables = map[string]adapters.SourceConfig{"punti": tbl}
	sink := &memSink{byID: map[string]adapters.Entity{}}
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Sink: sink, Validate: registryValidator(t)})
	if err != nil {
		t.Fatalf("%v %+v", err, sum.Errors)
	}
	// four rows, one not valid (Validity -1); the NO2 sampling point is
	// written twice, the last hour wins
	if sum.Read != 4 || sum.Skipped != 1 || sum.Mapped != 3 || len(sink.byID) != 2 {
		t.Fatalf("summary %+v, %d entities", sum, len(sink.byID))
	}
	no2 := kv(t, sink, "urn:ngsi-ld:AirQualityObserved:eea:SPO.IT0000A_8_chemi_2005-01-01_00%3A00%3A00")
	if no2["no2"] != 44.2 || no2["dateObserved"] != "2024-01-10T10:00:00Z" || no2["areaServed"] != "urban background" ||
		fmt.Sprint(no2["location"]) != "map[coordinates:[10.781 45.1463] type:Point]" {
		t.Errorf("NO2 sampling point: %v", no2)
	}
	pm := kv(t, sink, "urn:ngsi-ld:AirQualityObserved:eea:SPO.IT0000A_5_BETA_2005-01-01_00%3A00%3A00")
	if pm["pm10"] != 48.0 {
		t.Errorf("PM10 sampling point: %v", pm)
	}
}
