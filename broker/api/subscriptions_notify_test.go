package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
)

// notified is one notification a test endpoint received.
type notified struct {
	header http.Header
	body   map[string]any
}

// endpoints is a real HTTP server that keeps notifications by path.
type endpoints struct {
	url string
	mu  sync.Mutex
	got map[string][]notified
}

func newEndpoints(t *testing.T) *endpoints {
	e := &endpoints{got: map[string][]notified{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Errorf("notification to %s is not a JSON object: %s", r.URL.Path, data)
		}
		e.mu.Lock()
		e.got[r.URL.Path] = append(e.got[r.URL.Path], notified{r.Header.Clone(), body})
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

func (e *endpoints) wait(t *testing.T, path string) notified {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		ns := e.got[path]
		e.mu.Unlock()
		if len(ns) > 0 {
			return ns[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification at %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// notifyingServer is the API with a notifier that renders with it.
func notifyingServer(t *testing.T, o api.Options) *server {
	t.Helper()
	b := newBroker(t)
	o.Subscriptions = broker.NewSubscriptionStore(b, broker.SubscriptionStoreOptions{})
	h := api.New(b, o)
	n, err := broker.NewNotifier(b, broker.NotifierOptions{Store: o.Subscriptions, Renderer: h.NotificationRenderer(), LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !n.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("notifier does not lead")
		}
		time.Sleep(5 * time.Millisecond)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &server{url: hs.URL, b: b, h: h}
}

// TestNotificationRepresentations: notifications are compacted with the
// subscription's @context and follow its format, accept, pick and lang.
func TestNotificationRepresentations(t *testing.T) {
	base, _ := contextServer(t)
	ctxURL := base + "/ctx.jsonld"
	link := []string{"Link", linkHeader(ctxURL)}
	s := notifyingServer(t, api.Options{})
	ep := newEndpoints(t)
	sub := func(path, notification string, extra string, hdr ...string) {
		t.Helper()
		typ := "Room"
		if len(hdr) == 0 {
			typ = "https://example.org/ns#Room" // no @context: the full IRI
		}
		body := `{"type":"Subscription","entities":[{"type":"` + typ + `"}]` + extra + `,"notification":{` + notification +
			`"endpoint":{"uri":"` + ep.url + path + `"` + acceptOf(path) + `}}}`
		mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", body, hdr...), http.StatusCreated)
	}
	sub("/json", ``, ``, link...)
	sub("/ld", ``, ``, link...)
	sub("/geo", ``, ``, link...)
	sub("/kv-pick", `"format":"keyValues","pick":"id,temperature",`, ``, link...)
	sub("/concise", `"format":"concise",`, ``, link...)
	sub("/jsonldcontext", `"format":"keyValues",`, `,"jsonldContext":"`+ctxURL+`"`)
	sub("/lang", `"format":"keyValues",`, `,"lang":"it"`, link...)
	s.create(t, `{"id":"urn:ngsi-ld:Room:1","type":"Room","temperature":{"type":"Property","value":21},
		"name":{"type":"LanguageProperty","languageMap":{"en":"Hall","it":"Sala"}},
		"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[11.1,45.2]}}}`, link...)

	n := ep.wait(t, "/json")
	if !strings.Contains(n.header.Get("Link"), ctxURL) || n.header.Get("Content-Type") != "application/json" {
		t.Fatalf("json headers: %v", n.header)
	}
	e := n.body["data"].([]any)[0].(map[string]any)
	if e["type"] != "Room" || e["temperature"] == nil || n.body["@context"] != nil {
		t.Fatalf("json data not compacted with the subscription's context: %v", n.body)
	}

	n = ep.wait(t, "/ld")
	if n.header.Get("Content-Type") != "application/ld+json" || n.body["@context"] != ctxURL {
		t.Fatalf("ld+json: %v %v", n.header, n.body)
	}

	n = ep.wait(t, "/geo")
	fc := n.body["data"].([]any)[0].(map[string]any)
	if n.header.Get("Content-Type") != "application/geo+json" || fc["type"] != "FeatureCollection" {
		t.Fatalf("geo+json: %v", n.body)
	}
	f := fc["features"].([]any)[0].(map[string]any)
	if f["type"] != "Feature" || f["geometry"].(map[string]any)["type"] != "Point" {
		t.Fatalf("geo+json feature: %v", f)
	}

	e = ep.wait(t, "/kv-pick").body["data"].([]any)[0].(map[string]any)
	if len(e) != 2 || e["id"] != "urn:ngsi-ld:Room:1" || e["temperature"] != float64(21) {
		t.Fatalf("keyValues with pick: %v", e)
	}

	e = ep.wait(t, "/concise").body["data"].([]any)[0].(map[string]any)
	if nm, ok := e["name"].(map[string]any); !ok || nm["languageMap"] == nil || nm["type"] != nil || e["temperature"] != float64(21) {
		t.Fatalf("concise: %v", e)
	}

	e = ep.wait(t, "/jsonldcontext").body["data"].([]any)[0].(map[string]any)
	if e["temperature"] != float64(21) {
		t.Fatalf("jsonldContext not used to compact: %v", e)
	}

	e = ep.wait(t, "/lang").body["data"].([]any)[0].(map[string]any)
	if e["name"] != "Sala" {
		t.Fatalf("lang=it: %v", e)
	}

	// The counters show on the subscription.
	r := s.do(t, "GET", "/ngsi-ld/v1/subscriptions?limit=100", "")
	mustStatus(t, r, http.StatusOK)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var list []map[string]any
		_ = json.Unmarshal(r.body, &list)
		sent := 0
		for _, x := range list {
			nm := x["notification"].(map[string]any)
			if nm["timesSent"] == float64(1) && nm["lastSuccess"] != nil && nm["status"] == "ok" {
				sent++
			}
		}
		if sent == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
		r = s.do(t, "GET", "/ngsi-ld/v1/subscriptions?limit=100", "")
	}
}

func acceptOf(path string) string {
	switch path {
	case "/ld":
		return `,"accept":"application/ld+json"`
	case "/geo":
		return `,"accept":"application/geo+json"`
	}
	return ""
}

// TestSubscriptionPauseResume: PATCH isActive pauses and resumes
// notifications; a change made while paused is not notified.
func TestSubscriptionPauseResume(t *testing.T) {
	s := notifyingServer(t, api.Options{})
	ep := newEndpoints(t)
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"id":"urn:ngsi-ld:Subscription:p","type":"Subscription",
		"entities":[{"type":"Room"}],"notification":{"format":"keyValues","endpoint":{"uri":"`+ep.url+`/p"}}}`), http.StatusCreated)
	s.create(t, `{"id":"urn:ngsi-ld:Room:p","type":"Room","n":{"type":"Property","value":1}}`)
	patch := func(body string) {
		t.Helper()
		mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:p", body), http.StatusNoContent)
	}
	ep.wait(t, "/p")
	mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:p", `{"isActive":false}`), http.StatusNoContent)
	patch(`{"n":{"type":"Property","value":2}}`)
	mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:p", `{"isActive":true}`), http.StatusNoContent)
	patch(`{"n":{"type":"Property","value":3}}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ep.mu.Lock()
		ns := ep.got["/p"]
		ep.mu.Unlock()
		if len(ns) >= 2 {
			var vals []any
			for _, n := range ns {
				for _, d := range n.body["data"].([]any) {
					vals = append(vals, d.(map[string]any)["n"])
				}
			}
			if len(vals) != 2 || vals[0] != float64(1) || vals[1] != float64(3) {
				t.Fatalf("notified values %v, want [1 3] (2 was written while paused)", vals)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications", len(ns))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubscriptionCountersOnNotification: once a subscriber has a
// notification, GET /subscriptions/{id} already counts it, with its
// outcome (lastSuccess, status ok).
func TestSubscriptionCountersOnNotification(t *testing.T) {
	s := notifyingServer(t, api.Options{})
	ep := newEndpoints(t)
	mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"id":"urn:ngsi-ld:Subscription:c","type":"Subscription",
		"entities":[{"type":"Room"}],"notification":{"endpoint":{"uri":"`+ep.url+`/c"}}}`), http.StatusCreated)
	s.create(t, `{"id":"urn:ngsi-ld:Room:c","type":"Room","n":{"type":"Property","value":1}}`)
	// The endpoint keeps the notification before it answers: the GET may
	// come while the attempt is under way, and waits for its outcome.
	ep.wait(t, "/c")
	n := s.get(t, "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:c")["notification"].(map[string]any)
	if n["timesSent"] != json.Number("1") || n["lastNotification"] == nil || n["lastSuccess"] == nil || n["status"] != "ok" {
		t.Fatalf("right after the notification arrived: %v", n)
	}
}

// TestNotificationContextAndDatasets: a subscription created with
// "@context":[uri] names uri in the Link header of its application/json
// notifications and in each entity of its application/ld+json ones; its
// datasetId keeps only those attribute instances; a percent-encoded q (as
// copied from a URL) is decoded.
func TestNotificationContextAndDatasets(t *testing.T) {
	base, _ := contextServer(t)
	ctxURL := base + "/ctx.jsonld"
	s := notifyingServer(t, api.Options{})
	ep := newEndpoints(t)
	ld := []string{"Content-Type", "application/ld+json"}
	sub := func(path, extra, accept string) {
		t.Helper()
		body := `{"type":"Subscription","entities":[{"type":"Room"}]` + extra + `,"notification":{"endpoint":{"uri":"` +
			ep.url + path + `","accept":"` + accept + `"}},"@context":["` + ctxURL + `"]}`
		mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", body, ld...), http.StatusCreated)
	}
	sub("/json", ``, "application/json")
	sub("/ld", ``, "application/ld+json")
	sub("/dataset", `,"datasetId":["urn:ngsi-ld:Dataset:fr"]`, "application/json")
	sub("/q", `,"q":"name==%22Big%20Hall%22"`, "application/json")
	s.create(t, `{"id":"urn:ngsi-ld:Room:d","type":"Room","name":[{"type":"Property","value":"Big Hall"},
		{"type":"Property","value":"Grande salle","datasetId":"urn:ngsi-ld:Dataset:fr"},
		{"type":"Property","value":"Grosser Saal","datasetId":"urn:ngsi-ld:Dataset:de"}],
		"temperature":{"type":"Property","value":21}}`, "Link", linkHeader(ctxURL))

	n := ep.wait(t, "/json")
	if want := linkHeader(ctxURL); n.header.Get("Link") != want {
		t.Fatalf("Link %q, want %q", n.header.Get("Link"), want)
	}
	n = ep.wait(t, "/ld")
	if e := n.body["data"].([]any)[0].(map[string]any); e["@context"] != ctxURL || n.header.Get("Link") != "" {
		t.Fatalf("ld+json entity @context %v (want %s), Link %q", e["@context"], ctxURL, n.header.Get("Link"))
	}
	e := ep.wait(t, "/dataset").body["data"].([]any)[0].(map[string]any)
	name, ok := e["name"].(map[string]any)
	if !ok || name["value"] != "Grande salle" || e["temperature"] != nil {
		t.Fatalf("datasetId fr: %v", e)
	}
	if e := ep.wait(t, "/q").body["data"].([]any)[0].(map[string]any); e["id"] != "urn:ngsi-ld:Room:d" {
		t.Fatalf("q: %v", e)
	}
}

// TestNotificationJoin: notification.join shows the entities the notified
// one's relationships name: flat after it in data (whole, whatever
// notification.attributes keeps of the notified one), inline in the
// relationship's "entity".
func TestNotificationJoin(t *testing.T) {
	s := notifyingServer(t, api.Options{})
	ep := newEndpoints(t)
	sub := func(path, notification string) {
		t.Helper()
		mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"type":"Subscription","entities":[{"type":"Room"}],
			"notification":{`+notification+`"endpoint":{"uri":"`+ep.url+path+`"}}}`), http.StatusCreated)
	}
	sub("/flat", `"join":"flat","joinLevel":1,`)
	sub("/flat-attrs", `"join":"flat","attributes":["inBuilding"],`)
	sub("/inline", `"join":"inline",`)
	sub("/inline-kv", `"join":"inline","format":"simplified",`)
	checkProblem(t, s.do(t, "POST", "/ngsi-ld/v1/subscriptions", `{"type":"Subscription","entities":[{"type":"Room"}],
		"notification":{"join":"sideways","endpoint":{"uri":"`+ep.url+`/x"}}}`), http.StatusBadRequest, "BadRequestData", "notification.join")
	s.create(t, `{"id":"urn:ngsi-ld:Building:b","type":"Building","name":{"type":"Property","value":"Town hall"}}`)
	s.create(t, `{"id":"urn:ngsi-ld:Room:j","type":"Room","n":{"type":"Property","value":1},
		"inBuilding":{"type":"Relationship","object":"urn:ngsi-ld:Building:b"}}`)
	data := func(path string) []any { return ep.wait(t, path).body["data"].([]any) }

	d := data("/flat")
	if len(d) != 2 || d[0].(map[string]any)["id"] != "urn:ngsi-ld:Room:j" || d[1].(map[string]any)["id"] != "urn:ngsi-ld:Building:b" ||
		d[1].(map[string]any)["name"] == nil {
		t.Fatalf("flat: %v", d)
	}
	d = data("/flat-attrs")
	if len(d) != 2 || d[0].(map[string]any)["n"] != nil || d[1].(map[string]any)["name"] == nil {
		t.Fatalf("flat with attributes: %v", d)
	}
	d = data("/inline")
	rel := d[0].(map[string]any)["inBuilding"].(map[string]any)
	if len(d) != 1 || rel["object"] != "urn:ngsi-ld:Building:b" || rel["entity"].(map[string]any)["name"] == nil {
		t.Fatalf("inline: %v", d)
	}
	d = data("/inline-kv")
	if b, ok := d[0].(map[string]any)["inBuilding"].(map[string]any); !ok || b["name"] != "Town hall" {
		t.Fatalf("inline keyValues: %v", d)
	}
}
