package api_test

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/api"
)

const featureEntities = `[
 {"id":"urn:ngsi-ld:Building:B1","type":"Building","name":{"type":"Property","value":"Palazzo Te","rank":{"type":"Property","value":2}},
  "height":{"type":"Property","value":12},
  "label":{"type":"LanguageProperty","languageMap":{"it":"palazzo","en":"palace"}},
  "speed":[{"type":"Property","value":1},{"type":"Property","value":2,"datasetId":"urn:ds:radar"}],
  "owner":{"type":"Relationship","object":"urn:ngsi-ld:Person:P1"}},
 {"id":"urn:ngsi-ld:Building:B2","type":"Building","name":{"type":"Property","value":"Duomo","rank":{"type":"Property","value":1}},
  "height":{"type":"Property","value":30}},
 {"id":"urn:ngsi-ld:Building:B3","type":"Building","height":{"type":"Property","value":20}},
 {"id":"urn:ngsi-ld:Person:P1","type":"Person","name":{"type":"Property","value":"Ada"}}]`

func featureServer(t *testing.T) *server {
	s := newServer(t, api.Options{})
	r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", featureEntities)
	mustStatus(t, r, http.StatusCreated)
	return s
}

// ids returns the ids of an array of entities, in order ("-" for none).
func ids(t *testing.T, r response) string {
	t.Helper()
	var out []string
	for _, e := range r.json(t).([]any) {
		id, ok := e.(map[string]any)["id"].(string)
		if !ok {
			id = "-"
		}
		out = append(out, id[strings.LastIndex(id, ":")+1:])
	}
	return strings.Join(out, " ")
}

func TestQueryProjectionAndPaging(t *testing.T) {
	s := featureServer(t)
	for _, tc := range []struct {
		name, query string
		status      int
		check       func(t *testing.T, r response)
	}{
		{"pick name drops entities without it", "type=Building&pick=name", 200, func(t *testing.T, r response) {
			if got := string(r.body); strings.Contains(got, `"id"`) || strings.Count(got, `"name"`) != 2 || strings.Contains(got, "height") {
				t.Fatalf("%s", got)
			}
		}},
		{"pick id", "type=Building&pick=id", 200, func(t *testing.T, r response) {
			if got := string(r.body); got != `[{"id":"urn:ngsi-ld:Building:B1"},{"id":"urn:ngsi-ld:Building:B2"},{"id":"urn:ngsi-ld:Building:B3"}]` {
				t.Fatalf("%s", got)
			}
		}},
		{"omit id and name", "type=Building&omit=id,name", 200, func(t *testing.T, r response) {
			if got := string(r.body); strings.Contains(got, `"id"`) || strings.Contains(got, `"name"`) || !strings.Contains(got, `"type":"Building"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"pick and omit", "type=Building&pick=name&omit=name", 400, nil},
		{"pick and attrs", "type=Building&pick=name&attrs=height", 400, nil},
		{"pick with ;", "type=Building&pick=id;name", 400, nil},
		{"pick unclosed", "type=Building&pick=id,owner{name", 400, nil},
		{"pick double brace", "type=Building&pick=id,owner{{name}", 400, nil},
		{"pick empty member", "type=Building&pick=id,,name", 400, nil},
		{"pick empty braces", "type=Building&pick=id,owner{}", 400, nil},
		{"nested pick without join", "type=Building&pick=owner{name}", 400, nil},
		{"nested pick deeper than joinLevel", "type=Building&pick=owner{a{b}}&join=inline&joinLevel=1", 400, nil},
		{"attrs naming members", "type=Building&attrs=id,type", 400, nil},
		{"lang bad q-value", "type=Building&lang=fr;q=2", 400, nil},
		{"lang nothing acceptable", "type=Building&lang=fr;q=0", 400, nil},
		{"joinLevel out of range", "type=Building&join=inline&joinLevel=11", 400, nil},
		{"lang normalized", "id=urn:ngsi-ld:Building:B1&lang=en", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `"label":{"lang":"en","type":"Property","value":"palace"}`) {
				t.Fatalf("%s", got)
			}
		}},
		{"lang keyValues", "id=urn:ngsi-ld:Building:B1&lang=de,it&options=keyValues", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `"label":"palazzo"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"lang any", "id=urn:ngsi-ld:Building:B1&lang=*", 200, func(t *testing.T, r response) {
			if got := string(r.body); strings.Contains(got, `"languageMap"`) || !strings.Contains(got, `"lang":"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"lang ranked", "id=urn:ngsi-ld:Building:B1&lang=fr-CH,de;q=0.5,it;q=0.9,*;q=0.1&options=keyValues", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `"label":"palazzo"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"datasetId @none", "id=urn:ngsi-ld:Building:B1&attrs=speed&datasetId=@none", 200, func(t *testing.T, r response) {
			if got := string(r.body); strings.Contains(got, "radar") || !strings.Contains(got, `"speed"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"datasetId radar", "id=urn:ngsi-ld:Building:B1&datasetId=urn:ds:radar", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, "radar") || strings.Contains(got, "height") {
				t.Fatalf("%s", got)
			}
		}},
		{"join inline", "id=urn:ngsi-ld:Building:B1&join=inline&attrs=owner", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `"entity":{`) || !strings.Contains(got, `"Ada"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"join flat", "id=urn:ngsi-ld:Building:B1&join=flat", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B1 P1" {
				t.Fatalf("%s", got)
			}
		}},
		{"flat join shows linked entities with their nested pick", "id=urn:ngsi-ld:Building:B1&join=flat&pick=id,owner{id,name}", 200, func(t *testing.T, r response) {
			if got := string(r.body); ids(t, r) != "B1 P1" || !strings.Contains(got, `{"id":"urn:ngsi-ld:Person:P1","name":{"type":"Property","value":"Ada"}}`) || strings.Contains(got, "height") {
				t.Fatalf("%s", got)
			}
		}},
		{"flat join does not follow a relationship pick leaves out", "type=Building&join=flat&pick=id,name", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B1 B2 B3" {
				t.Fatalf("%s", got)
			}
		}},
		{"flat join does not follow a relationship omit removes", "id=urn:ngsi-ld:Building:B1&join=flat&omit=owner", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B1" {
				t.Fatalf("%s", got)
			}
		}},
		{"flat join omits nested members of linked entities", "id=urn:ngsi-ld:Building:B1&join=flat&omit=type,owner{name}", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `{"id":"urn:ngsi-ld:Person:P1","type":"Person"}`) || strings.Contains(got, `"type":"Building"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"nested pick with join", "id=urn:ngsi-ld:Building:B1&join=inline&pick=id,owner{name}", 200, func(t *testing.T, r response) {
			if got := string(r.body); !strings.Contains(got, `"Ada"`) || strings.Contains(got, "height") || strings.Contains(got, `"entity":{"id"`) {
				t.Fatalf("%s", got)
			}
		}},
		{"orderBy sub-attribute", "type=Building&orderBy=name.rank", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B2 B1 B3" {
				t.Fatalf("%s", got)
			}
		}},
		{"orderBy sub-attribute desc then name", "type=Building&orderBy=type;asc,name.rank;desc,name", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B1 B2 B3" {
				t.Fatalf("%s", got)
			}
		}},
		{"orderBy path on a member", "type=Building&orderBy=id.x", 400, nil},
		{"orderBy empty sub-attribute", "type=Building&orderBy=name..x", 400, nil},
		{"orderBy desc", "type=Building&orderBy=height;desc", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B2 B3 B1" {
				t.Fatalf("%s", got)
			}
		}},
		{"orderBy missing values last", "type=Building&orderBy=name", 200, func(t *testing.T, r response) {
			if got := ids(t, r); got != "B2 B1 B3" {
				t.Fatalf("%s", got)
			}
		}},
		{"orderBy bad direction", "type=Building&orderBy=name;up", 400, nil},
		{"first page", "type=Building&idPattern=Building&limit=1&count=true", 200, func(t *testing.T, r response) {
			links := strings.Join(r.header.Values("Link"), ",")
			if r.header.Get("NGSILD-Results-Count") != "3" || !strings.Contains(links, `</ngsi-ld/v1/entities?count=true&idPattern=Building&limit=1&offset=1&type=Building>; rel="next";type="application/json"`) || strings.Contains(links, "prev") {
				t.Fatalf("%v", r.header)
			}
		}},
		{"middle page", "type=Building&limit=1&offset=1", 200, func(t *testing.T, r response) {
			links := strings.Join(r.header.Values("Link"), ",")
			if !strings.Contains(links, "limit=1&offset=0&type=Building>; rel=\"prev\"") || !strings.Contains(links, "limit=1&offset=2&type=Building>; rel=\"next\"") {
				t.Fatalf("%v", links)
			}
		}},
		{"limit 0 with count", "type=Building&limit=0&count=true", 200, func(t *testing.T, r response) {
			if string(r.body) != "[]" || r.header.Get("NGSILD-Results-Count") != "3" || strings.Contains(strings.Join(r.header.Values("Link"), ","), `rel="next"`) {
				t.Fatalf("%s %v", r.body, r.header)
			}
		}},
		{"limit 0 without count", "type=Building&limit=0", 400, nil},
		{"limit over the maximum", "type=Building&limit=100000", 403, func(t *testing.T, r response) {
			checkProblem(t, r, 403, "TooManyResults")
		}},
		{"no condition", "options=keyValues", 400, nil},
		{"geometryProperty without GeoJSON", "type=Building&geometryProperty=location", 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+tc.query, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestQueryPost(t *testing.T) {
	s := featureServer(t)
	for _, tc := range []struct {
		name, body, query string
		status            int
		want              string
	}{
		{"types and q", `{"type":"Query","entities":[{"type":"Building"}],"q":"height>15"}`, "", 200, "B2 B3"},
		{"two selectors", `{"type":"Query","entities":[{"type":"Person"},{"id":"urn:ngsi-ld:Building:B2"}]}`, "", 200, "B2 P1"},
		{"geoQ and attrs", `{"type":"Query","entities":[{"type":"Building"}],"attrs":["name"]}`, "?count=true", 200, "B1 B2"},
		{"paging in the URL", `{"type":"Query","entities":[{"type":"Building"}]}`, "?limit=1&offset=2", 200, "B3"},
		{"pick in the body", `{"type":"Query","entities":[{"type":"Building"}],"pick":["id"]}`, "", 200, "B1 B2 B3"},
		{"empty entities", `{"type":"Query","entities":[]}`, "", 400, ""},
		{"empty attrs", `{"type":"Query","attrs":[]}`, "", 400, ""},
		{"q not a string", `{"type":"Query","q":5}`, "", 400, ""},
		{"wrong type", `{"type":"Entity","q":"a"}`, "", 400, ""},
		{"bad geoQ", `{"type":"Query","geoQ":{"georel":"near;maxDistance==10","geometry":"Point","coordinates":"[1]"}}`, "", 400, ""},
		{"nothing", `{"type":"Query"}`, "", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/query"+tc.query, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.want != "" {
				if got := ids(t, r); got != tc.want {
					t.Fatalf("got %s, want %s", got, tc.want)
				}
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	s := featureServer(t)
	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/ngsi-ld/v1/types", 200, []string{`"type":"EntityTypeList"`, `"typeList":["Building","Person"]`}},
		{"/ngsi-ld/v1/types?details=true", 200, []string{`"type":"EntityType"`, `"typeName":"Building"`, `"attributeNames":["height","label","name","owner","speed"]`}},
		{"/ngsi-ld/v1/types/Building", 200, []string{`"type":"EntityTypeInfo"`, `"entityCount":3`, `"attributeName":"label","attributeTypes":["LanguageProperty"]`}},
		{"/ngsi-ld/v1/types/Nothing", 404, nil},
		{"/ngsi-ld/v1/attributes", 200, []string{`"type":"AttributeList"`, `"attributeList":["height","label","name","owner","speed"]`}},
		{"/ngsi-ld/v1/attributes?details=true", 200, []string{`"attributeName":"name"`, `"typeNames":["Building","Person"]`}},
		{"/ngsi-ld/v1/attributes/name", 200, []string{`"attributeCount":3`, `"attributeTypes":["Property"]`}},
		{"/ngsi-ld/v1/attributes/nothing", 404, nil},
		{"/ngsi-ld/v1/types?details=maybe", 400, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := s.do(t, "GET", tc.path, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.body), w) {
					t.Fatalf("%s lacks %s", r.body, w)
				}
			}
		})
	}
	// Names come back compacted with the request's @context.
	r := s.do(t, "GET", "/ngsi-ld/v1/types", "", "Accept", "application/ld+json")
	if r.status != 200 || !strings.Contains(string(r.body), `"@context"`) || r.header.Get("Content-Type") != "application/ld+json" {
		t.Fatalf("%v %s", r.header, r.body)
	}
}

// TestOrderByAttributeTimestamp orders by when an attribute was created,
// across entities written one after the other.
func TestOrderByAttributeTimestamp(t *testing.T) {
	s := newServer(t, api.Options{})
	for _, id := range []string{"T2", "T1", "T3"} {
		mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entities", `{"id":"urn:ngsi-ld:Tower:`+id+`","type":"Tower","height":{"type":"Property","value":1}}`), 201)
		// System times are kept to the millisecond: let the clock pass
		// the next one, so that each entity has its own.
		next := time.Now().Truncate(time.Millisecond).Add(2 * time.Millisecond)
		for time.Now().Before(next) {
			runtime.Gosched()
		}
	}
	for q, want := range map[string]string{
		"type=Tower&orderBy=height.createdAt":          "T2 T1 T3",
		"type=Tower&orderBy=height.createdAt;desc":     "T3 T1 T2",
		"type=Tower&orderBy=height.observedAt,id;desc": "T3 T2 T1", // none has one: then by id
	} {
		r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+q, "")
		mustStatus(t, r, 200)
		if got := ids(t, r); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
	}
}
