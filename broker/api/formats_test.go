package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/api"
)

// building has an attribute of every kind, a multi-attribute and
// sub-attributes of sub-attributes.
const building = `{"id":"urn:ngsi-ld:Building:b1","type":"Building",
 "name":{"type":"LanguageProperty","languageMap":{"it":"Palazzo Te","en":"Te Palace"}},
 "category":{"type":"VocabProperty","vocab":"office"},
 "tags":{"type":"ListProperty","valueList":[1,"a",{"x":1}]},
 "owners":{"type":"ListRelationship","objectList":[{"object":"urn:ngsi-ld:Person:1"},{"object":"urn:ngsi-ld:Person:2"}]},
 "config":{"type":"JsonProperty","json":{"type":"Property","value":3,"nested":[null,true]}},
 "temperature":{"type":"Property","value":21.5,"unitCode":"CEL","observedAt":"2024-01-10T10:00:00Z",
   "accuracy":{"type":"Property","value":0.5,"reliability":{"type":"Property","value":"high"}},
   "measuredBy":{"type":"Relationship","object":"urn:ngsi-ld:Device:t1","objectType":"Device"}},
 "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.16]}},
 "address":{"type":"Property","value":{"streetAddress":"Viale Te 13","addressLocality":"Mantova"}},
 "speed":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:ngsi-ld:Dataset:b"}]}`

// buildingConcise is building in the concise form.
const buildingConcise = `{"id":"urn:ngsi-ld:Building:b1","type":"Building",
 "name":{"languageMap":{"it":"Palazzo Te","en":"Te Palace"}},
 "category":{"vocab":"office"},
 "tags":{"valueList":[1,"a",{"x":1}]},
 "owners":{"objectList":[{"object":"urn:ngsi-ld:Person:1"},{"object":"urn:ngsi-ld:Person:2"}]},
 "config":{"json":{"type":"Property","value":3,"nested":[null,true]}},
 "temperature":{"value":21.5,"unitCode":"CEL","observedAt":"2024-01-10T10:00:00Z",
   "accuracy":{"value":0.5,"reliability":"high"},
   "measuredBy":{"object":"urn:ngsi-ld:Device:t1","objectType":"Device"}},
 "location":{"type":"Point","coordinates":[10.79,45.16]},
 "address":{"streetAddress":"Viale Te 13","addressLocality":"Mantova"},
 "speed":[{"value":1},{"value":2,"datasetId":"urn:ngsi-ld:Dataset:b"}]}`

func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

// sameJSON compares two JSON documents, key order aside.
func sameJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	g, w := canon(t, decode(t, string(got))), canon(t, decode(t, want))
	if g != w {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestAttributeKindsRoundTrip(t *testing.T) {
	s := newServer(t, api.Options{})
	s.create(t, building)
	path := "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1"
	tests := []struct {
		name, query, want string
	}{
		{"normalized", "", building},
		{"options=normalized", "?options=normalized", building},
		{"concise", "?options=concise", buildingConcise},
		{"format=concise", "?format=concise", buildingConcise},
		{"keyValues", "?options=keyValues", `{"id":"urn:ngsi-ld:Building:b1","type":"Building",
			"name":{"it":"Palazzo Te","en":"Te Palace"},
			"category":"office",
			"tags":[1,"a",{"x":1}],
			"owners":["urn:ngsi-ld:Person:1","urn:ngsi-ld:Person:2"],
			"config":{"type":"Property","value":3,"nested":[null,true]},
			"temperature":21.5,
			"location":{"type":"Point","coordinates":[10.79,45.16]},
			"address":{"streetAddress":"Viale Te 13","addressLocality":"Mantova"},
			"speed":{"dataset":{"@none":1,"urn:ngsi-ld:Dataset:b":2}}}`},
		{"format=simplified", "?format=simplified&attrs=temperature,owners", `{"id":"urn:ngsi-ld:Building:b1","type":"Building",
			"owners":["urn:ngsi-ld:Person:1","urn:ngsi-ld:Person:2"],"temperature":21.5}`},
		{"attrs projection", "?attrs=category", `{"id":"urn:ngsi-ld:Building:b1","type":"Building","category":{"type":"VocabProperty","vocab":"office"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", path+tc.query, "")
			mustStatus(t, r, 200)
			sameJSON(t, r.body, tc.want)
		})
	}
	// What the broker writes in each form reads back as the same entity.
	for _, q := range []string{"", "?options=concise"} {
		t.Run("re-create from GET"+q, func(t *testing.T) {
			r := s.do(t, "GET", path+q, "")
			mustStatus(t, r, 200)
			m := r.object(t)
			m["id"] = "urn:ngsi-ld:Building:copy"
			body, _ := json.Marshal(m)
			s.create(t, string(body))
			r2 := s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:copy", "")
			mustStatus(t, r2, 200)
			sameJSON(t, r2.body, strings.Replace(building, "urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:copy", 1))
			mustStatus(t, s.do(t, "DELETE", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:copy", ""), 204)
		})
	}
}

// TestInputFormsAgree creates the same entity in normalized and concise form
// and finds the same stored entity.
func TestInputFormsAgree(t *testing.T) {
	s := newServer(t, api.Options{})
	norm := strings.Replace(building, "urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:n", 1)
	conc := strings.Replace(buildingConcise, "urn:ngsi-ld:Building:b1", "urn:ngsi-ld:Building:c", 1)
	s.create(t, norm)
	s.create(t, conc)
	for _, q := range []string{"", "?options=concise", "?options=keyValues"} {
		t.Run(q, func(t *testing.T) {
			a := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:n"+q)
			b := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:c"+q)
			delete(a, "id")
			delete(b, "id")
			if canon(t, a) != canon(t, b) {
				t.Errorf("normalized input gives\n%s\nconcise input gives\n%s", canon(t, a), canon(t, b))
			}
		})
	}
	// A patch in keyValues form (options=keyValues) sets values.
	r := s.do(t, "PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:n/attrs?options=keyValues", `{"address":{"streetAddress":"Via Roma 1"}}`)
	mustStatus(t, r, 204)
	e := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:n")
	if got := canon(t, attr(t, e, "address")); got != `{"type":"Property","value":{"streetAddress":"Via Roma 1"}}` {
		t.Errorf("keyValues patch of an object value: %s", got)
	}
}

func TestSysAttrs(t *testing.T) {
	s := newServer(t, api.Options{})
	before := time.Now().UTC().Truncate(time.Millisecond)
	s.create(t, aq1)
	path := "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:MN-1"
	e := s.get(t, path+"?options=sysAttrs")
	parse := func(m map[string]any, k string) time.Time {
		t.Helper()
		v, _ := m[k].(string)
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || !strings.HasSuffix(v, "Z") {
			t.Fatalf("%s %q is not a UTC DateTime: %v", k, v, err)
		}
		return ts
	}
	created := parse(e, "createdAt")
	if created.Before(before) || parse(e, "modifiedAt").Before(created) {
		t.Errorf("createdAt %v modifiedAt %v, request at %v", e["createdAt"], e["modifiedAt"], before)
	}
	no2 := attr(t, e, "no2")
	if !parse(no2, "createdAt").Equal(created) {
		t.Errorf("attribute createdAt %v, entity %v", no2["createdAt"], e["createdAt"])
	}
	mustStatus(t, s.do(t, "PATCH", path+"/attrs", `{"no2":{"type":"Property","value":1}}`), 204)
	e2 := s.get(t, path+"?options=sysAttrs,keyValues")
	if e2["createdAt"] != e["createdAt"] {
		t.Errorf("update changed the entity's createdAt: %v -> %v", e["createdAt"], e2["createdAt"])
	}
	if parse(e2, "modifiedAt").Before(parse(e, "modifiedAt")) {
		t.Errorf("modifiedAt went back")
	}
	e3 := s.get(t, path+"?options=sysAttrs")
	if n := attr(t, e3, "no2"); !parse(n, "createdAt").Equal(created) || parse(n, "modifiedAt").Before(created) {
		t.Errorf("no2 after update %v", n)
	}
	// Concise with sysAttrs keeps attributes as objects (the times need a home).
	e4 := s.get(t, path+"?options=sysAttrs,concise")
	if _, ok := e4["no2"].(map[string]any)["createdAt"]; !ok {
		t.Errorf("concise sysAttrs: %v", e4["no2"])
	}
}

func TestContentNegotiation(t *testing.T) {
	s := newServer(t, api.Options{})
	s.create(t, aq1)
	s.create(t, `{"id":"urn:ngsi-ld:AirQualityObserved:MN-2","type":"AirQualityObserved",
		"area":{"type":"GeoProperty","value":{"type":"Polygon","coordinates":[[[10,45],[11,45],[11,46],[10,45]]]}}}`)
	one := "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:MN-1"
	all := "/ngsi-ld/v1/entities?type=AirQualityObserved"
	jsonOut := func(t *testing.T, r response) {
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if !strings.Contains(r.header.Get("Link"), "ngsi-ld-core-context") {
			t.Errorf("Link %q", r.header.Get("Link"))
		}
		if strings.Contains(string(r.body), "@context") {
			t.Errorf("@context in an application/json body")
		}
	}
	ldOut := func(t *testing.T, r response) {
		if ct := r.header.Get("Content-Type"); ct != "application/ld+json" {
			t.Errorf("Content-Type %q", ct)
		}
		if l := r.header.Get("Link"); l != "" {
			t.Errorf("Link header with ld+json: %q", l)
		}
		var ents []map[string]any
		if m, ok := r.json(t).(map[string]any); ok {
			ents = append(ents, m)
		} else {
			for _, x := range r.json(t).([]any) {
				ents = append(ents, x.(map[string]any))
			}
		}
		for _, e := range ents {
			if c, _ := e["@context"].(string); !strings.Contains(c, "ngsi-ld-core-context") {
				t.Errorf("@context %v", e["@context"])
			}
		}
	}
	runSteps(t, s, []step{
		{name: "no Accept", method: "GET", path: one, status: 200, check: jsonOut},
		{name: "json", method: "GET", path: one, hdr: []string{"Accept", "application/json"}, status: 200, check: jsonOut},
		{name: "any", method: "GET", path: one, hdr: []string{"Accept", "*/*"}, status: 200, check: jsonOut},
		{name: "application/*", method: "GET", path: one, hdr: []string{"Accept", "application/*"}, status: 200, check: jsonOut},
		{name: "browser", method: "GET", path: one, hdr: []string{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, status: 200, check: jsonOut},
		{name: "ld+json", method: "GET", path: one, hdr: []string{"Accept", "application/ld+json"}, status: 200, check: ldOut},
		{name: "ld+json query", method: "GET", path: all, hdr: []string{"Accept", "application/ld+json"}, status: 200, check: ldOut},
		{name: "q values", method: "GET", path: one, hdr: []string{"Accept", "application/ld+json;q=0.5, application/json"}, status: 200, check: jsonOut},
		{name: "q values ld", method: "GET", path: one, hdr: []string{"Accept", "application/json;q=0.2, application/ld+json;q=0.9"}, status: 200, check: ldOut},
		{name: "geo+json", method: "GET", path: one, hdr: []string{"Accept", "application/geo+json"}, status: 200,
			check: func(t *testing.T, r response) {
				if ct := r.header.Get("Content-Type"); ct != "application/geo+json" {
					t.Errorf("Content-Type %q", ct)
				}
				f := r.object(t)
				if f["type"] != "Feature" || f["id"] != "urn:ngsi-ld:AirQualityObserved:MN-1" {
					t.Errorf("feature %v", f)
				}
				if canon(t, f["geometry"]) != `{"coordinates":[10.79,45.16],"type":"Point"}` {
					t.Errorf("geometry %v", f["geometry"])
				}
				p, _ := f["properties"].(map[string]any)
				if p["type"] != "AirQualityObserved" || attr(t, p, "no2")["value"] == nil {
					t.Errorf("properties %v", p)
				}
			}},
		{name: "geo+json keyValues", method: "GET", path: one + "?options=keyValues", hdr: []string{"Accept", "application/geo+json"}, status: 200,
			check: func(t *testing.T, r response) {
				f := r.object(t)
				p, _ := f["properties"].(map[string]any)
				if canon(t, p["no2"]) != "41.5" {
					t.Errorf("keyValues properties %v", p)
				}
			}},
		{name: "geo+json collection", method: "GET", path: all, hdr: []string{"Accept", "application/geo+json"}, status: 200,
			check: func(t *testing.T, r response) {
				fc := r.object(t)
				fs, _ := fc["features"].([]any)
				if fc["type"] != "FeatureCollection" || len(fs) != 2 {
					t.Fatalf("collection %s", r.body)
				}
				// MN-2 has no location: a Feature with a null geometry.
				if g := fs[1].(map[string]any)["geometry"]; g != nil {
					t.Errorf("MN-2 geometry %v", g)
				}
			}},
		{name: "geo+json geometryProperty", method: "GET", path: all + "&geometryProperty=area", hdr: []string{"Accept", "application/geo+json"}, status: 200,
			check: func(t *testing.T, r response) {
				fs := r.object(t)["features"].([]any)
				if g := fs[1].(map[string]any)["geometry"].(map[string]any); g["type"] != "Polygon" {
					t.Errorf("MN-2 geometry %v", g)
				}
				if g := fs[0].(map[string]any)["geometry"]; g != nil {
					t.Errorf("MN-1 has no area, geometry %v", g)
				}
			}},
	})
	_ = http.StatusOK
}
