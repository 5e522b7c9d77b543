package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte("ready\n"))
		case "/starting":
			http.Error(w, "not ready: NATS not connected", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	tests := []struct {
		name    string
		args    []string
		addr    string
		code    int
		wantErr string
	}{
		{name: "ready URL", args: []string{srv.URL + "/readyz"}, code: 0},
		{name: "503", args: []string{srv.URL + "/starting"}, code: 1, wantErr: "503"},
		{name: "404", args: []string{srv.URL + "/nope"}, code: 1, wantErr: "404"},
		{name: "from PIAZZA_HTTP_ADDR", addr: ":" + port, code: 0},
		{name: "nobody listening", args: []string{"http://127.0.0.1:1/readyz"}, code: 1, wantErr: "127.0.0.1:1"},
		{name: "random port", addr: "127.0.0.1:0", code: 2, wantErr: "fixed port"},
		{name: "no port", addr: "localhost", code: 2, wantErr: "PIAZZA_HTTP_ADDR"},
		{name: "two args", args: []string{"a", "b"}, code: 2, wantErr: "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			getenv := func(k string) string {
				if k == "PIAZZA_HTTP_ADDR" {
					return tc.addr
				}
				return ""
			}
			if code := run(tc.args, getenv, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

func TestReadyURL(t *testing.T) {
	for addr, want := range map[string]string{
		"":             "http://127.0.0.1:1026/readyz",
		":1026":        "http://127.0.0.1:1026/readyz",
		"0.0.0.0:8080": "http://127.0.0.1:8080/readyz",
		"[::]:9000":    "http://127.0.0.1:9000/readyz",
	} {
		if got, err := readyURL(addr); err != nil || got != want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
