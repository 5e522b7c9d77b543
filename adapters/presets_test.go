package adapters_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all"
)

// schemaValidator compiles a Smart Data Models schema from testdata, with
// the common schema its $refs point to, and validates keyValues entities.
func schemaValidator(t testing.TB, file string) func(adapters.Entity) error {
	t.Helper()
	read := func(name string) gojsonschema.JSONLoader {
		b, err := os.ReadFile(filepath.Join("testdata", "smartdatamodels", name))
		if err != nil {
			t.Fatal(err)
		}
		return gojsonschema.NewBytesLoader(b)
	}
	sl := gojsonschema.NewSchemaLoader()
	sl.Draft = gojsonschema.Draft7
	sl.AutoDetect = false
	if err := sl.AddSchemas(read("common-schema.json")); err != nil {
		t.Fatal(err)
	}
	schema, err := sl.Compile(read(file))
	if err != nil {
		t.Fatal(err)
	}
	return func(e adapters.Entity) error {
		res, err := schema.Validate(gojsonschema.NewGoLoader(e.KeyValues()))
		if err != nil {
			return err
		}
		if !res.Valid() {
			var msgs []string
			for _, d := range res.Errors() {
				msgs = append(msgs, d.String())
			}
			return &schemaError{strings.Join(msgs, "; ")}
		}
		return nil
	}
}

type schemaError struct{ msg string }

func (e *schemaError) Error() string { return e.msg }

func TestSchemaValidatorCanFail(t *testing.T) {
	v := schemaValidator(t, "SDMX-Observation.schema.json")
	bad := adapters.Entity{"id": "urn:ngsi-ld:Observation:1", "type": "Observation",
		"obsStatus": map[string]any{"type": "Property", "value": "not-a-status"}}
	if err := v(bad); err == nil {
		t.Fatal("the schema accepted an invalid obsStatus")
	}
	var example map[string]any
	b, _ := os.ReadFile("testdata/smartdatamodels/KeyPerformanceIndicator.example.json")
	if err := json.Unmarshal(b, &example); err != nil {
		t.Fatal(err)
	}
	kpi := adapters.Entity{}
	for k, val := range example {
		if k == "id" || k == "type" {
			kpi[k] = val
		} else {
			kpi[k] = map[string]any{"type": "Property", "value": val}
		}
	}
	if err := schemaValidator(t, "KeyPerformanceIndicator.schema.json")(kpi); err != nil {
		t.Fatalf("the upstream example fails: %v", err)
	}
}

func TestPresetsParse(t *testing.T) {
	ps, err := adapters.Presets()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range ps {
		names[p.Name] = true
		if p.Description == "" || strings.Contains(p.Description, "\n") || p.Source.Kind == "" || p.Mapping == nil {
			t.Errorf("preset %s: description %q, source kind %q", p.Name, p.Description, p.Source.Kind)
		}
	}
	for _, want := range []string{"anpr_popolazione_residente", "anpr_attivita_residenti", "anpr_certificati"} {
		if !names[want] {
			t.Errorf("preset %s missing", want)
		}
	}
	if _, err := adapters.LookupPreset("anpr_popolazione"); err == nil || !strings.Contains(err.Error(), "anpr_popolazione_residente") {
		t.Errorf("unknown preset error should list the presets: %v", err)
	}
}

// TestANPRPresets maps the real ANPR extracts end to end and validates every
// entity against its Smart Data Models schema.
func TestANPRPresets(t *testing.T) {
	tests := []struct {
		preset, file, schema string
		rows, entities       int64
		spot                 map[string]map[string]any // id -> keyValues that must match
	}{
		{
			preset: "anpr_popolazione_residente", file: "anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv",
			schema: "SDMX-Observation.schema.json", rows: 172, entities: 172,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:Observation:anpr:popolazione-residente:020030:2024-01-10": {
					"type": "Observation", "obsValue": int64(49787), "refArea": "020030", "name": "MANTOVA", "timePeriod": "2024-01-10"},
				"urn:ngsi-ld:Observation:anpr:popolazione-residente:083048:2024-01-10": {
					"obsValue": int64(222171), "refArea": "083048", "name": "MESSINA"},
				"urn:ngsi-ld:Observation:anpr:popolazione-residente:020001:2024-01-10": {
					"obsValue": int64(2702), "refArea": "020001", "name": "ACQUANEGRA SUL CHIESE"},
			},
		},
		{
			preset: "anpr_attivita_residenti", file: "anpr_attivita_residenti_2024_export_excerpt_2024-01_MN_ME.csv",
			schema: "KeyPerformanceIndicator.schema.json", rows: 103, entities: 103 * 6,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:KeyPerformanceIndicator:anpr:attivita-residenti:020030:certificati:2024-01": {
					"type": "KeyPerformanceIndicator", "kpiValue": int64(782), "calculationFrequency": "monthly",
					"calculationPeriod": map[string]any{"from": "2024-01-01", "to": "2024-01-31"}},
				"urn:ngsi-ld:KeyPerformanceIndicator:anpr:attivita-residenti:083048:totale:2024-01":     {"kpiValue": int64(5110)},
				"urn:ngsi-ld:KeyPerformanceIndicator:anpr:attivita-residenti:083048:rettifiche:2024-01": {"kpiValue": int64(15)},
			},
		},
		{
			preset: "anpr_certificati", file: "anpr_certificati_export_excerpt_2021-11_2021-12.csv",
			schema: "SDMX-Observation.schema.json", rows: 63, entities: 63 * 3,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:Observation:anpr:certificati:2021-12:aire:stato-famiglia-aire:bollo": {
					"obsValue": int64(223), "timePeriod": "2021-12", "freq": "M", "refArea": "IT"},
				"urn:ngsi-ld:Observation:anpr:certificati:2021-12:aire:stato-famiglia-aire:carta-libera": {"obsValue": int64(209)},
				"urn:ngsi-ld:Observation:anpr:certificati:2021-12:aire:stato-famiglia-aire:totale":       {"obsValue": int64(432)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			fb, srv := newFakeBroker(t)
			cfg, err := adapters.PresetPipeline(tt.preset, filepath.Join("testdata", "anpr", tt.file), adapters.SinkConfig{URL: srv.URL, BatchSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Validate: schemaValidator(t, tt.schema)})
			if err != nil {
				t.Fatalf("Run: %v (errors: %v)", err, sum.Errors)
			}
			if sum.Read != tt.rows || sum.Mapped != tt.entities || sum.Written != tt.entities || sum.Rejected != 0 {
				t.Errorf("summary %+v, want %d rows and %d entities", sum, tt.rows, tt.entities)
			}
			if len(fb.store) != int(tt.entities) {
				t.Errorf("broker holds %d distinct entities, want %d", len(fb.store), tt.entities)
			}
			for id, want := range tt.spot {
				raw, ok := fb.store[id]
				if !ok {
					t.Errorf("entity %s not delivered", id)
					continue
				}
				var e adapters.Entity
				if err := json.Unmarshal([]byte(raw), &e); err != nil {
					t.Fatal(err)
				}
				kv := e.KeyValues()
				for k, w := range want {
					got := kv[k]
					if f, ok := got.(float64); ok {
						got = int64(f)
					}
					if !reflect.DeepEqual(got, w) {
						t.Errorf("%s: %s = %#v, want %#v", id, k, got, w)
					}
				}
			}
			// Running the same input again changes nothing.
			again, err := adapters.Run(context.Background(), cfg, adapters.Options{})
			if err != nil || again.Unchanged != tt.entities || again.Written != 0 {
				t.Errorf("second run: %+v %v", again, err)
			}
		})
	}
}

// TestPresetExamples keeps the first entity of each preset as a golden file
// (testdata/presets/NAME.example.json), which the README points to.
func TestPresetExamples(t *testing.T) {
	files := map[string]string{
		"anpr_popolazione_residente": "anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv",
		"anpr_attivita_residenti":    "anpr_attivita_residenti_2024_export_excerpt_2024-01_MN_ME.csv",
		"anpr_certificati":           "anpr_certificati_export_excerpt_2021-11_2021-12.csv",
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			cfg, err := adapters.PresetPipeline(name, filepath.Join("testdata", "anpr", file), adapters.SinkConfig{})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := adapters.Run(context.Background(), cfg, adapters.Options{DryRun: true, SampleSize: 1})
			if err != nil || len(sum.Sample) != 1 {
				t.Fatalf("%v %v", sum, err)
			}
			got, _ := json.MarshalIndent(sum.Sample[0], "", "  ")
			golden(t, filepath.Join("testdata", "presets", name+".example.json"), append(got, '\n'))
		})
	}
}
