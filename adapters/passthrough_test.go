package adapters_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
)

func TestPassthroughMapping(t *testing.T) {
	m, err := adapters.ParseMapping([]byte("passthrough: true\nskip:\n  - {column: type, equals: [Draft]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	prop := map[string]any{"type": "Property", "value": 1.5}
	tests := []struct {
		name   string
		fields []string
		values []any
		want   string // error substring; "" for success
	}{
		{"entity", []string{"id", "type", "pm10"}, []any{"urn:ngsi-ld:A:1", "A", prop}, ""},
		{"own context", []string{"id", "type", "@context", "pm10"}, []any{"urn:ngsi-ld:A:1", "A", "https://example.org/ctx.jsonld", prop}, ""},
		{"id not a URI", []string{"id", "type"}, []any{"A-1", "A"}, "not an absolute URI"},
		{"no type", []string{"id", "pm10"}, []any{"urn:ngsi-ld:A:1", prop}, "needs id and type"},
		{"bare value", []string{"id", "type", "pm10"}, []any{"urn:ngsi-ld:A:1", "A", 1.5}, "must be an object"},
		{"unknown attribute type", []string{"id", "type", "pm10"}, []any{"urn:ngsi-ld:A:1", "A", map[string]any{"type": "Number", "value": 1}}, "not an NGSI-LD attribute type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := adapters.Record{Input: "x.jsonl", Line: 3, Header: adapters.NewFieldsHeader(tt.fields), Values: tt.values}
			es, err := m.Map(&rec)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, adapters.ErrInvalidEntity) {
					t.Fatalf("err %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil || len(es) != 1 || es[0]["pm10"] == nil || es[0]["@context"] == nil {
				t.Fatalf("%v %v", es, err)
			}
		})
	}
	rec := adapters.Record{Header: adapters.NewFieldsHeader([]string{"id", "type"}), Values: []any{"urn:x:1", "Draft"}}
	if skip, err := m.Skip(&rec); !skip || err != nil {
		t.Errorf("skip rules apply to passthrough: %v %v", skip, err)
	}
	if _, err := adapters.ParseMapping([]byte("passthrough: true\ntype: A\n")); err == nil {
		t.Error("passthrough with type accepted")
	}
}
