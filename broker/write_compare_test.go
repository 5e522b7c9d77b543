package broker

import (
	"bytes"
	"encoding/json"
	"testing"
)

// renderedSame is the reference the value comparison must agree with.
func renderedSame(a, b *Entity) bool {
	o := RenderOptions{Format: Normalized}
	return bytes.Equal(AppendEntity(nil, a, o), AppendEntity(nil, b, o))
}

func mustEntity(tb testing.TB, doc string) *Entity {
	tb.Helper()
	v, err := DecodeJSON([]byte(doc))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := ParseEntity(v, ParseOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestCompareStates(t *testing.T) {
	const base = `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
		`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
		`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`
	for _, tc := range []struct {
		name  string
		other string
		want  likeness
	}{
		{"identical", base, same},
		{"number changed", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":2.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
			`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`, differ},
		{"number spelled otherwise", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.50,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
			`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`, differ},
		{"coordinate changed", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,3]}},` +
			`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`, differ},
		{"unit dropped", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.5,"observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
			`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`, differ},
		{"instances in another order", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
			`"m":[{"type":"Property","value":2,"datasetId":"urn:d:1"},{"type":"Property","value":1}]}`, unsure},
		{"an attribute fewer", `{"id":"urn:a:1","type":"T","p":{"type":"Property","value":1.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}}}`, unsure},
		{"a property became a relationship", `{"id":"urn:a:1","type":"T","p":{"type":"Relationship","object":"urn:x:1"},` +
			`"r":{"type":"Relationship","object":"urn:b:1"},"loc":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},` +
			`"m":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:d:1"}]}`, differ},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustEntity(t, base), mustEntity(t, tc.other)
			got := compareStates(a, b)
			if got != tc.want {
				t.Fatalf("compareStates = %d, want %d", got, tc.want)
			}
			if ref := renderedSame(a, b); got != unsure && (got == same) != ref {
				t.Fatalf("compareStates = %d but the renderings are equal: %v", got, ref)
			}
			if sameContent(a, b) != renderedSame(a, b) {
				t.Fatalf("sameContent disagrees with the renderings")
			}
		})
	}
}

// TestCompareStatesEmptyNumber: an empty json.Number is written as 0, so
// it is not provably different from "0".
func TestCompareStatesEmptyNumber(t *testing.T) {
	if v := valueVerdict(json.Number(""), json.Number("0")); v != unsure {
		t.Fatalf("likeness %d, want unsure", v)
	}
	if v := valueVerdict("a\xff", "a\xfe"); v != unsure {
		t.Fatalf("invalid UTF-8: likeness %d, want unsure", v)
	}
}

// FuzzCompareStates checks that whatever the value comparison proves about
// two parsed entities, the renderings agree with it.
func FuzzCompareStates(f *testing.F) {
	f.Add([]byte(`{"id":"urn:a:1","type":"T","p":{"value":1}}`), []byte(`{"id":"urn:a:1","type":"T","p":{"value":2}}`))
	f.Add([]byte(`{"id":"urn:a:1","type":"T","p":{"value":"x","s":{"value":1}}}`), []byte(`{"id":"urn:a:1","type":"T","p":{"value":"x","s":{"value":1.0}}}`))
	f.Add([]byte(`{"id":"urn:a:1","type":"T","v":{"vocab":"a"}}`), []byte(`{"id":"urn:a:1","type":"T","v":{"vocab":"b"}}`))
	f.Add([]byte(`{"id":"urn:a:1","type":"T","p":{"value":{"a":[1,{"b":null}]}}}`), []byte(`{"id":"urn:a:1","type":"T","p":{"value":{"a":[1,{"b":false}]}}}`))
	f.Fuzz(func(t *testing.T, da, db []byte) {
		va, err := DecodeJSON(da)
		if err != nil {
			return
		}
		vb, err := DecodeJSON(db)
		if err != nil {
			return
		}
		for _, kv := range []bool{false, true} {
			a, err := ParseEntity(va, ParseOptions{KeyValues: kv})
			if err != nil {
				continue
			}
			b, err := ParseEntity(vb, ParseOptions{KeyValues: kv})
			if err != nil {
				continue
			}
			ref := renderedSame(a, b)
			if v := compareStates(a, b); v != unsure && (v == same) != ref {
				t.Fatalf("compareStates = %d, renderings equal = %v", v, ref)
			}
			if sameContent(a, b) != ref {
				t.Fatalf("sameContent = %v, renderings equal = %v", !ref, ref)
			}
		}
	})
}

// BenchmarkSameContent is the unchanged check of an upsert: a state whose
// no2 changed (decided by the value comparison) and an identical one.
func BenchmarkSameContent(b *testing.B) {
	cur := mustEntity(b, aqObserved(1))
	for _, tc := range []struct {
		name string
		next *Entity
		want bool
	}{
		{"changed", mustEntity(b, aqObserved(2)), false},
		{"unchanged", mustEntity(b, aqObserved(1)), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if sameContent(cur, tc.next) != tc.want {
					b.Fatal("wrong answer")
				}
			}
		})
		// The check as it was before the value comparison: both rendered.
		b.Run(tc.name+"-rendered", func(b *testing.B) {
			var x, y []byte
			o := RenderOptions{Format: Normalized}
			b.ReportAllocs()
			for b.Loop() {
				x, y = AppendEntity(x[:0], cur, o), AppendEntity(y[:0], tc.next, o)
				if bytes.Equal(x, y) != tc.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
