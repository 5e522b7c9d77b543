package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestRequestIDOnEveryRequestLine checks the access log: one line per
// request with the request id the response carries (the client's when it
// sends a sane one), the route pattern and the status; and none at Info
// when the access log is off.
func TestRequestIDOnEveryRequestLine(t *testing.T) {
	var logs syncBuffer
	s := newServer(t, api.Options{AccessLog: true, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	cases := []struct {
		name, method, path, body, id string
		status                       int
		route                        string
		wantID                       func(sent, got string) bool
	}{
		{"client id kept", "POST", "/ngsi-ld/v1/entities", `{"id":"urn:x:1","type":"Bench"}`, "client-id-1", 201, "/ngsi-ld/v1/entities",
			func(sent, got string) bool { return got == sent }},
		{"id generated", "GET", "/ngsi-ld/v1/entities/urn:x:1", "", "", 200, "/ngsi-ld/v1/entities/{id}",
			func(_, got string) bool { return generatedID.MatchString(got) }},
		{"oversized client id replaced", "GET", "/ngsi-ld/v1/entities/urn:x:none", "", strings.Repeat("x", 65), 404, "/ngsi-ld/v1/entities/{id}",
			func(_, got string) bool { return generatedID.MatchString(got) }},
		{"unmatched path", "GET", "/nowhere", "", "client-id-2", 404, "",
			func(sent, got string) bool { return got == sent }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.id != "" {
				hdr = []string{"X-Request-Id", tc.id}
			}
			r := s.do(t, tc.method, tc.path, tc.body, hdr...)
			mustStatus(t, r, tc.status)
			got := r.header.Get("X-Request-Id")
			if !tc.wantID(tc.id, got) {
				t.Fatalf("response X-Request-Id %q for %q", got, tc.id)
			}
			var line map[string]any
			for _, l := range logs.lines(t) {
				if l["msg"] == "request" && l["request_id"] == got {
					line = l
				}
			}
			if line == nil {
				t.Fatalf("no request line with id %s in\n%s", got, logs.b.String())
			}
			if line["level"] != "INFO" || line["route"] != tc.route || line["status"] != float64(tc.status) ||
				line["method"] != tc.method || line["path"] != tc.path {
				t.Fatalf("request line %v", line)
			}
		})
	}

	t.Run("access log off", func(t *testing.T) {
		var quiet syncBuffer
		s := newServer(t, api.Options{Logger: slog.New(slog.NewJSONHandler(&quiet, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		mustStatus(t, s.do(t, "GET", "/ngsi-ld/v1/entities/urn:x:none", ""), 404)
		for _, l := range quiet.lines(t) {
			if l["msg"] == "request" {
				t.Fatalf("request logged at info with the access log off: %v", l)
			}
		}
	})
}
