package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestContextsOffline checks that an air-gapped node answers 503
// LdContextNotAvailable for an unknown @context at once, without trying the
// network, and still resolves built-in contexts (Smart Data Models).
func TestContextsOffline(t *testing.T) {
	n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(), ContextsOffline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	post := func(link string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/ngsi-ld/v1/entities", strings.NewReader(`{"id":"urn:x:1","type":"Bench"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Link", "<"+link+`>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("answer took %v: the node tried the network", d)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := post("http://context.example.invalid/ctx.jsonld"); code != 503 || !strings.Contains(body, "LdContextNotAvailable") {
		t.Fatalf("unknown context offline: %d %s", code, body)
	}
	if code, body := post("https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"); code != 201 {
		t.Fatalf("built-in Smart Data Models context offline: %d %s", code, body)
	}
}
