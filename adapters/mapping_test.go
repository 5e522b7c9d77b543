package adapters_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
)

func mustMapping(t testing.TB, y string) *adapters.Mapping {
	t.Helper()
	m, err := adapters.ParseMapping([]byte(y))
	if err != nil {
		t.Fatalf("ParseMapping: %v", err)
	}
	return m
}

func csvRecord(header []string, line int, values ...string) adapters.Record {
	vs := make([]any, len(values))
	for i, v := range values {
		vs[i] = v
	}
	return adapters.Record{Input: "in.csv", Line: line, Index: line - 1, Header: adapters.NewHeader(header, strings.Join(header, ",")),
		Values: vs, Raw: strings.Join(values, ",")}
}

func TestParseMappingErrors(t *testing.T) {
	const base = "type: T\nid: \"urn:x:{{A}}\"\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", base + "attributes: {a: A}\ncolour: red\n", `unknown key "colour"`},
		{"unknown attribute key", base + "attributes:\n  a: {form: A}\n", `unknown key "form"`},
		{"unknown key in object", base + "attributes:\n  a:\n    object:\n      x: {frm: A}\n", `unknown key "frm"`},
		{"unknown skip key", base + "attributes: {a: A}\nskip: [{column: A, emtpy: true}]\n", `unknown key "emtpy"`},
		{"unknown conversion", base + "attributes:\n  a: {from: A, as: integr}\n", `attribute "a": as: unknown conversion "integr"`},
		{"unknown filter", "type: T\nid: \"urn:x:{{A | lowr}}\"\nattributes: {a: A}\n", `unknown filter "lowr"`},
		{"pad without width", "type: T\nid: \"urn:x:{{A | pad}}\"\nattributes: {a: A}\n", "pad:6"},
		{"unclosed placeholder", "type: T\nid: \"urn:x:{{A\"\nattributes: {a: A}\n", "'{{' without '}}'"},
		{"missing type", "id: \"urn:x:{{A}}\"\nattributes: {a: A}\n", "type is required"},
		{"missing id", "type: T\nattributes: {a: A}\n", "id is required"},
		{"constant id", "type: T\nid: urn:x:1\nattributes: {a: A}\n", "no {{placeholder}}"},
		{"id without scheme", "type: T\nid: \"{{A}}\"\nattributes: {a: A}\n", "URI scheme"},
		{"no attributes", base, "at least one"},
		{"two sources", base + "attributes:\n  a: {from: A, value: 1}\n", "exactly one of"},
		{"bad kind", base + "attributes:\n  a: {from: A, kind: Property2}\n", `kind "Property2"`},
		{"location not geo", base + "attributes:\n  location: A\n", "must be kind GeoProperty"},
		{"reserved name", base + "attributes:\n  observedAt: A\n", "reserved name"},
		{"bad attribute name", base + "attributes:\n  \"a b\": A\n", "not a valid attribute name"},
		{"lookup table missing", base + "attributes:\n  a: {from: A, lookup: nope}\n", `no table "nope"`},
		{"lookup filter table missing", "type: T\nid: \"urn:x:{{A | lookup:nope}}\"\nattributes: {a: A}\n", "lookup:nope"},
		{"column without unpivot", base + "attributes:\n  a: $value\n", "only defined with unpivot"},
		{"column in a template without unpivot", base + "attributes:\n  a: {template: \"x {{$column}}\"}\n", "only defined with unpivot"},
		{"value in an object without unpivot", base + "attributes:\n  a: {object: {k: $value}}\n", "only defined with unpivot"},
		{"unpivot id without column", base + "unpivot: {columns: [B, C]}\nattributes:\n  a: $value\n", "{{$column}}"},
		{"bad timezone", base + "timezone: Mars/Olympus\nattributes: {a: A}\n", `timezone: "Mars/Olympus"`},
		{"bad decimal", base + "decimal: x\nattributes: {a: A}\n", `decimal: "x"`},
		{"bad context", base + "context: 12\nattributes: {a: A}\n", "context"},
		{"as on constant", base + "attributes:\n  a: {value: 1, as: integer}\n", "apply to from and template only"},
		{"unit on relationship", base + "attributes:\n  a: {from: A, kind: Relationship, unitCode: C62}\n", "unitCode applies"},
		{"skip rule two conditions", base + "attributes: {a: A}\nskip: [{column: A, empty: true, equals: [x]}]\n", "exactly one of empty, equals, matches"},
		{"skip bad regexp", base + "attributes: {a: A}\nskip: [{column: A, matches: \"(\"}]\n", "matches"},
		{"both forms", base + "attributes: {a: A}\nentities: [{type: T, id: \"urn:x:{{A}}\", attributes: {a: A}}]\n", "not both"},
		{"point without lat", base + "attributes:\n  location: {kind: GeoProperty, point: {lon: X}}\n", "lon and lat"},
		{"not yaml", "type: [\n", "adapters: invalid mapping"},
		{"empty", "", "the document is empty"},
		{"a list", "- a\n", "must be a YAML mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adapters.ParseMapping([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, adapters.ErrInvalidMapping) {
				t.Errorf("%v does not wrap ErrInvalidMapping", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestMapValues(t *testing.T) {
	header := []string{"COD_ISTAT_COMUNE", "DATA ELABORAZIONE", "VALORE", "NOTE", "LAT", "LON", "TIPO"}
	m := mustMapping(t, `
decimal: ","
lookups:
  tipo: {A: alpha, B: beta}
type: Thing
id: "urn:ngsi-ld:Thing:{{cod istat comune}}:{{data_elaborazione | date}}:{{NOTE | slug}}"
observedAt: DATA ELABORAZIONE
attributes:
  code: {from: COD_ISTAT_COMUNE, as: string}
  rawCode: COD_ISTAT_COMUNE
  value: {from: VALORE, as: number, unitCode: KGM}
  count: {from: VALORE, as: integer, default: -1}
  day: {from: DATA ELABORAZIONE, as: date}
  month: {from: DATA ELABORAZIONE, as: month}
  last: {from: DATA ELABORAZIONE, as: endDate}
  when: {from: DATA ELABORAZIONE, as: datetime}
  note: NOTE
  kind: {from: TIPO, lookup: tipo, default: other}
  constant: {value: 42}
  tags: {value: [a, b]}
  label: {template: "{{NOTE | upper}} ({{COD_ISTAT_COMUNE}})"}
  owner: {kind: Relationship, template: "urn:ngsi-ld:Municipality:{{COD_ISTAT_COMUNE}}"}
  location: {kind: GeoProperty, point: {lon: LON, lat: LAT}}
`)
	rec := csvRecord(header, 2, "020001", "10-01-2024", "1.234,5", "Città nuova", "45,16", "10,79", "C")
	got, err := m.Map(&rec)
	if err == nil {
		t.Fatal("integer conversion of 1.234,5 should fail")
	}
	var re *adapters.RecordError
	if !errors.As(err, &re) || re.Line != 2 || re.Column != 3 || re.Field != "VALORE" || !errors.Is(err, adapters.ErrInvalidNumber) {
		t.Fatalf("error = %v (%+v), want line 2 column 3 VALORE invalid number", err, re)
	}
	if !strings.Contains(err.Error(), "in.csv:2: column 3 (VALORE): attribute count:") {
		t.Errorf("message = %q", err)
	}

	rec = csvRecord(header, 3, "020001", "10-01-2024", "1.234", "Città nuova", "45,16", "10,79", "B")
	got, err = m.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d entities", len(got))
	}
	e := got[0]
	if e.ID() != "urn:ngsi-ld:Thing:020001:2024-01-10:citta-nuova" || e.Type() != "Thing" {
		t.Errorf("id %q type %q", e.ID(), e.Type())
	}
	if e["@context"] != adapters.CoreContext {
		t.Errorf("@context = %v", e["@context"])
	}
	want := map[string]any{
		"code":     "020001",
		"rawCode":  "020001",
		"value":    1234.0,
		"count":    int64(1234),
		"day":      "2024-01-10",
		"month":    "2024-01",
		"last":     "2024-01-10",
		"when":     "2024-01-10T00:00:00+01:00",
		"note":     "Città nuova",
		"kind":     "beta",
		"constant": int64(42),
		"tags":     []any{"a", "b"},
		"label":    "CITTÀ NUOVA (020001)",
		"owner":    "urn:ngsi-ld:Municipality:020001",
		"location": map[string]any{"type": "Point", "coordinates": []any{10.79, 45.16}},
	}
	kv := e.KeyValues()
	for k, w := range want {
		if !reflect.DeepEqual(kv[k], w) {
			t.Errorf("%s = %#v, want %#v", k, kv[k], w)
		}
	}
	value := e["value"].(map[string]any)
	if value["unitCode"] != "KGM" || value["observedAt"] != "2024-01-10T00:00:00+01:00" || value["type"] != "Property" {
		t.Errorf("value attribute = %v", value)
	}
	if _, ok := e["constant"].(map[string]any)["observedAt"]; ok {
		t.Error("a constant got observedAt")
	}
	if o := e["owner"].(map[string]any); o["type"] != "Relationship" || o["observedAt"] != nil {
		t.Errorf("owner = %v", o)
	}
	if l := e["location"].(map[string]any); l["type"] != "GeoProperty" {
		t.Errorf("location = %v", l)
	}
	if _, err := json.Marshal(e); err != nil {
		t.Fatal(err)
	}

	// Lookup miss without default, empty optional value, empty required value.
	m2 := mustMapping(t, `
lookups: {t: {A: x}}
type: T
id: "urn:x:{{C}}"
attributes:
  k: {from: K, lookup: t}
  opt: {from: O, as: number}
  req: {from: R, required: true}
`)
	h := []string{"C", "K", "O", "R"}
	for _, tc := range []struct {
		vals []string
		want error
		col  int
	}{
		{[]string{"1", "Z", "", "r"}, adapters.ErrLookupMiss, 2},
		{[]string{"1", "A", "", ""}, adapters.ErrRequiredEmpty, 4},
		{[]string{"", "A", "", "r"}, adapters.ErrRequiredEmpty, 1},
	} {
		rec := csvRecord(h, 5, tc.vals...)
		_, err := m2.Map(&rec)
		var re *adapters.RecordError
		if !errors.Is(err, tc.want) || !errors.As(err, &re) || re.Column != tc.col {
			t.Errorf("%v: error %v, want %v at column %d", tc.vals, err, tc.want, tc.col)
		}
	}
	rec = csvRecord(h, 6, "1", "A", "  ", "r")
	ents, err := m2.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ents[0]["opt"]; ok {
		t.Error("an empty optional value made an attribute")
	}
}

func TestIDEscaping(t *testing.T) {
	rec := csvRecord([]string{"A"}, 2, "Stato famiglia/AIRE:1")
	m := mustMapping(t, "type: T\nid: \"urn:x:{{A | raw}}\"\nattributes: {a: A}\n")
	if _, err := m.Map(&rec); !errors.Is(err, adapters.ErrInvalidEntity) {
		t.Errorf("raw id with a space: %v, want ErrInvalidEntity", err)
	}
	m = mustMapping(t, "type: T\nid: \"urn:x:{{A}}\"\nattributes: {a: A}\n")
	ents, err := m.Map(&rec)
	if err != nil || ents[0].ID() != "urn:x:Stato%20famiglia%2FAIRE%3A1" {
		t.Errorf("escaped id %v, %v", ents, err)
	}
}

func TestCheckHeader(t *testing.T) {
	m := mustMapping(t, `
type: T
id: "urn:x:{{COD_ISTAT_COMUNE}}"
attributes:
  a: {from: DATA ELABORAZIONE, as: date}
  b: RESIDENTI
`)
	ok := adapters.NewHeader([]string{"data_elaborazione", "Cod Istat Comune", "residenti"}, "")
	if err := m.CheckHeader(ok); err != nil {
		t.Errorf("tolerant header refused: %v", err)
	}
	bad := adapters.NewHeader([]string{"DATA ELABORAZIONE", "COD_ISTAT_COMUNE", "POPOLAZIONE"}, "")
	err := m.CheckHeader(bad)
	if !errors.Is(err, adapters.ErrMissingColumn) {
		t.Fatalf("err = %v", err)
	}
	want := `adapters: mapped column missing from input: "RESIDENTI" (columns in the input: DATA ELABORAZIONE, COD_ISTAT_COMUNE, POPOLAZIONE)`
	if err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
}

func TestSkipAndUnpivot(t *testing.T) {
	m := mustMapping(t, `
skip:
  - {column: COMUNE, equals: [TOTALE]}
  - {column: COD, empty: true}
  - {column: COMUNE, matches: "^#"}
lookups:
  slug: {RETTIFICHE: rettifiche, CAMBI_RESIDENZA: cambi}
type: KPI
id: "urn:x:{{COD}}:{{$column | lookup:slug}}"
unpivot: {columns: [RETTIFICHE, CAMBI_RESIDENZA], skipEmpty: true}
attributes:
  v: {from: $value, as: integer}
  what: $column
`)
	h := []string{"COD", "COMUNE", "RETTIFICHE", "CAMBI_RESIDENZA"}
	for _, vals := range [][]string{{"1", "TOTALE", "1", "2"}, {"", "X", "1", "2"}, {"1", "# note", "", ""}} {
		rec := csvRecord(h, 2, vals...)
		if skip, err := m.Skip(&rec); !skip || err != nil {
			t.Errorf("%v not skipped (%v)", vals, err)
		}
	}
	rec := csvRecord(h, 2, "020030", "MANTOVA", "3", "")
	if skip, _ := m.Skip(&rec); skip {
		t.Fatal("skipped")
	}
	ents, err := m.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].ID() != "urn:x:020030:rettifiche" || ents[0].KeyValues()["v"] != int64(3) || ents[0].KeyValues()["what"] != "RETTIFICHE" {
		t.Errorf("entities = %v", ents)
	}
}

func TestJSONValues(t *testing.T) {
	m := mustMapping(t, `
type: T
id: "urn:x:{{id}}"
attributes:
  n: {from: n, as: number}
  city: address.city
  flag: {from: ok, as: boolean}
  geo: {kind: GeoProperty, from: $geometry}
  raw: n
`)
	h := adapters.NewFieldsHeader([]string{"id", "n", "address", "ok", "$geometry"})
	rec := adapters.Record{Input: "x.json", Index: 1, Header: h, Values: []any{
		json.Number("7"), json.Number("2.5"), map[string]any{"city": "Mantova"}, true,
		map[string]any{"type": "Point", "coordinates": []any{json.Number("10.79"), json.Number("45.16")}},
	}}
	ents, err := m.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	kv := ents[0].KeyValues()
	if kv["n"] != 2.5 || kv["city"] != "Mantova" || kv["flag"] != true || kv["raw"] != json.Number("2.5") || kv["geo"] == nil {
		t.Errorf("kv = %v", kv)
	}
	// A field missing from one JSON record is an empty value, not an error.
	rec2 := adapters.Record{Input: "x.json", Index: 2, Header: adapters.NewFieldsHeader([]string{"id"}), Values: []any{"8"}}
	ents, err = m.Map(&rec2)
	if err != nil || len(ents[0]) != 3 {
		t.Errorf("sparse record: %v %v", ents, err)
	}
	// A bad geometry names the attribute.
	rec.Values[4] = map[string]any{"type": "Circle"}
	if _, err := m.Map(&rec); !errors.Is(err, adapters.ErrInvalidValue) || !strings.Contains(err.Error(), "attribute geo") {
		t.Errorf("bad geometry: %v", err)
	}
}

func TestMultipleEntities(t *testing.T) {
	m := mustMapping(t, `
context: [https://example.org/a.jsonld, https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld]
entities:
  - type: A
    id: "urn:a:{{K}}"
    attributes: {x: K}
  - type: B
    id: "urn:b:{{K}}"
    attributes: {y: {from: K, as: integer}}
`)
	if got := m.Types(); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Errorf("types %v", got)
	}
	rec := csvRecord([]string{"K"}, 2, "5")
	ents, err := m.Map(&rec)
	if err != nil || len(ents) != 2 || ents[1].KeyValues()["y"] != int64(5) {
		t.Fatalf("%v %v", ents, err)
	}
	if c, ok := ents[0]["@context"].([]any); !ok || len(c) != 2 {
		t.Errorf("@context = %v", ents[0]["@context"])
	}
}

func TestRecordHelpers(t *testing.T) {
	rec := csvRecord([]string{"DATA ELABORAZIONE", "N"}, 4, "10-01-2024", "3")
	if v, ok := rec.Get("data_elaborazione"); !ok || v != "10-01-2024" {
		t.Errorf("Get = %v %v", v, ok)
	}
	if _, ok := rec.Get("nope"); ok {
		t.Error("Get found a missing field")
	}
	if rec.Position() != "in.csv:4" {
		t.Errorf("Position = %q", rec.Position())
	}
	rec.Line = 0
	if rec.Position() != "in.csv: record 3" {
		t.Errorf("Position = %q", rec.Position())
	}
}

func TestGeometryValues(t *testing.T) {
	m := mustMapping(t, "type: T\nid: \"urn:x:{{K}}\"\nattributes:\n  location: {kind: GeoProperty, from: G}\n")
	for g, ok := range map[string]bool{
		`{"type":"Point","coordinates":[10.79,45.16]}`:                 true,
		`{"type":"GeometryCollection","geometries":[]}`:                true,
		`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`: true,
		`{"type":"Point"}`: false,
		`{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}`: false,
		`POINT(10.79 45.16)`: false,
		`[10.79, 45.16]`:     false,
	} {
		rec := csvRecord([]string{"K", "G"}, 2, "1", g)
		_, err := m.Map(&rec)
		if (err == nil) != ok {
			t.Errorf("%s: %v", g, err)
		}
		if err != nil && !errors.Is(err, adapters.ErrInvalidValue) {
			t.Errorf("%s: %v is not ErrInvalidValue", g, err)
		}
	}
	// Constant geometry and constant point coordinates.
	m = mustMapping(t, `
type: T
id: "urn:x:{{K}}"
attributes:
  location: {kind: GeoProperty, value: {type: Point, coordinates: [10.79, 45.16]}}
  area: {kind: GeoProperty, point: {lon: {value: 10}, lat: LAT}}
`)
	rec := csvRecord([]string{"K", "LAT"}, 2, "1", "45.5")
	ents, err := m.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if c := ents[0].KeyValues()["area"].(map[string]any)["coordinates"]; !reflect.DeepEqual(c, []any{10.0, 45.5}) {
		t.Errorf("area = %v", c)
	}
	if _, err := adapters.ParseMapping([]byte("type: T\nid: \"urn:x:{{K}}\"\nattributes:\n  location: {kind: GeoProperty, value: {type: Circle}}\n")); err == nil {
		t.Error("a constant that is not a geometry was accepted")
	}
}
