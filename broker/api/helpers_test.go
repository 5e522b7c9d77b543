package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
)

// server is the real API over a real broker on an embedded nats-server
// (random port, JetStream in a temp dir), served by httptest.
type server struct {
	url string
	b   *broker.Broker
	h   *api.Handler
}

func newServer(t testing.TB, o api.Options) *server {
	t.Helper()
	b := newBroker(t)
	h := api.New(b, o)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &server{url: hs.URL, b: b, h: h}
}

// newBroker starts an embedded nats-server (random port, JetStream in a
// temporary directory) and a broker on it, stopped at the end of the test.
func newBroker(t testing.TB) *broker.Broker {
	t.Helper()
	return newBrokerWith(t, broker.Options{})
}

// newBrokerWith is newBroker with options (Conn is set here).
func newBrokerWith(t testing.TB, o broker.Options) *broker.Broker {
	t.Helper()
	ns, err := broker.StartEmbeddedNATS(broker.EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	o.Conn = nc
	b, err := broker.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// response is a read response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return http.StatusText(r.status) + " " + string(r.body)
}

// json decodes the body (numbers as json.Number).
func (r response) json(t testing.TB) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("response body is not JSON: %v\n%s", err, r.body)
	}
	return v
}

func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("response body is not a JSON object: %s", r.body)
	}
	return m
}

// jsonHeaders is the header set of a plain JSON request.
var jsonHeaders = []string{"Content-Type", "application/json"}

// do sends a request; hdr is a list of header name/value pairs. A body
// request with no Content-Type among hdr gets application/json.
func (s *server) do(t testing.TB, method, path, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if body != "" && req.Header.Get("Content-Type") == "" && !hasKey(hdr, "Content-Type") {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

func hasKey(hdr []string, k string) bool {
	for i := 0; i < len(hdr); i += 2 {
		if http.CanonicalHeaderKey(hdr[i]) == http.CanonicalHeaderKey(k) {
			return true
		}
	}
	return false
}

// mustStatus fails the test unless the response has the status.
func mustStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

// create POSTs an entity and insists on 201.
func (s *server) create(t testing.TB, body string, hdr ...string) {
	t.Helper()
	r := s.do(t, "POST", "/ngsi-ld/v1/entities", body, hdr...)
	mustStatus(t, r, http.StatusCreated)
}

// get GETs an entity and returns it decoded, insisting on 200.
func (s *server) get(t testing.TB, path string, hdr ...string) map[string]any {
	t.Helper()
	r := s.do(t, "GET", path, "", hdr...)
	mustStatus(t, r, http.StatusOK)
	return r.object(t)
}

const etsiErrors = "https://uri.etsi.org/ngsi-ld/errors/"

// checkProblem checks that r is a ProblemDetails answer with the status, the
// ETSI type (its last path segment) and a detail holding every one of
// details.
func checkProblem(t testing.TB, r response, status int, typ string, details ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("problem Content-Type %q", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, r.body)
	}
	if p.Type != etsiErrors+typ {
		t.Fatalf("problem type %q, want %q; body: %s", p.Type, etsiErrors+typ, r.body)
	}
	if p.Title == "" || p.Detail == "" {
		t.Fatalf("problem without title or detail: %s", r.body)
	}
	if p.Status != 0 && p.Status != status {
		t.Fatalf("problem status member %d, HTTP status %d", p.Status, status)
	}
	for _, d := range details {
		if !strings.Contains(p.Detail, d) {
			t.Fatalf("problem detail %q does not name %q", p.Detail, d)
		}
	}
}

// isProblem reports whether body is a ProblemDetails object with an ETSI type.
func isProblem(body []byte) bool {
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	return json.Unmarshal(body, &p) == nil && strings.HasPrefix(p.Type, etsiErrors) && p.Title != "" && p.Detail != ""
}

// canon re-encodes JSON with sorted keys, for comparisons.
func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// linkHeader is a Link header naming a JSON-LD context.
func linkHeader(u string) string {
	return "<" + u + `>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`
}

// attr returns member k of the entity, as an object.
func attr(t testing.TB, e map[string]any, k string) map[string]any {
	t.Helper()
	a, ok := e[k].(map[string]any)
	if !ok {
		t.Fatalf("attribute %s is %T (%v), want an object; entity %v", k, e[k], e[k], e)
	}
	return a
}
