package api

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// The create and upsert bodies read by batchEntitiesFast must give what
// batchEntities gives: the same entities, the same per-entity errors, the
// same error for the whole body.
func TestBatchEntitiesFast(t *testing.T) {
	h := &Handler{opts: Options{MaxBatch: 3}, ctxs: jsonld.NewLoader(jsonld.LoaderOptions{Offline: true})}
	aq := func(i int) string {
		return fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:%d","type":"AirQualityObserved",`+
			`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
			`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}}}`, i, i)
	}
	core := `"@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"`
	for _, tc := range []struct {
		name, body string
		fast       bool // read by the fast path (not handed back)
		ld         bool
	}{
		{"JSON-LD", `[{"id":"urn:a:1","type":"T",` + core + `,"p":{"type":"Property","value":1}},` +
			`{"@context":{"temp":"https://example.org/temperature","T":"https://example.org/T"},"id":"urn:a:2","type":"T","temp":{"type":"Property","value":2}}]`, true, true},
		{"JSON-LD without or with a bad context", `[{"id":"urn:a:1","type":"T"},` +
			`{"id":"urn:a:2","type":"T","@context":"https://example.org/not-here.jsonld"},` +
			`{"id":"urn:a:3","type":"T","@context":7},{"id":"urn:a:4","type":"T",` + core + `,"n":1},5]`, true, true},
		{"normalized", "[" + aq(1) + "," + aq(2) + "]", true, false},
		{"concise and bad elements", `[` + aq(1) + `,{"id":"urn:a:2","type":"T","p":1},7,{"id":"bad id","type":"T"}]`, true, false},
		{"context in a JSON body", `[{"id":"urn:a:1","type":"T","@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}]`, true, false},
		{"no id", `[{"type":"T","p":{"type":"Property","value":1}}]`, true, false},
		{"empty", `[]`, true, false},
		{"too many", "[" + strings.Repeat(aq(1)+",", 3) + aq(2) + "]", true, false},
		{"not an array", aq(1), false, false},
		{"invalid JSON", `[` + aq(1) + `,]`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			link := jsonld.Core()
			fe, ff, ferr := h.batchEntitiesFast(ctx, broker.BatchUpsert, []byte(tc.body), tc.ld, false, link)
			if handed := fe == nil && ff == nil && ferr == nil; handed == tc.fast {
				t.Fatalf("handed back = %v, want %v", handed, !tc.fast)
			}
			if !tc.fast {
				return
			}
			se, sf, serr := h.batchEntities(ctx, broker.BatchUpsert, []byte(tc.body), tc.ld, false, link)
			if !reflect.DeepEqual(fe, se) {
				t.Errorf("entities differ:\n%+v\n%+v", fe, se)
			}
			if !reflect.DeepEqual(ff, sf) {
				t.Errorf("failures differ:\n%+v\n%+v", ff, sf)
			}
			if fmt.Sprint(ferr) != fmt.Sprint(serr) {
				t.Errorf("errors differ: %v / %v", ferr, serr)
			}
		})
	}
}
