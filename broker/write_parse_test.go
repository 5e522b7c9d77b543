package broker

import (
	"fmt"
	"reflect"
	"testing"
)

// aqObserved is an AirQualityObserved of the benchmarks' shape.
func aqObserved(i int) string {
	return fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:bench-%07d","type":"AirQualityObserved",`+
		`"dateObserved":{"type":"Property","value":"2024-01-10T10:00:00Z"},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}},`+
		`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm10":{"type":"Property","value":22,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm25":{"type":"Property","value":12,"unitCode":"GQ"},`+
		`"o3":{"type":"Property","value":61,"unitCode":"GQ"},`+
		`"temperature":{"type":"Property","value":11.1,"unitCode":"CEL"},`+
		`"relativeHumidity":{"type":"Property","value":0.42},`+
		`"airQualityLevel":{"type":"Property","value":"moderate"},`+
		`"refPointOfInterest":{"type":"Relationship","object":"urn:ngsi-ld:PointOfInterest:MN-3"}}`, i, 30+i%50)
}

// checkParseEntityBytes: when ParseEntityBytes reads data, DecodeJSON and
// ParseEntity must give the same entity.
func checkParseEntityBytes(t *testing.T, data []byte, o ParseOptions) (read bool) {
	t.Helper()
	e, ok := ParseEntityBytes(data, o)
	if !ok {
		return false
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("ParseEntityBytes read %q, DecodeJSON: %v", data, err)
	}
	want, err := ParseEntity(v, o)
	if err != nil {
		t.Fatalf("ParseEntityBytes read %q, ParseEntity: %v", data, err)
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("ParseEntityBytes(%q) =\n%#v\nParseEntity:\n%#v", data, e, want)
	}
	return true
}

// checkEntityHead: EntityHead reads what DecodeJSON gives for the id and
// @context members of an object, and refuses anything else.
func checkEntityHead(t *testing.T, data []byte) {
	t.Helper()
	id, ctx, has, ok := EntityHead(data)
	v, err := DecodeJSON(data)
	m, isObj := v.(map[string]any)
	if ok != (err == nil && isObj) {
		t.Fatalf("EntityHead(%q) ok = %v; DecodeJSON: %v, object %v", data, ok, err, isObj)
	}
	if !ok {
		return
	}
	wantID, _ := m["id"].(string)
	wantCtx, wantHas := m["@context"]
	if id != wantID || has != wantHas || !reflect.DeepEqual(ctx, wantCtx) {
		t.Fatalf("EntityHead(%q) = %q %v %v, want %q %v %v", data, id, ctx, has, wantID, wantCtx, wantHas)
	}
}

func TestEntityHead(t *testing.T) {
	for _, doc := range []string{
		aqObserved(1),
		`{"@context":["https://example.org/a.jsonld",{"x":"https://example.org/x"}],"id":"urn:a:1","n":{"value":[1,{"a":null}]}}`,
		`{"id":"urn:a:1","id":"urn:a:2","@context":1,"@context":2}`,
		`{"id":7}`, `[]`, `{"id":"urn:a:1"} x`, `{"a":[1,}`,
	} {
		checkEntityHead(t, []byte(doc))
	}
}

func TestParseEntityBytes(t *testing.T) {
	stored := ParseOptions{stored: true}
	for _, tc := range []struct {
		name string
		doc  string
		o    ParseOptions
		read bool
	}{
		{"air quality", aqObserved(7), ParseOptions{}, true},
		{"stored air quality", string(encodeStored(newState(mustEntity(t, aqObserved(7)), now()))), stored, true},
		{"system times ignored in a request", `{"id":"urn:a:1","type":"T","createdAt":"2024-01-01T00:00:00Z"}`, ParseOptions{}, false},
		{"no attributes", `{"id":"urn:a:1","type":"T"}`, ParseOptions{}, true},
		{"languageMap", `{"id":"urn:a:1","type":"T","n":{"type":"LanguageProperty","languageMap":{"it":"ciao"}}}`, ParseOptions{}, true},
		{"datasetId", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1,"datasetId":"urn:d:1"}}`, ParseOptions{}, true},
		{"concise", `{"id":"urn:a:1","type":"T","n":1}`, ParseOptions{}, false},
		{"sub-attribute", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1,"s":{"type":"Property","value":2}}}`, ParseOptions{}, false},
		{"two types", `{"id":"urn:a:1","type":["T","U"]}`, ParseOptions{}, false},
		{"duplicate member", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1},"n":{"type":"Property","value":2}}`, ParseOptions{}, false},
		{"duplicate value", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1,"value":2}}`, ParseOptions{}, false},
		{"two kinds", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1,"object":"urn:x"}}`, ParseOptions{}, false},
		{"null value", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":null}}`, ParseOptions{}, false},
		{"location not geo", `{"id":"urn:a:1","type":"T","location":{"type":"Property","value":1}}`, ParseOptions{}, false},
		{"bad geometry", `{"id":"urn:a:1","type":"T","location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1]}}}`, ParseOptions{}, false},
		{"bad observedAt", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1,"observedAt":"yesterday"}}`, ParseOptions{}, false},
		{"no id", `{"type":"T"}`, ParseOptions{}, false},
		{"bad id", `{"id":"not a uri","type":"T"}`, ParseOptions{}, false},
		{"trailing data", `{"id":"urn:a:1","type":"T"} x`, ParseOptions{}, false},
		{"context refused", `{"id":"urn:a:1","type":"T","@context":"https://example.org/c.jsonld"}`, ParseOptions{}, false},
		{"context skipped", `{"id":"urn:a:1","@context":["https://example.org/c.jsonld",{"a":{"b":[1]}}],"type":"T"}`, ParseOptions{SkipContext: true}, true},
		{"keyValues", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1}}`, ParseOptions{KeyValues: true}, false},
		{"merge", `{"id":"urn:a:1","type":"T","n":{"type":"Property","value":1}}`, ParseOptions{AllowNull: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkParseEntityBytes(t, []byte(tc.doc), tc.o); got != tc.read {
				t.Fatalf("read = %v, want %v", got, tc.read)
			}
		})
	}
}

// FuzzParseEntityBytes checks ParseEntityBytes against DecodeJSON and
// ParseEntity on any input, as a request and as the stored form.
func FuzzParseEntityBytes(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(aqObserved(1)))
	f.Add(encodeStored(newState(mustEntity(f, aqObserved(2)), now())))
	f.Add([]byte(`{"@context":{"a":"https://example.org/a"},"id":"urn:a:1","type":"T","a":{"type":"Property","value":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []ParseOptions{{}, {stored: true}, {SkipContext: true}} {
			checkParseEntityBytes(t, data, o)
		}
		checkEntityHead(t, data)
	})
}

func BenchmarkParseAirQuality(b *testing.B) {
	data := []byte(aqObserved(3))
	b.Run("bytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ParseEntityBytes(data, ParseOptions{}); !ok {
				b.Fatal("not read")
			}
		}
	})
	b.Run("decode+parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := DecodeJSON(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParseEntity(v, ParseOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	stored := encodeStored(newState(mustEntity(b, aqObserved(3)), now()))
	b.Run("stored-decode+parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := DecodeJSON(stored)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParseEntity(v, ParseOptions{stored: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeStored(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeStored(b *testing.B) {
	e := newState(mustEntity(b, aqObserved(3)), now())
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeStored(e)
	}
}
