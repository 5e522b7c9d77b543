package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

const aq1 = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved",
 "no2":{"type":"Property","value":41.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},
 "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.16]}},
 "refDevice":{"type":"Relationship","object":"urn:ngsi-ld:Device:d1"}}`

// step is one request of a scenario and what it must answer.
type step struct {
	name   string
	method string
	path   string
	body   string
	hdr    []string
	status int
	// problem, if set, is the ETSI error type; detail are strings the
	// problem's detail must hold.
	problem string
	detail  []string
	check   func(t *testing.T, r response)
}

// runSteps runs a scenario: steps in order, stopping at the first failure.
func runSteps(t *testing.T, s *server, steps []step) {
	t.Helper()
	runCases(t, s, steps, true)
}

// runCases runs steps in order; with stop, the first failing step ends the test.
func runCases(t *testing.T, s *server, steps []step, stop bool) {
	t.Helper()
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) { runStep(t, s, st) })
		if !ok && stop {
			// Later steps depend on earlier ones.
			t.FailNow()
		}
	}
}

// runStep sends one step's request and checks the answer.
func runStep(t *testing.T, s *server, st step) {
	t.Helper()
	r := s.do(t, st.method, st.path, st.body, st.hdr...)
	if st.problem != "" {
		checkProblem(t, r, st.status, st.problem, st.detail...)
	} else {
		mustStatus(t, r, st.status)
	}
	if r.status >= 400 && !isProblem(r.body) {
		t.Fatalf("error answer is not ProblemDetails: %s", r.body)
	}
	if st.check != nil {
		st.check(t, r)
	}
}

func TestEntityLifecycle(t *testing.T) {
	s := newServer(t, api.Options{})
	const id = "urn:ngsi-ld:AirQualityObserved:MN-1"
	path := "/ngsi-ld/v1/entities/" + url.PathEscape(id)
	runSteps(t, s, []step{
		{name: "create", method: "POST", path: "/ngsi-ld/v1/entities", body: aq1, status: 201,
			check: func(t *testing.T, r response) {
				if loc := r.header.Get("Location"); loc != "/ngsi-ld/v1/entities/"+url.PathEscape(id) {
					t.Errorf("Location %q", loc)
				}
				if len(r.body) != 0 {
					t.Errorf("201 with a body: %s", r.body)
				}
			}},
		{name: "create again", method: "POST", path: "/ngsi-ld/v1/entities", body: aq1, status: 409,
			problem: "AlreadyExists", detail: []string{id}},
		{name: "create trailing slash", method: "POST", path: "/ngsi-ld/v1/entities/", status: 201,
			body: `{"id":"urn:ngsi-ld:AirQualityObserved:MN-2","type":"AirQualityObserved","no2":{"type":"Property","value":3}}`},
		{name: "get", method: "GET", path: path, status: 200, check: func(t *testing.T, r response) {
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if l := r.header.Get("Link"); !strings.Contains(l, "ngsi-ld-core-context") || !strings.Contains(l, `rel="http://www.w3.org/ns/json-ld#context"`) {
				t.Errorf("Link %q", l)
			}
			e := r.object(t)
			if e["id"] != id || e["type"] != "AirQualityObserved" {
				t.Errorf("id/type: %v", e)
			}
			no2 := attr(t, e, "no2")
			if fmt.Sprint(no2["value"]) != "41.5" || no2["unitCode"] != "GQ" || no2["observedAt"] != "2024-01-10T10:00:00Z" || no2["type"] != "Property" {
				t.Errorf("no2 %v", no2)
			}
			if _, has := e["createdAt"]; has {
				t.Errorf("createdAt without sysAttrs")
			}
			if rel := attr(t, e, "refDevice"); rel["object"] != "urn:ngsi-ld:Device:d1" || rel["type"] != "Relationship" {
				t.Errorf("refDevice %v", rel)
			}
		}},
		{name: "get trailing slash", method: "GET", path: path + "/", status: 200},
		{name: "get type matches", method: "GET", path: path + "?type=AirQualityObserved", status: 200},
		{name: "get type mismatch", method: "GET", path: path + "?type=Building", status: 404, problem: "ResourceNotFound", detail: []string{id}},
		{name: "get unknown", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:X:nope", status: 404,
			problem: "ResourceNotFound", detail: []string{"urn:ngsi-ld:X:nope"}},
		{name: "merge", method: "PATCH", path: path, status: 204,
			body: `{"no2":{"value":40},"pm10":{"type":"Property","value":12},"refDevice":"urn:ngsi-ld:null"}`,
			check: func(t *testing.T, _ response) {
				e := s.get(t, path)
				no2 := attr(t, e, "no2")
				if fmt.Sprint(no2["value"]) != "40" || no2["unitCode"] != "GQ" {
					t.Errorf("merged no2 %v (unitCode must stay)", no2)
				}
				if fmt.Sprint(attr(t, e, "pm10")["value"]) != "12" {
					t.Errorf("pm10 %v", e["pm10"])
				}
				if _, has := e["refDevice"]; has {
					t.Errorf("refDevice not deleted by urn:ngsi-ld:null")
				}
			}},
		{name: "merge merge-patch+json", method: "PATCH", path: path, status: 204,
			body: `{"pm10":{"value":13}}`, hdr: []string{"Content-Type", "application/merge-patch+json"}},
		{name: "merge unknown", method: "PATCH", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:X:nope", status: 404,
			body: `{"pm10":{"value":13}}`, problem: "ResourceNotFound", detail: []string{"urn:ngsi-ld:X:nope"}},
		{name: "merge other id", method: "PATCH", path: path, status: 400, problem: "BadRequestData",
			body: `{"id":"urn:ngsi-ld:X:other","pm10":{"value":13}}`, detail: []string{"urn:ngsi-ld:X:other"}},
		{name: "replace", method: "PUT", path: path, status: 204,
			body: `{"type":"AirQualityObserved","o3":{"type":"Property","value":7}}`,
			check: func(t *testing.T, _ response) {
				e := s.get(t, path)
				if _, has := e["no2"]; has {
					t.Errorf("replace kept no2: %v", e)
				}
				if fmt.Sprint(attr(t, e, "o3")["value"]) != "7" || e["type"] != "AirQualityObserved" {
					t.Errorf("replaced entity %v", e)
				}
			}},
		{name: "replace unknown", method: "PUT", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:X:nope", status: 404,
			body: `{"type":"T","o3":7}`, problem: "ResourceNotFound"},
		{name: "delete", method: "DELETE", path: path, status: 204},
		{name: "get deleted", method: "GET", path: path, status: 404, problem: "ResourceNotFound", detail: []string{id}},
		{name: "delete again", method: "DELETE", path: path, status: 404, problem: "ResourceNotFound", detail: []string{id}},
		{name: "create after delete", method: "POST", path: "/ngsi-ld/v1/entities", body: aq1, status: 201},
	})
}

func TestAttributeEndpoints(t *testing.T) {
	s := newServer(t, api.Options{})
	const id = "urn:ngsi-ld:Vehicle:V1"
	base := "/ngsi-ld/v1/entities/" + id
	s.create(t, `{"id":"`+id+`","type":"Vehicle",
		"speed":[{"type":"Property","value":50},{"type":"Property","value":52,"datasetId":"urn:ngsi-ld:Dataset:gps"},
		         {"type":"Property","value":49,"datasetId":"urn:ngsi-ld:Dataset:obd"}],
		"brand":{"type":"Property","value":"Fiat"}}`)
	speeds := func(t *testing.T) map[string]string {
		t.Helper()
		e := s.get(t, base)
		out := map[string]string{}
		switch v := e["speed"].(type) {
		case nil:
		case map[string]any:
			ds, _ := v["datasetId"].(string)
			out[ds] = fmt.Sprint(v["value"])
		case []any:
			for _, x := range v {
				m := x.(map[string]any)
				ds, _ := m["datasetId"].(string)
				out[ds] = fmt.Sprint(m["value"])
			}
		}
		return out
	}
	wantSpeeds := func(want string) func(t *testing.T, r response) {
		return func(t *testing.T, _ response) {
			if got := fmt.Sprint(speeds(t)); got != want {
				t.Errorf("speed instances %s, want %s", got, want)
			}
		}
	}
	runSteps(t, s, []step{
		{name: "instances stored", method: "GET", path: base, status: 200,
			check: wantSpeeds("map[:50 urn:ngsi-ld:Dataset:gps:52 urn:ngsi-ld:Dataset:obd:49]")},
		{name: "append", method: "POST", path: base + "/attrs", status: 204,
			body: `{"color":{"type":"Property","value":"red"}}`},
		{name: "append trailing slash", method: "POST", path: base + "/attrs/", status: 204,
			body: `{"doors":{"type":"Property","value":5}}`},
		{name: "append noOverwrite", method: "POST", path: base + "/attrs?options=noOverwrite", status: 207,
			body: `{"color":{"type":"Property","value":"blue"},"seats":{"type":"Property","value":4}}`,
			check: func(t *testing.T, r response) {
				res := r.object(t)
				if canon(t, res["updated"]) != `["seats"]` {
					t.Errorf("updated %v", res["updated"])
				}
				nu, _ := res["notUpdated"].([]any)
				if len(nu) != 1 || nu[0].(map[string]any)["attributeName"] != "color" || nu[0].(map[string]any)["reason"] == "" {
					t.Errorf("notUpdated %v", res["notUpdated"])
				}
				if v := attr(t, s.get(t, base), "color")["value"]; v != "red" {
					t.Errorf("noOverwrite overwrote color: %v", v)
				}
			}},
		{name: "append overwrite", method: "POST", path: base + "/attrs", status: 204,
			body: `{"color":{"type":"Property","value":"blue"}}`,
			check: func(t *testing.T, _ response) {
				if v := attr(t, s.get(t, base), "color")["value"]; v != "blue" {
					t.Errorf("color %v", v)
				}
			}},
		{name: "append unknown entity", method: "POST", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:none/attrs", status: 404,
			body: `{"color":{"type":"Property","value":"blue"}}`, problem: "ResourceNotFound", detail: []string{"urn:ngsi-ld:Vehicle:none"}},
		{name: "update attrs", method: "PATCH", path: base + "/attrs", status: 204,
			body: `{"brand":{"type":"Property","value":"Lancia"}}`},
		{name: "update attrs appends what the entity lacks", method: "PATCH", path: base + "/attrs/", status: 204,
			body: `{"brand":{"type":"Property","value":"Alfa"},"wings":{"type":"Property","value":2}}`,
			check: func(t *testing.T, r response) {
				e := s.get(t, base)
				if fmt.Sprint(attr(t, e, "wings")["value"]) != "2" {
					t.Errorf("wings %v", e["wings"])
				}
				if attr(t, e, "brand")["value"] != "Alfa" {
					t.Errorf("brand %v", e["brand"])
				}
			}},
		{name: "update attrs null for a missing attribute", method: "PATCH", path: base + "/attrs", status: 207,
			body: `{"brand":{"type":"Property","value":"Fiat"},"fins":{"type":"Property","value":"urn:ngsi-ld:null"}}`,
			check: func(t *testing.T, r response) {
				if !strings.Contains(string(r.body), `"attributeName":"fins"`) {
					t.Errorf("notUpdated does not name fins: %s", r.body)
				}
			}},
		{name: "patch attr instance", method: "PATCH", path: base + "/attrs/speed", status: 204,
			body:  `{"value":60,"datasetId":"urn:ngsi-ld:Dataset:gps"}`,
			check: wantSpeeds("map[:50 urn:ngsi-ld:Dataset:gps:60 urn:ngsi-ld:Dataset:obd:49]")},
		{name: "patch attr default", method: "PATCH", path: base + "/attrs/speed", status: 204,
			body:  `{"type":"Property","value":51}`,
			check: wantSpeeds("map[:51 urn:ngsi-ld:Dataset:gps:60 urn:ngsi-ld:Dataset:obd:49]")},
		{name: "patch attr unknown dataset", method: "PATCH", path: base + "/attrs/speed", status: 404,
			body: `{"value":1,"datasetId":"urn:ngsi-ld:Dataset:none"}`, problem: "ResourceNotFound",
			detail: []string{"speed", "urn:ngsi-ld:Dataset:none"}},
		{name: "patch attr unknown", method: "PATCH", path: base + "/attrs/fins", status: 404,
			body: `{"value":1}`, problem: "ResourceNotFound", detail: []string{"fins"}},
		{name: "put attr", method: "PUT", path: base + "/attrs/brand", status: 204,
			body: `{"type":"Property","value":"Ferrari","observedAt":"2024-05-01T00:00:00Z"}`,
			check: func(t *testing.T, _ response) {
				b := attr(t, s.get(t, base), "brand")
				if b["value"] != "Ferrari" || b["observedAt"] != "2024-05-01T00:00:00Z" {
					t.Errorf("brand %v", b)
				}
			}},
		{name: "put attr unknown", method: "PUT", path: base + "/attrs/fins", status: 404,
			body: `{"type":"Property","value":1}`, problem: "ResourceNotFound", detail: []string{"fins"}},
		{name: "put attr bad shape", method: "PUT", path: base + "/attrs/brand", status: 400,
			body: `{"type":"Relationship","value":"x"}`, problem: "BadRequestData", detail: []string{"brand", "object"}},
		{name: "delete attr instance", method: "DELETE", path: base + "/attrs/speed?datasetId=urn:ngsi-ld:Dataset:gps", status: 204,
			check: wantSpeeds("map[:51 urn:ngsi-ld:Dataset:obd:49]")},
		{name: "delete attr instance again", method: "DELETE", path: base + "/attrs/speed?datasetId=urn:ngsi-ld:Dataset:gps", status: 404,
			problem: "ResourceNotFound", detail: []string{"speed", "urn:ngsi-ld:Dataset:gps"}},
		{name: "delete attr bad datasetId", method: "DELETE", path: base + "/attrs/speed?datasetId=not%20a%20uri", status: 400,
			problem: "BadRequestData", detail: []string{"datasetId"}},
		{name: "delete attr default", method: "DELETE", path: base + "/attrs/speed", status: 204,
			check: wantSpeeds("map[urn:ngsi-ld:Dataset:obd:49]")},
		{name: "delete attr deleteAll", method: "DELETE", path: base + "/attrs/speed?deleteAll=true", status: 204,
			check: wantSpeeds("map[]")},
		{name: "delete attr gone", method: "DELETE", path: base + "/attrs/speed?deleteAll=true", status: 404,
			problem: "ResourceNotFound", detail: []string{"speed"}},
		{name: "delete attr bad deleteAll", method: "DELETE", path: base + "/attrs/brand?deleteAll=maybe", status: 400,
			problem: "BadRequestData", detail: []string{"deleteAll"}},
		{name: "delete attr trailing slash", method: "DELETE", path: base + "/attrs/doors/", status: 204},
		{name: "delete attr unknown entity", method: "DELETE", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:none/attrs/brand", status: 404,
			problem: "ResourceNotFound", detail: []string{"urn:ngsi-ld:Vehicle:none"}},
	})
}

func TestVersionProbes(t *testing.T) {
	s := newServer(t, api.Options{Version: "1.2.3"})
	for _, p := range []string{"/version", "/ngsi-ld/ex/v1/version", "/version/"} {
		t.Run(p, func(t *testing.T) {
			r := s.do(t, "GET", p, "")
			mustStatus(t, r, 200)
			if m := r.object(t); m["version"] != "1.2.3" {
				t.Errorf("version %v", m)
			}
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	s := newServer(t, api.Options{})
	runSteps(t, s, []step{
		{name: "unknown path", method: "GET", path: "/ngsi-ld/v1/nothing", status: 404, problem: "ResourceNotFound", detail: []string{"/ngsi-ld/v1/nothing"}},
		{name: "method not allowed", method: "POST", path: "/ngsi-ld/v1/entities/urn:x:1", body: `{}`, status: 405, problem: "InvalidRequest", detail: []string{"POST"}},
		{name: "replace without id", method: "PUT", path: "/ngsi-ld/v1/entities", body: `{}`, status: 400, problem: "BadRequestData", detail: []string{"entity id"}},
		{name: "unknown batch op", method: "POST", path: "/ngsi-ld/v1/entityOperations/explode", body: `[]`, status: 404, problem: "ResourceNotFound", detail: []string{"explode"}},
	})
}

func TestTenants(t *testing.T) {
	s := newServer(t, api.Options{})
	const id = "urn:ngsi-ld:T:1"
	ent := `{"id":"` + id + `","type":"T","p":{"type":"Property","value":1}}`
	tn := []string{"NGSILD-Tenant", "mantova"}
	echo := func(want string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			if got := r.header.Get("NGSILD-Tenant"); got != want {
				t.Errorf("NGSILD-Tenant echoed %q, want %q", got, want)
			}
		}
	}
	unknown := []string{"NGSILD-Tenant", "nowhere"}
	runSteps(t, s, []step{
		{name: "get unknown tenant", method: "GET", path: "/ngsi-ld/v1/entities/" + id, hdr: unknown, status: 404,
			problem: "NonexistentTenant", detail: []string{"nowhere"}, check: echo("nowhere")},
		{name: "query unknown tenant", method: "GET", path: "/ngsi-ld/v1/entities?type=T", hdr: unknown, status: 404,
			problem: "NonexistentTenant", detail: []string{"nowhere"}},
		{name: "delete unknown tenant", method: "DELETE", path: "/ngsi-ld/v1/entities/" + id, hdr: unknown, status: 404,
			problem: "NonexistentTenant"},
		{name: "merge unknown tenant", method: "PATCH", path: "/ngsi-ld/v1/entities/" + id, hdr: unknown, body: `{"p":2}`, status: 404,
			problem: "NonexistentTenant"},
		{name: "append unknown tenant", method: "POST", path: "/ngsi-ld/v1/entities/" + id + "/attrs", hdr: unknown, body: `{"p":2}`, status: 404,
			problem: "NonexistentTenant"},
		{name: "batch update unknown tenant", method: "POST", path: "/ngsi-ld/v1/entityOperations/update", hdr: unknown, body: `[` + ent + `]`, status: 404,
			problem: "NonexistentTenant"},
		{name: "purge unknown tenant", method: "DELETE", path: "/ngsi-ld/v1/entities?type=T", hdr: unknown, status: 404,
			problem: "NonexistentTenant"},
		{name: "bad tenant name", method: "GET", path: "/ngsi-ld/v1/entities/" + id, hdr: []string{"NGSILD-Tenant", "a b"}, status: 400,
			problem: "BadRequestData", detail: []string{"NGSILD-Tenant"}},
		{name: "create makes tenant", method: "POST", path: "/ngsi-ld/v1/entities", hdr: tn, body: ent, status: 201, check: echo("mantova")},
		{name: "get in tenant", method: "GET", path: "/ngsi-ld/v1/entities/" + id, hdr: tn, status: 200, check: echo("mantova")},
		{name: "not in default tenant", method: "GET", path: "/ngsi-ld/v1/entities/" + id, status: 404, problem: "ResourceNotFound",
			check: echo("")},
		{name: "query in tenant", method: "GET", path: "/ngsi-ld/v1/entities?type=T", hdr: tn, status: 200,
			check: func(t *testing.T, r response) {
				if arr, _ := r.json(t).([]any); len(arr) != 1 {
					t.Errorf("tenant query: %s", r.body)
				}
			}},
		{name: "batch upsert makes tenant", method: "POST", path: "/ngsi-ld/v1/entityOperations/upsert",
			hdr: []string{"NGSILD-Tenant", "messina"}, body: `[` + ent + `]`, status: 201, check: echo("messina")},
		{name: "get in second tenant", method: "GET", path: "/ngsi-ld/v1/entities/" + id, hdr: []string{"NGSILD-Tenant", "messina"}, status: 200},
	})
}

func TestQueryEntities(t *testing.T) {
	s := newServer(t, api.Options{})
	var batch []string
	for i := range 25 {
		typ := "Sensor"
		if i%5 == 0 {
			typ = "Camera"
		}
		extra := ""
		if i%2 == 0 {
			extra = `,"battery":{"type":"Property","value":` + fmt.Sprint(i) + `}`
		}
		batch = append(batch, fmt.Sprintf(`{"id":"urn:ngsi-ld:%s:%02d","type":"%s","n":{"type":"Property","value":%d}%s}`, typ, i, typ, i, extra))
	}
	r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/create", "["+strings.Join(batch, ",")+"]")
	mustStatus(t, r, 201)
	ids := func(t *testing.T, r response) []string {
		t.Helper()
		arr, ok := r.json(t).([]any)
		if !ok {
			t.Fatalf("not an array: %s", r.body)
		}
		var out []string
		for _, x := range arr {
			out = append(out, x.(map[string]any)["id"].(string))
		}
		return out
	}
	tests := []struct {
		query   string
		n       int    // entities in the page
		first   string // id of the first
		count   string // NGSILD-Results-Count, "" if absent
		problem string
	}{
		{query: "type=Sensor", n: 20, first: "urn:ngsi-ld:Sensor:01"},
		{query: "type=Sensor&count=true", n: 20, first: "urn:ngsi-ld:Sensor:01", count: "20"},
		{query: "type=Sensor&options=count", n: 20, count: "20"},
		{query: "type=Sensor,Camera&count=true&limit=100", n: 25, first: "urn:ngsi-ld:Camera:00", count: "25"},
		{query: "type=Camera&limit=2&offset=1&count=true", n: 2, first: "urn:ngsi-ld:Camera:05", count: "5"},
		{query: "type=Camera&offset=10", n: 0},
		{query: "type=Sensor&limit=0&count=true", n: 0, count: "20"},
		{query: "id=urn:ngsi-ld:Sensor:03,urn:ngsi-ld:Camera:10", n: 2, first: "urn:ngsi-ld:Camera:10"},
		{query: "idPattern=^urn:ngsi-ld:Sensor:1[0-4]$&count=true", n: 4, first: "urn:ngsi-ld:Sensor:11", count: "4"},
		{query: "type=Sensor&attrs=battery&count=true&limit=100", n: 10, first: "urn:ngsi-ld:Sensor:02", count: "10"},
		{query: "type=Nothing&count=true", n: 0, count: "0"},
		{query: "", problem: "BadRequestData"},
		{query: "type=Sensor&limit=-1", problem: "BadRequestData"},
		{query: "type=Sensor&limit=x", problem: "BadRequestData"},
		{query: "type=Sensor&offset=-3", problem: "BadRequestData"},
		{query: "type=Sensor&limit=0", problem: "BadRequestData"},
		{query: "type=Sensor&count=perhaps", problem: "BadRequestData"},
		{query: "type=Sensor&limit=100000", problem: "TooManyResults"},
		{query: "idPattern=(", problem: "BadRequestData"},
		{query: "id=not-a-uri", problem: "BadRequestData"},
		{query: "type=Sensor&options=bogus", problem: "InvalidRequest"},
		{query: "type=Sensor&options=keyValues,concise", problem: "BadRequestData"},
		{query: "type=Sensor&format=weird", problem: "InvalidRequest"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			for _, p := range []string{"/ngsi-ld/v1/entities?", "/ngsi-ld/v1/entities/?"} {
				r := s.do(t, "GET", p+tc.query, "")
				if tc.problem != "" {
					if r.status < 400 || !isProblem(r.body) || !strings.HasSuffix(string(r.object(t)["type"].(string)), tc.problem) {
						t.Fatalf("want %s problem, got %s", tc.problem, r)
					}
					continue
				}
				mustStatus(t, r, 200)
				got := ids(t, r)
				if len(got) != tc.n {
					t.Fatalf("%d entities, want %d: %v", len(got), tc.n, got)
				}
				if tc.first != "" && got[0] != tc.first {
					t.Errorf("first %s, want %s (%v)", got[0], tc.first, got)
				}
				if c := r.header.Get("NGSILD-Results-Count"); c != tc.count {
					t.Errorf("NGSILD-Results-Count %q, want %q", c, tc.count)
				}
			}
		})
	}
}

func TestPurge(t *testing.T) {
	s := newServer(t, api.Options{})
	ents := `[{"id":"urn:ngsi-ld:Bin:1","type":"Bin","fill":{"type":"Property","value":1},"color":{"type":"Property","value":"g"},"temp":{"type":"Property","value":3}},
	          {"id":"urn:ngsi-ld:Bin:2","type":"Bin","fill":{"type":"Property","value":2},"color":{"type":"Property","value":"b"}},
	          {"id":"urn:ngsi-ld:Lamp:1","type":"Lamp","on":{"type":"Property","value":true}}]`
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entityOperations/create", ents), 201)
	runSteps(t, s, []step{
		{name: "no selection", method: "DELETE", path: "/ngsi-ld/v1/entities", status: 400, problem: "BadRequestData", detail: []string{"type"}},
		{name: "drop and keep", method: "DELETE", path: "/ngsi-ld/v1/entities?type=Bin&drop=fill&keep=color", status: 400, problem: "BadRequestData", detail: []string{"drop", "keep"}},
		{name: "drop", method: "DELETE", path: "/ngsi-ld/v1/entities?type=Bin&drop=color", status: 204,
			check: func(t *testing.T, _ response) {
				for _, id := range []string{"urn:ngsi-ld:Bin:1", "urn:ngsi-ld:Bin:2"} {
					e := s.get(t, "/ngsi-ld/v1/entities/"+id)
					if _, has := e["color"]; has {
						t.Errorf("%s kept color", id)
					}
					if _, has := e["fill"]; !has {
						t.Errorf("%s lost fill", id)
					}
				}
			}},
		{name: "keep", method: "DELETE", path: "/ngsi-ld/v1/entities/?type=Bin&keep=fill", status: 204,
			check: func(t *testing.T, _ response) {
				e := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Bin:1")
				if _, has := e["temp"]; has {
					t.Errorf("keep=fill kept temp: %v", e)
				}
				if _, has := e["fill"]; !has {
					t.Errorf("keep=fill lost fill")
				}
			}},
		{name: "delete type", method: "DELETE", path: "/ngsi-ld/v1/entities?type=Bin", status: 204,
			check: func(t *testing.T, _ response) {
				mustStatus(t, s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Bin:1", ""), 404)
				mustStatus(t, s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:1", ""), 200)
			}},
		{name: "delete type none left", method: "DELETE", path: "/ngsi-ld/v1/entities?type=Bin", status: 204},
		{name: "local=true purges everything", method: "DELETE", path: "/ngsi-ld/v1/entities?local=true", status: 204,
			check: func(t *testing.T, _ response) {
				mustStatus(t, s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:1", ""), 404)
			}},
	})
}

func TestBatchOperations(t *testing.T) {
	s := newServer(t, api.Options{MaxBatch: 50})
	e := func(id string, v int) string {
		return fmt.Sprintf(`{"id":"urn:ngsi-ld:Room:%s","type":"Room","temp":{"type":"Property","value":%d}}`, id, v)
	}
	ops := "/ngsi-ld/v1/entityOperations/"
	temp := func(id string) string {
		r := s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:"+id+"?options=keyValues", "")
		if r.status != 200 {
			return "absent"
		}
		return fmt.Sprint(r.object(t)["temp"])
	}
	wantTemps := func(want string) func(t *testing.T, r response) {
		return func(t *testing.T, _ response) {
			got := []string{temp("a"), temp("b"), temp("c")}
			if strings.Join(got, " ") != want {
				t.Errorf("temps a b c = %v, want %s", got, want)
			}
		}
	}
	batchResult := func(success []string, errIDs map[string]string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			res := r.object(t)
			if got := canon(t, res["success"]); got != canon(t, success) {
				t.Errorf("success %s, want %v", got, success)
			}
			errs, _ := res["errors"].([]any)
			if len(errs) != len(errIDs) {
				t.Fatalf("errors %v, want %v", res["errors"], errIDs)
			}
			for _, x := range errs {
				m := x.(map[string]any)
				id, _ := m["entityId"].(string)
				want, ok := errIDs[id]
				if !ok {
					t.Errorf("unexpected error for %q: %v", id, m)
					continue
				}
				p, _ := m["error"].(map[string]any)
				if typ, _ := p["type"].(string); typ != etsiErrors+want {
					t.Errorf("error of %s: type %v, want %s", id, p["type"], want)
				}
				if d, _ := p["detail"].(string); d == "" {
					t.Errorf("error of %s without detail", id)
				}
			}
		}
	}
	runSteps(t, s, []step{
		{name: "create", method: "POST", path: ops + "create", body: "[" + e("a", 1) + "," + e("b", 2) + "]", status: 201,
			check: func(t *testing.T, r response) {
				if canon(t, r.json(t)) != `["urn:ngsi-ld:Room:a","urn:ngsi-ld:Room:b"]` {
					t.Errorf("created ids %s", r.body)
				}
			}},
		{name: "create partial", method: "POST", path: ops + "create/", status: 207,
			body: "[" + e("a", 1) + "," + e("c", 3) + `,{"id":"bad id","type":"Room"},{"id":"urn:ngsi-ld:Room:d","type":"Room","loc":{"type":"Relationship"}},7]`,
			check: func(t *testing.T, r response) {
				batchResult([]string{"urn:ngsi-ld:Room:c"}, map[string]string{
					"urn:ngsi-ld:Room:a": "AlreadyExists", "bad id": "BadRequestData",
					"urn:ngsi-ld:Room:d": "BadRequestData", "": "BadRequestData",
				})(t, r)
				if !strings.Contains(string(r.body), "loc") {
					t.Errorf("the error for Room:d does not name the attribute: %s", r.body)
				}
				wantTemps("1 2 3")(t, r)
			}},
		{name: "upsert existing", method: "POST", path: ops + "upsert", body: "[" + e("a", 10) + "," + e("b", 20) + "]", status: 204,
			check: wantTemps("10 20 3")},
		{name: "upsert creates", method: "POST", path: ops + "upsert", body: "[" + e("a", 11) + `,{"id":"urn:ngsi-ld:Room:n","type":"Room"}]`, status: 201,
			check: func(t *testing.T, r response) {
				if canon(t, r.json(t)) != `["urn:ngsi-ld:Room:n"]` {
					t.Errorf("created ids %s", r.body)
				}
				wantTemps("11 20 3")(t, r)
			}},
		{name: "upsert replaces", method: "POST", path: ops + "upsert", status: 204,
			body:  `[{"id":"urn:ngsi-ld:Room:a","type":"Room","hum":{"type":"Property","value":50}}]`,
			check: wantTemps("<nil> 20 3")},
		{name: "upsert update", method: "POST", path: ops + "upsert?options=update", status: 204,
			body: `[{"id":"urn:ngsi-ld:Room:a","type":"Room","temp":{"type":"Property","value":12}}]`,
			check: func(t *testing.T, r response) {
				wantTemps("12 20 3")(t, r)
				if _, has := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:a")["hum"]; !has {
					t.Errorf("upsert?options=update removed hum")
				}
			}},
		{name: "update", method: "POST", path: ops + "update", body: "[" + e("a", 13) + "," + e("b", 23) + "]", status: 204,
			check: wantTemps("13 23 3")},
		{name: "update noOverwrite", method: "POST", path: ops + "update?options=noOverwrite", body: "[" + e("a", 99) + "]", status: 207,
			check: wantTemps("13 23 3")},
		{name: "update missing", method: "POST", path: ops + "update", body: "[" + e("a", 14) + "," + e("zz", 1) + "]", status: 207,
			check: func(t *testing.T, r response) {
				batchResult([]string{"urn:ngsi-ld:Room:a"}, map[string]string{"urn:ngsi-ld:Room:zz": "ResourceNotFound"})(t, r)
				wantTemps("14 23 3")(t, r)
			}},
		{name: "merge", method: "POST", path: ops + "merge",
			body: `[{"id":"urn:ngsi-ld:Room:b","temp":{"value":24},"hum":{"type":"Property","value":1}},{"id":"urn:ngsi-ld:Room:a","hum":"urn:ngsi-ld:null"}]`, status: 204,
			check: func(t *testing.T, r response) {
				wantTemps("14 24 3")(t, r)
				if _, has := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:a")["hum"]; has {
					t.Errorf("merge null did not delete hum")
				}
			}},
		{name: "merge missing", method: "POST", path: ops + "merge", body: `[{"id":"urn:ngsi-ld:Room:zz","temp":{"value":1}}]`, status: 207,
			check: batchResult([]string{}, map[string]string{"urn:ngsi-ld:Room:zz": "ResourceNotFound"})},
		{name: "delete", method: "POST", path: ops + "delete", body: `["urn:ngsi-ld:Room:c","urn:ngsi-ld:Room:n"]`, status: 204,
			check: wantTemps("14 24 absent")},
		{name: "delete partial", method: "POST", path: ops + "delete", body: `["urn:ngsi-ld:Room:b","urn:ngsi-ld:Room:c",42]`, status: 207,
			check: func(t *testing.T, r response) {
				batchResult([]string{"urn:ngsi-ld:Room:b"}, map[string]string{"urn:ngsi-ld:Room:c": "ResourceNotFound", "42": "BadRequestData"})(t, r)
				wantTemps("14 absent absent")(t, r)
			}},
		{name: "same id twice in order", method: "POST", path: ops + "upsert?options=update",
			body: "[" + e("a", 1) + "," + e("a", 2) + "," + e("a", 3) + "]", status: 204, check: wantTemps("3 absent absent")},
		{name: "not an array", method: "POST", path: ops + "create", body: e("x", 1), status: 400, problem: "BadRequestData", detail: []string{"array"}},
		{name: "empty", method: "POST", path: ops + "create", body: `[]`, status: 400, problem: "BadRequestData", detail: []string{"empty"}},
		{name: "too many", method: "POST", path: ops + "upsert", body: "[" + strings.Repeat(e("a", 1)+",", 50) + e("a", 1) + "]", status: 400,
			problem: "BadRequestData", detail: []string{"51", "50"}},
		{name: "bad json", method: "POST", path: ops + "upsert", body: "[" + e("a", 1) + ",", status: 400, problem: "InvalidRequest"},
		{name: "text/plain", method: "POST", path: ops + "upsert", body: "[" + e("a", 1) + "]", hdr: []string{"Content-Type", "text/plain"}, status: 415,
			problem: "InvalidRequest", detail: []string{"text/plain"}},
	})
}
