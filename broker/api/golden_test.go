package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the responses")

// goldenHeaders are the response headers a golden file records.
var goldenHeaders = []string{"Content-Type", "Link", "Location", "NGSILD-Results-Count", "NGSILD-Tenant"}

// transcript renders a response as a golden file: status, chosen headers,
// and the body indented.
func transcript(t *testing.T, r response) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP %d\n", r.status)
	for _, h := range goldenHeaders {
		if v := r.header.Get(h); v != "" {
			fmt.Fprintf(&b, "%s: %s\n", h, v)
		}
	}
	b.WriteByte('\n')
	if len(r.body) > 0 {
		if err := json.Indent(&b, r.body, "", "  "); err != nil {
			t.Fatalf("body is not JSON: %v: %s", err, r.body)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestGoldenResponses compares representative responses with
// testdata/*.golden. Run with -update to rewrite them after a deliberate
// change, and review the diff.
func TestGoldenResponses(t *testing.T) {
	s := newServer(t, api.Options{})
	s.create(t, building)
	s.create(t, aq1)
	tests := []struct {
		golden       string
		method, path string
		body         string
		hdr          []string
	}{
		{golden: "get-normalized", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1"},
		{golden: "get-concise", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1?options=concise"},
		{golden: "get-keyvalues-ld", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1?options=keyValues",
			hdr: []string{"Accept", "application/ld+json"}},
		{golden: "query-geojson", method: "GET", path: "/ngsi-ld/v1/entities?type=Building,AirQualityObserved&count=true&attrs=location,no2",
			hdr: []string{"Accept", "application/geo+json"}},
		{golden: "batch-create-207", method: "POST", path: "/ngsi-ld/v1/entityOperations/create",
			body: `[` + aq1 + `,{"id":"urn:ngsi-ld:Room:r1","type":"Room","temp":{"type":"Property","value":20}},
				{"id":"urn:ngsi-ld:Room:r2","type":"Room","location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10,95]}}}]`},
		{golden: "append-207", method: "POST", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1/attrs?options=noOverwrite",
			body: `{"category":{"type":"VocabProperty","vocab":"house"},"floors":{"type":"Property","value":3}}`},
		{golden: "problem-bad-attribute", method: "POST", path: "/ngsi-ld/v1/entities",
			body: `{"id":"urn:ngsi-ld:Room:r3","type":"Room","refBuilding":{"type":"Relationship","value":"urn:ngsi-ld:Building:b1"}}`},
		{golden: "problem-not-acceptable", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1", hdr: []string{"Accept", "text/html"}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			got := transcript(t, s.do(t, tc.method, tc.path, tc.body, tc.hdr...))
			file := filepath.Join("testdata", tc.golden+".golden")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenResponses -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response differs from %s (rerun with -update if the change is deliberate)\n--- got\n%s\n--- want\n%s", file, got, want)
			}
		})
	}
}
