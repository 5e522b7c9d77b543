package jsonld

import (
	"encoding/json"
	"math"
	"testing"
)

func TestHashJSONDistinguishesValues(t *testing.T) {
	values := []string{
		`null`, `true`, `false`, `1`, `1.5`, `"1"`, `"n"`, `"t"`, `""`, `[]`, `{}`, `[null]`, `[[]]`,
		`["a","b"]`, `["ab"]`, `["a",["b"]]`, `[["a"],"b"]`,
		`{"a":"bc"}`, `{"ab":"c"}`, `{"a":"b","c":"d"}`, `{"a":"bc","":"d"}`, `{"a":{"b":"c"}}`, `{"a":["b","c"]}`,
		`{"a":null}`, `{"a":"null"}`, `{"a":1}`, `{"a":"1"}`, `[{"a":"b"}]`, `{"0":[]}`,
	}
	seen := make(map[[32]byte]string)
	for _, s := range values {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		sum, ok := hashJSON(v)
		if !ok {
			t.Fatalf("hashJSON(%s) not ok", s)
		}
		if prev, dup := seen[sum]; dup {
			t.Errorf("%s and %s hash alike", prev, s)
		}
		seen[sum] = s
	}
	// Key order does not matter; []string and []any of strings are alike.
	a, _ := hashJSON(map[string]any{"x": "1", "y": []any{"p", "q"}, "z": map[string]any{"k": true}})
	b, _ := hashJSON(map[string]any{"z": map[string]any{"k": true}, "y": []string{"p", "q"}, "x": "1"})
	if a != b {
		t.Error("equal values hash differently")
	}
	for _, bad := range []any{math.NaN(), map[string]any{"a": make(chan int)}, []any{struct{}{}}} {
		if _, ok := hashJSON(bad); ok {
			t.Errorf("hashJSON(%v) ok", bad)
		}
	}
}
