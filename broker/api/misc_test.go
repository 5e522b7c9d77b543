package api_test

import (
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

func TestHeadAndEmptyUpdates(t *testing.T) {
	s := newServer(t, api.Options{})
	if r := s.do(t, "POST", "/ngsi-ld/v1/entities", `{"id":"urn:x:1","type":"T","a":1}`, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("create: %v", r)
	}
	if r := s.do(t, "HEAD", "/ngsi-ld/v1/entities/urn:x:1", ""); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD: %d %q", r.status, r.body)
	}
	for _, m := range []struct{ method, path string }{
		{"PATCH", "/ngsi-ld/v1/entities/urn:x:1"},
		{"POST", "/ngsi-ld/v1/entities/urn:x:1/attrs"},
		{"PATCH", "/ngsi-ld/v1/entities/urn:x:1/attrs"},
	} {
		r := s.do(t, m.method, m.path, `{}`, "Content-Type", "application/json")
		if r.status != 400 {
			t.Errorf("%s %s with {}: %v", m.method, m.path, r)
		}
	}
}

// TestCoreNamesFastPath checks that the shortcut for plain terms under the
// core context gives what the full expansion and compaction give.
func TestCoreNamesFastPath(t *testing.T) {
	for _, term := range []string{"type", "id", "value", "object", "temperature", "location", "observedAt", "name", "createdAt", "datasetId", "Property", "no2", "a-b_c", "ÄÖ"} {
		if got, want := api.CanonForTest(term), api.FullCanonForTest(term); got != want {
			t.Errorf("%s: fast %q, full %q", term, got, want)
		}
	}
}

func TestRetrieveWithJoin(t *testing.T) {
	s := newServer(t, api.Options{})
	body := `[{"id":"urn:ngsi-ld:City:Mantova","type":"City","name":"Mantova"},
	 {"id":"urn:ngsi-ld:Building:1","type":"Building","locatedAt":{"type":"Relationship","object":"urn:ngsi-ld:City:Mantova"}}]`
	if r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", body, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("load: %v", r)
	}
	r := s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?join=inline", "")
	if r.status != 200 {
		t.Fatalf("inline: %v", r)
	}
	loc, _ := r.object(t)["locatedAt"].(map[string]any)
	if ent, _ := loc["entity"].(map[string]any); ent == nil || ent["id"] != "urn:ngsi-ld:City:Mantova" {
		t.Fatalf("inline join: %s", r.body)
	}
	r = s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?join=flat", "")
	if arr, _ := r.json(t).([]any); r.status != 200 || len(arr) != 2 {
		t.Fatalf("flat join: %v", r)
	}
	if r = s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?pick=nothingHere", ""); r.status != 404 {
		t.Fatalf("unmatched pick: %v", r)
	}
}
