package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

const subBody = `{"id":"urn:ngsi-ld:Subscription:s1","type":"Subscription","entities":[{"type":"Vehicle"}],
 "watchedAttributes":["speed"],"q":"speed>10","notification":{"format":"keyValues","endpoint":{"uri":"http://127.0.0.1:9/notify"}}}`

func TestSubscriptionCRUD(t *testing.T) {
	s := newServer(t, api.Options{})
	r := s.do(t, "POST", "/ngsi-ld/v1/subscriptions/", subBody)
	mustStatus(t, r, http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1" {
		t.Fatalf("Location %q", loc)
	}
	checkProblem(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", subBody), http.StatusConflict, "AlreadyExists", "urn:ngsi-ld:Subscription:s1")

	got := s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1?options=sysAttrs")
	n := got["notification"].(map[string]any)
	// isActive shows only as sent; notification.status and the counters
	// only once a notification was attempted (clause 5.2.14);
	// notificationTrigger shows its default.
	_, hasActive := got["isActive"]
	_, hasStatus := n["status"]
	if got["type"] != "Subscription" || got["status"] != "active" || hasActive || hasStatus || got["q"] != "speed>10" ||
		n["format"] != "keyValues" || n["timesSent"] != nil || n["timesFailed"] != nil || got["createdAt"] == nil ||
		canon(t, got["notificationTrigger"]) != `["attributeCreated","attributeUpdated"]` {
		t.Fatalf("subscription answer: %v", got)
	}
	if ep := n["endpoint"].(map[string]any); ep["accept"] != "application/json" || ep["uri"] != "http://127.0.0.1:9/notify" {
		t.Fatalf("endpoint: %v", ep)
	}

	// A second one, generated id; the list pages and counts.
	r = s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"type":"Subscription","entities":[{"type":"Bus"}],"notification":{"endpoint":{"uri":"http://127.0.0.1:9/b"}}}`)
	mustStatus(t, r, http.StatusCreated)
	if !strings.HasPrefix(r.header.Get("Location"), "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:") {
		t.Fatalf("generated Location %q", r.header.Get("Location"))
	}
	// Pages are in creation order (s1 was created first, though its id
	// sorts after the generated one's), with Link rel=prev/next (clause 4.12).
	for _, c := range []struct {
		query      string
		n          int
		first      string
		prev, next string
	}{
		{"", 2, "urn:ngsi-ld:Subscription:s1", "", ""},
		{"?limit=1", 1, "urn:ngsi-ld:Subscription:s1", "", "limit=1&offset=1&options=count"},
		{"?limit=1&offset=1", 1, "urn:ngsi-ld:Subscription:", "limit=1&offset=0&options=count", ""},
		{"?offset=5", 0, "", "limit=20&offset=0&options=count", ""},
		{"?limit=0&count=true", 0, "", "", ""},
	} {
		t.Run("list"+c.query, func(t *testing.T) {
			r := s.do(t, "GET", "/ngsi-ld/v1/subscriptions/"+c.query+sep(c.query)+"options=count", "")
			mustStatus(t, r, http.StatusOK)
			var list []map[string]any
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatal(err)
			}
			if len(list) != c.n || r.header.Get("NGSILD-Results-Count") != "2" {
				t.Fatalf("%d subscriptions, count %q: %s", len(list), r.header.Get("NGSILD-Results-Count"), r.body)
			}
			if c.n > 0 && !strings.HasPrefix(list[0]["id"].(string), c.first) || c.first == "urn:ngsi-ld:Subscription:" && list[0]["id"] == "urn:ngsi-ld:Subscription:s1" {
				t.Fatalf("first subscription %v, want %s", list[0]["id"], c.first)
			}
			var prev, next string
			for _, l := range r.header.Values("Link") {
				for rel, dst := range map[string]*string{`rel="prev"`: &prev, `rel="next"`: &next} {
					if strings.Contains(l, rel) {
						if !strings.Contains(l, `>;rel=`) || strings.Contains(l, "/subscriptions/?") {
							t.Fatalf("Link %q: want <path?query>;rel=... without a space or trailing slash", l)
						}
						u := l[strings.Index(l, "<")+1 : strings.Index(l, ">")]
						*dst = u[strings.Index(u, "?")+1:]
					}
				}
			}
			if prev != c.prev || next != c.next {
				t.Fatalf("Link prev %q next %q, want %q %q: %v", prev, next, c.prev, c.next, r.header.Values("Link"))
			}
		})
	}
	checkProblem(t, s.do(t, "GET", "/ngsi-ld/v1/subscriptions?limit=-1", ""), http.StatusBadRequest, "BadRequestData", "limit")

	// PATCH replaces members whole; null removes one; the result is validated.
	mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1",
		`{"isActive":false,"q":null,"notification":{"format":"keyValues","endpoint":{"uri":"http://127.0.0.1:9/other"}}}`), http.StatusNoContent)
	got = s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1")
	n = got["notification"].(map[string]any)
	if got["status"] != "paused" || got["q"] != nil || n["format"] != "keyValues" || n["endpoint"].(map[string]any)["uri"] != "http://127.0.0.1:9/other" {
		t.Fatalf("after PATCH: %v", got)
	}
	checkProblem(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", `{"throttling":-3}`),
		http.StatusBadRequest, "BadRequestData", "throttling")
	checkProblem(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", `{"notification":{"format":"keyValues"}}`),
		http.StatusBadRequest, "BadRequestData", "endpoint")
	checkProblem(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:nope", `{"isActive":true}`),
		http.StatusNotFound, "ResourceNotFound", "urn:ngsi-ld:Subscription:nope")

	// Dead letters of a subscription: none yet.
	r = s.do(t, "GET", "/ngsi-ld/ex/v1/subscriptions/urn:ngsi-ld:Subscription:s1/dead-letters", "")
	mustStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.body)) != "[]" || r.header.Get("NGSILD-Results-Count") != "0" {
		t.Fatalf("dead letters: %s", r.body)
	}

	mustStatus(t, s.do(t, "DELETE", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", ""), http.StatusNoContent)
	checkProblem(t, s.do(t, "GET", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", ""), http.StatusNotFound, "ResourceNotFound")
	checkProblem(t, s.do(t, "DELETE", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", ""), http.StatusNotFound, "ResourceNotFound")
	checkProblem(t, s.do(t, "GET", "/ngsi-ld/ex/v1/subscriptions/urn:ngsi-ld:Subscription:s1/dead-letters", ""), http.StatusNotFound, "ResourceNotFound")
}

func sep(q string) string {
	if q == "" {
		return "?"
	}
	return "&"
}

func TestSubscriptionTenants(t *testing.T) {
	s := newServer(t, api.Options{})
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", subBody, "NGSILD-Tenant", "city1"), http.StatusCreated)
	checkProblem(t, s.do(t, "GET", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", ""), http.StatusNotFound, "ResourceNotFound")
	s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:s1", "NGSILD-Tenant", "city1")
	r := s.do(t, "GET", "/ngsi-ld/v1/subscriptions?count=true", "")
	mustStatus(t, r, http.StatusOK)
	if r.header.Get("NGSILD-Results-Count") != "0" {
		t.Fatalf("default tenant sees %s subscriptions", r.header.Get("NGSILD-Results-Count"))
	}
	// The same id in another tenant is another subscription.
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", subBody), http.StatusCreated)
}

func TestSubscriptionContext(t *testing.T) {
	s := newServer(t, api.Options{})
	body := `{"@context":[{"speed":"https://example.org/vocab/speed","Vehicle":"https://example.org/vocab/Vehicle"},"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"],
	 "id":"urn:ngsi-ld:Subscription:ld","type":"Subscription","entities":[{"type":"Vehicle"}],"watchedAttributes":["speed"],
	 "notification":{"endpoint":{"uri":"http://127.0.0.1:9/n"}}}`
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", body, "Content-Type", "application/ld+json"), http.StatusCreated)
	got := s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ld", "Accept", "application/ld+json")
	if got["@context"] == nil || got["watchedAttributes"].([]any)[0] != "speed" {
		t.Fatalf("JSON-LD answer: %v", got)
	}
	// A body @context with application/json is refused, as for entities.
	checkProblem(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", body), http.StatusBadRequest, "BadRequestData", "@context")
}

func TestSubscriptionValidation(t *testing.T) {
	s := newServer(t, api.Options{NotificationHosts: []string{"127.0.0.1", "*.example.org"}})
	files, err := filepath.Glob("../testdata/subscriptions/*.bad.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	type tc struct {
		name, body, want string
	}
	cases := []tc{
		{"host not allowed", `{"type":"Subscription","entities":[{"type":"V"}],"notification":{"endpoint":{"uri":"http://10.0.0.1/n"}}}`, `host "10.0.0.1" is not in the allowed`},
		{"empty body object", `{}`, "type"},
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx struct {
			Want string          `json:"want"`
			Body json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(data, &fx); err != nil {
			t.Fatal(err)
		}
		// The fixtures aim at host h, which this server's list does not allow.
		body := strings.ReplaceAll(string(fx.Body), "//h/", "//127.0.0.1/")
		body = strings.ReplaceAll(body, "//h:1883", "//a.example.org:1883")
		cases = append(cases, tc{filepath.Base(f), body, fx.Want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, "POST", "/ngsi-ld/v1/subscriptions", c.body)
			if c.name == "not-object.bad.json" {
				checkProblem(t, r, http.StatusBadRequest, "InvalidRequest")
				return
			}
			checkProblem(t, r, http.StatusBadRequest, "BadRequestData", c.want)
		})
	}
	checkProblem(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"type":`), http.StatusBadRequest, "InvalidRequest")
	checkProblem(t, s.do(t, "GET", "/ngsi-ld/v1/subscriptions/not%20a%20uri", ""), http.StatusBadRequest, "BadRequestData")
}

// FuzzAPISubscriptionBody POSTs arbitrary bytes to /ngsi-ld/v1/subscriptions
// through the real handler on a real broker: never a 5xx, every error a
// ProblemDetails, and a 201 can be read back at its Location.
func FuzzAPISubscriptionBody(f *testing.F) {
	files, _ := filepath.Glob("../testdata/subscriptions/*.json")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Body json.RawMessage `json:"body"`
		}
		if strings.HasSuffix(p, ".bad.json") && json.Unmarshal(data, &fx) == nil {
			data = fx.Body
		}
		f.Add(data, false)
	}
	f.Add([]byte(subBody), false)
	f.Add([]byte(`{"@context":{"speed":"https://x.org/speed"},"type":"Subscription","watchedAttributes":["speed"],"notification":{"endpoint":{"uri":"http://h/n"}}}`), true)
	s := newServer(f, api.Options{MaxBodyBytes: 1 << 16, Contexts: jsonld.NewLoader(jsonld.LoaderOptions{Offline: true}),
		NotificationHosts: []string{"h", "127.0.0.1", "*.example.org"}})
	f.Fuzz(func(t *testing.T, body []byte, ld bool) {
		ct := "application/json"
		if ld {
			ct = "application/ld+json"
		}
		r := s.do(t, "POST", "/ngsi-ld/v1/subscriptions", string(body), "Content-Type", ct)
		switch {
		case r.status == http.StatusCreated:
			loc := r.header.Get("Location")
			g := s.do(t, "GET", loc, "")
			if g.status != http.StatusOK {
				t.Fatalf("created at %s but GET answers %s", loc, g)
			}
			mustStatus(t, s.do(t, "DELETE", loc, ""), http.StatusNoContent)
		case r.status >= 500 && r.status != http.StatusServiceUnavailable:
			t.Fatalf("POST %q: %s", body, r)
		default:
			if !isProblem(r.body) {
				t.Fatalf("POST %q: %d without ProblemDetails: %s", body, r.status, r.body)
			}
		}
	})
}

// TestSubscriptionTermsRecompacted: as application/json, a subscription's
// types and attribute names are written with the request's @context: its
// IRIs without one, the terms with the @context they were sent with.
func TestSubscriptionTermsRecompacted(t *testing.T) {
	base, _ := contextServer(t)
	ctxURL := base + "/ctx.jsonld"
	s := newServer(t, api.Options{})
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"id":"urn:ngsi-ld:Subscription:rc","type":"Subscription",
		"entities":[{"type":"Room"}],"watchedAttributes":["temperature"],"notification":{"attributes":["temperature"],
		"endpoint":{"uri":"http://127.0.0.1:9/n"}}}`, "Link", linkHeader(ctxURL)), http.StatusCreated)
	for _, c := range []struct {
		name       string
		hdr        []string
		typ, watch string
	}{
		{"with the creator's context", []string{"Link", linkHeader(ctxURL)}, "Room", "temperature"},
		{"core context only", nil, "https://example.org/ns#Room", "https://example.org/ns#temperature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:rc", c.hdr...)
			typ := got["entities"].([]any)[0].(map[string]any)["type"]
			watch := got["watchedAttributes"].([]any)[0]
			attr := got["notification"].(map[string]any)["attributes"].([]any)[0]
			if typ != c.typ || watch != c.watch || attr != c.watch {
				t.Fatalf("type %v, watchedAttributes %v, notification.attributes %v; want %s, %s", typ, watch, attr, c.typ, c.watch)
			}
		})
	}
}
