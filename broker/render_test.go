package broker

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAppendEntityForms(t *testing.T) {
	ts := time.Date(2024, 1, 10, 10, 0, 0, 123e6, time.UTC)
	e := mustParse(t, `{"id":"urn:a:b","type":"T","scope":"/Mantova",
		"p":{"type":"Property","value":1},
		"q":{"type":"Property","value":2,"unitCode":"CEL"},
		"r":{"type":"Relationship","object":"urn:a:c"},
		"g":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},
		"o":{"type":"Property","value":{"type":"Building"}},
		"i":{"type":"Property","value":[{"value":1}]},
		"m":{"type":"Property","value":{"type":"Point","coordinates":[1,2]},"unitCode":"X"}}`, ParseOptions{})
	e.CreatedAt, e.ModifiedAt = ts, ts.Add(time.Second)
	e.Attrs["p"][0].CreatedAt, e.Attrs["p"][0].ModifiedAt = ts, ts
	tests := []struct {
		name string
		o    RenderOptions
		want string
	}{
		{"normalized", RenderOptions{}, `{"id":"urn:a:b","type":"T","scope":"/Mantova",` +
			`"g":{"type":"GeoProperty","value":{"coordinates":[1,2],"type":"Point"}},` +
			`"i":{"type":"Property","value":[{"value":1}]},` +
			`"m":{"type":"Property","value":{"coordinates":[1,2],"type":"Point"},"unitCode":"X"},` +
			`"o":{"type":"Property","value":{"type":"Building"}},` +
			`"p":{"type":"Property","value":1},` +
			`"q":{"type":"Property","value":2,"unitCode":"CEL"},` +
			`"r":{"type":"Relationship","object":"urn:a:c"}}`},
		// Concise: bare values wherever reading them back gives the same
		// attribute; objects (without "type") where a bare value would be
		// read as something else.
		{"concise", RenderOptions{Format: Concise}, `{"id":"urn:a:b","type":"T","scope":"/Mantova",` +
			`"g":{"coordinates":[1,2],"type":"Point"},` +
			`"i":{"value":[{"value":1}]},` +
			`"m":{"type":"Property","value":{"coordinates":[1,2],"type":"Point"},"unitCode":"X"},` +
			`"o":{"value":{"type":"Building"}},` +
			`"p":1,` +
			`"q":{"value":2,"unitCode":"CEL"},` +
			`"r":{"object":"urn:a:c"}}`},
		{"simplified", RenderOptions{Format: Simplified}, `{"id":"urn:a:b","type":"T","scope":"/Mantova",` +
			`"g":{"coordinates":[1,2],"type":"Point"},"i":[{"value":1}],"m":{"coordinates":[1,2],"type":"Point"},` +
			`"o":{"type":"Building"},"p":1,"q":2,"r":"urn:a:c"}`},
		{"sysAttrs and projection", RenderOptions{SysAttrs: true, Attrs: map[string]bool{"p": true, "nothing": true}},
			`{"id":"urn:a:b","type":"T","scope":"/Mantova",` +
				`"p":{"type":"Property","value":1,"createdAt":"2024-01-10T10:00:00.123Z","modifiedAt":"2024-01-10T10:00:00.123Z"},` +
				`"createdAt":"2024-01-10T10:00:00.123Z","modifiedAt":"2024-01-10T10:00:01.123Z"}`},
		{"context", RenderOptions{Format: Simplified, Attrs: map[string]bool{}, Context: []any{"https://x.org/c.jsonld"}},
			`{"id":"urn:a:b","type":"T","scope":"/Mantova","@context":["https://x.org/c.jsonld"]}`},
		{"names", RenderOptions{Format: Simplified, Attrs: map[string]bool{"ex:p": true}, Names: prefixNames{}},
			`{"id":"urn:a:b","type":"T","scope":"/Mantova"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendEntity(nil, e, tc.o))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not JSON")
			}
		})
	}
	if err := roundTrip(e); err != nil {
		t.Fatal(err)
	}
}

// TestAppendEntityDeterministic renders the same entity many times: map
// iteration order must never show in the output.
func TestAppendEntityDeterministic(t *testing.T) {
	e := mustParse(t, `{"id":"urn:a:b","type":["T","U"],
		"a":{"value":{"z":1,"y":2,"x":{"c":3,"b":4,"a":5}},"s3":1,"s2":2,"s1":{"value":3,"k":4,"j":5}},
		"b":[{"value":1,"datasetId":"urn:d:3"},{"value":2,"datasetId":"urn:d:1"},{"value":3},{"value":4,"datasetId":"urn:d:2"}],
		"c":{"languageMap":{"it":"a","en":"b","fr":"c","de":"d"}}}`, ParseOptions{})
	for _, f := range []Format{Normalized, Concise, Simplified} {
		first := AppendEntity(nil, e, RenderOptions{Format: f})
		for range 50 {
			if again := AppendEntity(nil, e, RenderOptions{Format: f}); string(again) != string(first) {
				t.Fatalf("format %d: output changes between calls:\n%s\n%s", f, first, again)
			}
		}
		if f == Normalized && !strings.Contains(string(first), `"b":[{"type":"Property","value":3},{"type":"Property","value":2,"datasetId":"urn:d:1"}`) {
			t.Errorf("instances not in datasetId order (default first): %s", first)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\x00\x1f", `"\n\r\t\u0000\u001F"`},
		{"<&>", `"<&>"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"ok\xffend", `"ok\ufffdend"`},
		{"città", `"città"`},
	}
	for _, tc := range tests {
		got := string(appendString(nil, tc.in))
		if got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendString(%q) = %s is not a JSON string: %v", tc.in, got, err)
		}
	}
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "null"},
		{true, "true"},
		{json.Number("1e400"), "1e400"},
		{json.Number("-0.000"), "-0.000"},
		{json.Number(""), "0"},
		{3.5, "3.5"},
		{int64(-7), "-7"},
		{[]string{"a", "b"}, `["a","b"]`},
		{map[string]any{"b": 1, "a": []any{nil, "x"}}, `{"a":[null,"x"],"b":1}`},
	}
	for _, tc := range tests {
		if got := string(appendValue(nil, tc.in)); got != tc.want {
			t.Errorf("appendValue(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// BenchmarkAppendEntity renders a 15-attribute AirQualityObserved.
func BenchmarkAppendEntity(b *testing.B) {
	data, err := os.ReadFile("testdata/sdm/AirQualityObserved.example.json")
	if err != nil {
		b.Fatal(err)
	}
	v, err := DecodeJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	v.(map[string]any)["id"] = "urn:ngsi-ld:AirQualityObserved:1"
	e, err := ParseEntity(v, ParseOptions{KeyValues: true})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEntity(buf[:0], e, RenderOptions{Format: Normalized})
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkParseEntity decodes and parses the same entity.
func BenchmarkParseEntity(b *testing.B) {
	data, err := os.ReadFile("testdata/entities/all-kinds.good.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		v, err := DecodeJSON(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseEntity(v, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
