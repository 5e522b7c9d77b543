package adapters

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// stdJSON is encoding/json's output without HTML escaping, which
// appendJSON does not do either (both are valid JSON).
func stdJSON(t *testing.T, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendJSON(t *testing.T) {
	values := []any{
		nil, "", "plain", "quote \" backslash \\ tab \t nl \n cr \r ctl \x01 \x1f", "CESARÒ ALÌ €", "bad \xff utf8", "sep \u2028 \u2029",
		"<html> & stuff", true, false, int64(-42), 7, 0.0, 1.5, -2.25, 1e21, 1e20, 1e-7, 123456789.125, math.SmallestNonzeroFloat64,
		json.Number("12.50"), []any{}, []any{"a", int64(1), nil},
		map[string]any{"z": 1.0, "a": map[string]any{"k": []any{true}}, "m": "x"},
		Entity{"id": "urn:x:1", "type": "T", "v": map[string]any{"type": "Property", "value": int64(3)}},
		[]Entity{{"id": "urn:x:1"}, {"id": "urn:x:2"}},
		struct{ A int }{1},
	}
	for _, v := range values {
		got, err := appendJSON(nil, v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		want := stdJSON(t, v)
		if !bytes.Equal(got, want) {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
	for _, bad := range []any{math.Inf(1), math.NaN(), json.Number("1x"), map[string]any{"a": math.Inf(-1)}} {
		if _, err := appendJSON(nil, bad); err == nil {
			t.Errorf("%v encoded", bad)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("x", 1.5, int64(2), true)
	f.Add("\xff\u2028\"", -1e-9, int64(-1), false)
	f.Fuzz(func(t *testing.T, s string, fl float64, n int64, bo bool) {
		if math.IsInf(fl, 0) || math.IsNaN(fl) {
			return
		}
		v := map[string]any{s: []any{s, fl, n, bo, nil, map[string]any{"k" + s: s}}}
		got, err := appendJSON(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		want := stdJSON(t, v)
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
