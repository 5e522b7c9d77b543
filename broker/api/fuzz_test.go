package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// FuzzAPIEntityBody POSTs arbitrary bytes to /ngsi-ld/v1/entities through
// the real handler on a real broker. Whatever the body, the answer is never
// a 500; every 4xx (and the 503 of an unavailable @context) is an NGSI-LD
// ProblemDetails; and a 201 means the entity can be read back at once.
func FuzzAPIEntityBody(f *testing.F) {
	var seeds []string
	for _, g := range []string{"../testdata/entities/*.json", "../testdata/sdm/*.json"} {
		files, _ := filepath.Glob(g)
		seeds = append(seeds, files...)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Input json.RawMessage `json:"input"`
		}
		if json.Unmarshal(data, &fx) == nil && len(fx.Input) > 0 {
			data = fx.Input
		}
		f.Add(data, false)
	}
	f.Add([]byte(aq1), false)
	f.Add([]byte(building), false)
	f.Add([]byte(buildingConcise), true)
	f.Add([]byte(`{"id":"urn:a:b","type":"T","@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"}`), true)
	f.Add([]byte(`{"id":"urn:a:b","type":"T","@context":{"T":"https://x.org/T","p":{"@id":"https://x.org/p","@type":"@vocab"}},"p":{"vocab":"T"}}`), true)
	f.Add([]byte(`{"id":"urn:a:b","type":"T","@context":["http://127.0.0.1:1/ctx.jsonld"]}`), true)
	f.Add([]byte("{\"id\":\"urn:a:b\",\n\"type\":}"), false)
	f.Add([]byte{}, false)

	// A context may map a term to a name the broker cannot read back (found by this fuzzer).
	f.Add([]byte(`{"id":"urn:a:b","type":"T","@context":{"p":"https://x.org p"},"p":1}`), true)

	// Offline: a remote @context fails at once (503) instead of waiting on the
	// network. Errors (panics, 5xx) are logged to stderr.
	s := newServer(f, api.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), MaxBodyBytes: 1 << 16, Contexts: jsonld.NewLoader(jsonld.LoaderOptions{Offline: true})})
	// A request that takes this long is a hang: fail with its body.
	client := &http.Client{Timeout: 15 * time.Second}
	f.Fuzz(func(t *testing.T, body []byte, ld bool) {
		ct := "application/json"
		if ld {
			ct = "application/ld+json"
		}
		req, err := http.NewRequest("POST", s.url+"/ngsi-ld/v1/entities", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("body %q (ld %v): %v", body, ld, err)
		}
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case res.StatusCode == http.StatusCreated:
			loc := res.Header.Get("Location")
			if !strings.HasPrefix(loc, "/ngsi-ld/v1/entities/") {
				t.Fatalf("201 with Location %q", loc)
			}
			r := s.do(t, "GET", loc, "")
			if r.status != http.StatusOK || !json.Valid(r.body) {
				t.Fatalf("created at %s but GET answers %s", loc, r)
			}
			// Keep the store small and ids free for the next inputs.
			if r := s.do(t, "DELETE", loc, ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE %s: %s", loc, r)
			}
		case res.StatusCode >= 500 && !(res.StatusCode == http.StatusServiceUnavailable && bytes.Contains(data, []byte("LdContextNotAvailable"))):
			t.Fatalf("status %d for body %q: %s", res.StatusCode, body, data)
		case res.StatusCode >= 400:
			if !isProblem(data) {
				t.Fatalf("status %d without ProblemDetails for body %q: %s", res.StatusCode, body, data)
			}
		default:
			t.Fatalf("status %d for body %q: %s", res.StatusCode, body, data)
		}
	})
}

// FuzzAPIPatch sends arbitrary fragments to the partial-update endpoints
// (merge, append, update, attribute patch) of a rich entity. Whatever the
// fragment, the answer is never a 500, every 4xx is ProblemDetails, and the
// entity stays readable in every form afterwards: no write may leave a state
// the broker cannot read back.
func FuzzAPIPatch(f *testing.F) {
	for _, s := range []string{
		`{"temperature":{"value":22}}`,
		`{"temperature":{"type":"Relationship","object":"urn:a:b"}}`,
		`{"temperature":{"accuracy":null}}`,
		`{"temperature":"urn:ngsi-ld:null"}`,
		`{"speed":[{"value":3,"datasetId":"urn:ngsi-ld:Dataset:b"},{"value":null}]}`,
		`{"name":{"languageMap":{"it":"urn:ngsi-ld:null"}}}`,
		`{"tags":{"valueList":["urn:ngsi-ld:null"]}}`,
		`{"location":{"value":{"type":"Point","coordinates":[1,2]}}}`,
		`{"type":"Other","scope":"/a/b","new":{"type":"JsonProperty","json":{"x":null}}}`,
		`{"value":5,"unitCode":"CEL"}`,
		`{"observedAt":"2024-01-01T00:00:00Z"}`,
	} {
		for op := range uint8(4) {
			f.Add([]byte(s), op)
		}
	}
	s := newServer(f, api.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		MaxBodyBytes: 1 << 16, Contexts: jsonld.NewLoader(jsonld.LoaderOptions{Offline: true})})
	const path = "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:b1"
	reset := `[` + building + `]`
	f.Fuzz(func(t *testing.T, body []byte, op uint8) {
		if r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", reset); r.status != 201 && r.status != 204 {
			t.Fatalf("reset: %s", r)
		}
		var method, p string
		switch op % 4 {
		case 0:
			method, p = "PATCH", path
		case 1:
			method, p = "POST", path+"/attrs"
		case 2:
			method, p = "PATCH", path+"/attrs"
		case 3:
			method, p = "PATCH", path+"/attrs/temperature"
		}
		r := s.do(t, method, p, string(body), "Content-Type", "application/json")
		switch {
		case r.status >= 500:
			t.Fatalf("%s %s %q: %s", method, p, body, r)
		case r.status >= 400 && !isProblem(r.body):
			t.Fatalf("%s %s %q: %d without ProblemDetails: %s", method, p, body, r.status, r.body)
		}
		for _, q := range []string{"", "?options=concise", "?options=keyValues,sysAttrs"} {
			g := s.do(t, "GET", path+q, "")
			if g.status != 200 || !json.Valid(g.body) {
				t.Fatalf("after %s %s %q (%d): GET%s answers %s", method, p, body, r.status, q, g)
			}
			if q == "?options=keyValues,sysAttrs" {
				continue
			}
			// What the broker answers is an entity it accepts as input,
			// and it reads back as the same entity.
			copyBody := strings.Replace(string(g.body), `"urn:ngsi-ld:Building:b1"`, `"urn:ngsi-ld:Building:copy"`, 1)
			if c := s.do(t, "POST", "/ngsi-ld/v1/entities", copyBody); c.status != 201 {
				t.Fatalf("after %s %s %q: GET%s gives %s, which is refused as input: %s", method, p, body, q, g.body, c)
			}
			back := s.do(t, "GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:copy"+q, "")
			if want := strings.Replace(string(g.body), `"urn:ngsi-ld:Building:b1"`, `"urn:ngsi-ld:Building:copy"`, 1); string(back.body) != want {
				t.Fatalf("after %s %s %q: GET%s\n%s\nread back as\n%s", method, p, body, q, want, back.body)
			}
			if d := s.do(t, "DELETE", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:copy", ""); d.status != 204 {
				t.Fatalf("delete copy: %s", d)
			}
		}
	})
}
