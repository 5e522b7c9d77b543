package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

const exNS = "https://example.org/ns#"

// userContext maps a few terms to IRIs outside the core context's default vocabulary.
const userContext = `{"@context":{
  "ex":"https://example.org/ns#",
  "temperature":"https://example.org/ns#temperature",
  "Room":"https://example.org/ns#Room",
  "office":"https://example.org/ns#office",
  "category":{"@id":"https://example.org/ns#category","@type":"@vocab"}
}}`

// contextServer serves userContext at /ctx.jsonld and counts the fetches.
func contextServer(t *testing.T) (string, *int) {
	t.Helper()
	n := new(int)
	cs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ctx.jsonld":
			*n++
			w.Header().Set("Content-Type", "application/ld+json")
			_, _ = w.Write([]byte(userContext))
		case "/broken.jsonld":
			w.Header().Set("Content-Type", "application/ld+json")
			_, _ = w.Write([]byte(`{"@context": {"x": `))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(cs.Close)
	return cs.URL, n
}

func TestUserContext(t *testing.T) {
	base, _ := contextServer(t)
	ctxURL := base + "/ctx.jsonld"
	s := newServer(t, api.Options{})
	link := []string{"Link", linkHeader(ctxURL)}
	room := `{"id":"urn:ngsi-ld:Room:1","type":"Room",
		"temperature":{"type":"Property","value":21},
		"category":{"type":"VocabProperty","vocab":"office"},
		"humidity":{"type":"Property","value":40}}`
	path := "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"
	runSteps(t, s, []step{
		{name: "create with Link", method: "POST", path: "/ngsi-ld/v1/entities", body: room, hdr: link, status: 201,
			check: func(t *testing.T, _ response) {
				e, err := s.b.Get(context.Background(), "", "urn:ngsi-ld:Room:1")
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := e.Attrs[exNS+"temperature"]; !ok {
					t.Errorf("temperature not stored expanded: %v", e.AttrNames())
				}
				if _, ok := e.Attrs["humidity"]; !ok {
					t.Errorf("a term of the default vocabulary is stored as its core name: %v", e.AttrNames())
				}
				if len(e.Types) != 1 || e.Types[0] != exNS+"Room" {
					t.Errorf("types %v", e.Types)
				}
				if v := e.Attrs[exNS+"category"][0].Value; v != exNS+"office" {
					t.Errorf("vocab stored as %v", v)
				}
			}},
		{name: "get with the same context", method: "GET", path: path, hdr: link, status: 200,
			check: func(t *testing.T, r response) {
				if !strings.Contains(r.header.Get("Link"), ctxURL) {
					t.Errorf("response Link %q does not name the request's context", r.header.Get("Link"))
				}
				sameJSON(t, r.body, room)
			}},
		{name: "get with the core context", method: "GET", path: path, status: 200,
			check: func(t *testing.T, r response) {
				sameJSON(t, r.body, `{"id":"urn:ngsi-ld:Room:1","type":"https://example.org/ns#Room",
					"https://example.org/ns#temperature":{"type":"Property","value":21},
					"https://example.org/ns#category":{"type":"VocabProperty","vocab":"https://example.org/ns#office"},
					"humidity":{"type":"Property","value":40}}`)
			}},
		{name: "keyValues with the context", method: "GET", path: path + "?options=keyValues", hdr: link, status: 200,
			check: func(t *testing.T, r response) {
				sameJSON(t, r.body, `{"id":"urn:ngsi-ld:Room:1","type":"Room","temperature":21,"category":"office","humidity":40}`)
			}},
		{name: "ld+json output echoes the context", method: "GET", path: path, hdr: append([]string{"Accept", "application/ld+json"}, link...), status: 200,
			check: func(t *testing.T, r response) {
				if c := r.object(t)["@context"]; c != ctxURL {
					t.Errorf("@context %v, want %s", c, ctxURL)
				}
			}},
		{name: "query by term", method: "GET", path: "/ngsi-ld/v1/entities?type=Room&count=true", hdr: link, status: 200,
			check: func(t *testing.T, r response) {
				if c := r.header.Get("NGSILD-Results-Count"); c != "1" {
					t.Errorf("count %q", c)
				}
			}},
		{name: "query by term, core context", method: "GET", path: "/ngsi-ld/v1/entities?type=Room&count=true", status: 200,
			check: func(t *testing.T, r response) {
				if c := r.header.Get("NGSILD-Results-Count"); c != "0" {
					t.Errorf("Room of the default vocabulary matched the example.org Room: count %q", c)
				}
			}},
		{name: "query by IRI", method: "GET", path: "/ngsi-ld/v1/entities?type=https://example.org/ns%23Room&count=true", status: 200,
			check: func(t *testing.T, r response) {
				if c := r.header.Get("NGSILD-Results-Count"); c != "1" {
					t.Errorf("count %q", c)
				}
			}},
		{name: "patch attr by term", method: "PATCH", path: path + "/attrs/temperature", body: `{"value":22}`, hdr: link, status: 204,
			check: func(t *testing.T, _ response) {
				e := s.get(t, path+"?options=keyValues", link...)
				if canon(t, e["temperature"]) != "22" {
					t.Errorf("temperature %v", e["temperature"])
				}
			}},
		{name: "delete attr by IRI", method: "DELETE", path: path + "/attrs/https:%2F%2Fexample.org%2Fns%23temperature", status: 204,
			check: func(t *testing.T, _ response) {
				if _, has := s.get(t, path, link...)["temperature"]; has {
					t.Errorf("temperature not deleted")
				}
			}},
		{name: "create ld+json, context in body", method: "POST", path: "/ngsi-ld/v1/entities", status: 201,
			hdr:  []string{"Content-Type", "application/ld+json"},
			body: `{"id":"urn:ngsi-ld:Room:2","type":"Room","temperature":19,"@context":["` + ctxURL + `"]}`,
			check: func(t *testing.T, _ response) {
				e := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:2?options=keyValues")
				if canon(t, e[exNS+"temperature"]) != "19" || e["type"] != exNS+"Room" {
					t.Errorf("ld+json create: %v", e)
				}
			}},
		{name: "create with inline context", method: "POST", path: "/ngsi-ld/v1/entities", status: 201,
			hdr:  []string{"Content-Type", "application/ld+json"},
			body: `{"id":"urn:ngsi-ld:Room:3","type":"Room","temperature":18,"@context":{"temperature":"https://example.org/ns#temperature","Room":"https://example.org/ns#Room"}}`,
			check: func(t *testing.T, _ response) {
				e := s.get(t, "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:3?options=keyValues", link...)
				if canon(t, e["temperature"]) != "18" || e["type"] != "Room" {
					t.Errorf("inline context create: %v", e)
				}
			}},
		{name: "batch with contexts in body", method: "POST", path: "/ngsi-ld/v1/entityOperations/upsert", status: 201,
			hdr: []string{"Content-Type", "application/ld+json"},
			body: `[{"id":"urn:ngsi-ld:Room:4","type":"Room","temperature":17,"@context":"` + ctxURL + `"},
			        {"id":"urn:ngsi-ld:Room:5","type":"Room","temperature":16,"@context":"` + ctxURL + `"}]`,
			check: func(t *testing.T, _ response) {
				r := s.do(t, "GET", "/ngsi-ld/v1/entities?type=Room&count=true&attrs=temperature", "", link...)
				if c := r.header.Get("NGSILD-Results-Count"); c != "4" {
					t.Errorf("count %q: %s", c, r.body)
				}
			}},
		{name: "invalid context document", method: "POST", path: "/ngsi-ld/v1/entities", status: 400,
			hdr: []string{"Link", linkHeader(base + "/broken.jsonld")}, body: `{"id":"urn:ngsi-ld:Room:9","type":"Room"}`,
			problem: "BadRequestData", detail: []string{"broken.jsonld"}},
		{name: "context 404", method: "POST", path: "/ngsi-ld/v1/entities", status: 503,
			hdr: []string{"Link", linkHeader(base + "/missing.jsonld")}, body: `{"id":"urn:ngsi-ld:Room:9","type":"Room"}`,
			problem: "LdContextNotAvailable", detail: []string{"missing.jsonld"}},
	})
}

// hangingServer accepts connections and never answers until the test ends.
func hangingServer(t *testing.T) string {
	t.Helper()
	stop := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(stop) })
	return hs.URL
}

func TestUnreachableContext(t *testing.T) {
	hang := hangingServer(t) + "/ctx.jsonld"
	loader := jsonld.NewLoader(jsonld.LoaderOptions{Timeout: 300 * time.Millisecond})
	s := newServer(t, api.Options{Contexts: loader})
	// A port that refuses connections: a server closed at once.
	closed := httptest.NewServer(http.NotFoundHandler())
	refused := closed.URL + "/ctx.jsonld"
	closed.Close()
	ent := `{"id":"urn:ngsi-ld:Room:1","type":"Room","temperature":21}`
	tests := []step{
		{name: "create with hanging Link", method: "POST", path: "/ngsi-ld/v1/entities", body: ent,
			hdr: []string{"Link", linkHeader(hang)}, status: 503, problem: "LdContextNotAvailable", detail: []string{hang}},
		{name: "create with hanging body context", method: "POST", path: "/ngsi-ld/v1/entities",
			body: `{"id":"urn:ngsi-ld:Room:1","type":"Room","@context":["` + hang + `"]}`,
			hdr:  []string{"Content-Type", "application/ld+json"}, status: 503, problem: "LdContextNotAvailable"},
		{name: "get with hanging Link", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1",
			hdr: []string{"Link", linkHeader(hang)}, status: 503, problem: "LdContextNotAvailable"},
		{name: "query with hanging Link", method: "GET", path: "/ngsi-ld/v1/entities?type=Room",
			hdr: []string{"Link", linkHeader(hang)}, status: 503, problem: "LdContextNotAvailable"},
		{name: "refused", method: "POST", path: "/ngsi-ld/v1/entities", body: ent,
			hdr: []string{"Link", linkHeader(refused)}, status: 503, problem: "LdContextNotAvailable", detail: []string{refused}},
		{name: "batch with hanging contexts", method: "POST", path: "/ngsi-ld/v1/entityOperations/upsert",
			hdr: []string{"Content-Type", "application/ld+json"},
			body: `[{"id":"urn:ngsi-ld:Room:1","type":"Room","@context":"` + hang + `"},
			        {"id":"urn:ngsi-ld:Room:2","type":"Room","@context":"` + hang + `"},
			        {"id":"urn:ngsi-ld:Room:3","type":"Room","@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"}]`,
			status: 207, check: func(t *testing.T, r response) {
				res := r.object(t)
				if canon(t, res["success"]) != `["urn:ngsi-ld:Room:3"]` {
					t.Errorf("success %v", res["success"])
				}
				errs, _ := res["errors"].([]any)
				if len(errs) != 2 {
					t.Fatalf("errors %v", res["errors"])
				}
				for _, x := range errs {
					p := x.(map[string]any)["error"].(map[string]any)
					if p["type"] != etsiErrors+"LdContextNotAvailable" {
						t.Errorf("error %v", p)
					}
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			runStep(t, s, tc)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: an unreachable context must fail fast", d)
			}
			if tc.status == 503 {
				r := s.do(t, tc.method, tc.path, tc.body, tc.hdr...)
				if r.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
			}
		})
	}
}

// TestContextsThatMapBadly sends contexts that map terms to names the
// broker cannot store: a 400 naming the term, and nothing stored.
func TestContextsThatMapBadly(t *testing.T) {
	s := newServer(t, api.Options{})
	ld := []string{"Content-Type", "application/ld+json"}
	body := func(ctx, attrs string) string {
		return `{"id":"urn:ngsi-ld:X:1","type":"X",` + attrs + `,"@context":` + ctx + `}`
	}
	var steps []step
	for _, tc := range []struct{ name, ctx, attrs, detail string }{
		{"IRI with a space", `{"p":"https://x.org/a p"}`, `"p":1`, "p expands to"},
		{"attribute onto a system member", `{"made":"https://uri.etsi.org/ngsi-ld/createdAt"}`, `"made":1`, "made expands to"},
		{"sub-attribute onto a member", `{"v":"https://uri.etsi.org/ngsi-ld/hasValue"}`, `"p":{"value":1,"v":2}`, "v expands to"},
		{"type with a space", `{"X":"https://x.org/A B"}`, `"p":1`, "X"},
		{"vocab with a space", `{"kind":{"@id":"https://x.org/kind","@type":"@vocab"},"car":"https://x.org/c a r"}`, `"kind":{"vocab":"car"}`, "car"},
	} {
		steps = append(steps, step{name: tc.name, method: "POST", path: "/ngsi-ld/v1/entities", hdr: ld,
			body: body(tc.ctx, tc.attrs), status: 400, problem: "BadRequestData", detail: []string{tc.detail, "expands to"}})
	}
	steps = append(steps, step{name: "nothing stored", method: "GET", path: "/ngsi-ld/v1/entities/urn:ngsi-ld:X:1", status: 404, problem: "ResourceNotFound"})
	runCases(t, s, steps, false)
}
