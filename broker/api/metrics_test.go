package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// metricsRouter is a chi router shaped like the API (a subrouter under
// /ngsi-ld/v1), instrumented with m, behind the request logger's writer.
func metricsRouter(m *httpMetrics) http.Handler {
	r := chi.NewRouter()
	r.Use(m.instrument, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&statusWriter{ResponseWriter: w}, r)
		})
	})
	r.Route("/ngsi-ld/v1", func(r chi.Router) {
		r.Get("/entities/{id}", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"id":"urn:x:1","type":"Bench"}`))
		})
		r.Post("/entities", func(w http.ResponseWriter, r *http.Request) {
			err := &broker.Error{Kind: broker.ErrBadRequestData, Detail: "no"}
			noteProblem(w, err)
			w.WriteHeader(http.StatusBadRequest)
		})
		r.Delete("/entities/{id}", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})
	})
	return r
}

// TestHTTPMetrics checks the labels: route patterns (never paths),
// bounded methods, status codes, and the ProblemDetails type of errors.
func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := metricsRouter(m)
	for _, req := range []struct{ method, path string }{
		{"GET", "/ngsi-ld/v1/entities/urn:x:1"},
		{"GET", "/ngsi-ld/v1/entities/urn:x:2"},
		{"POST", "/ngsi-ld/v1/entities"},
		{"DELETE", "/ngsi-ld/v1/entities/urn:x:1"},
		{"BREW", "/ngsi-ld/v1/entities/urn:x:1"},
		{"GET", "/nowhere"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"/ngsi-ld/v1/entities/{id}", "GET", "200"}, 2},
		{[]string{"/ngsi-ld/v1/entities", "POST", "400"}, 1},
		{[]string{"/ngsi-ld/v1/entities/{id}", "DELETE", "204"}, 1},
		{[]string{unmatchedRoute, "other", "405"}, 1}, // chi refuses unknown methods before routing
		{[]string{unmatchedRoute, "GET", "404"}, 1},
	} {
		t.Run(strings.Join(c.labels, " "), func(t *testing.T) {
			if got := testutil.ToFloat64(m.requests.WithLabelValues(c.labels...)); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("/ngsi-ld/v1/entities", "POST", "BadRequestData")); got != 1 {
		t.Errorf("errors: %v", got)
	}
	if n := testutil.CollectAndCount(m.errors); n != 1 {
		t.Errorf("%d error series, want 1 (only ProblemDetails answers count)", n)
	}
	if n := testutil.CollectAndCount(m.duration); n != 5 {
		t.Errorf("%d duration series, want 5", n)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight after the requests: %v", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// TestHTTPMetricsRegisterTwice checks that a second set of metrics on the
// same registry is an error, not a panic.
func TestHTTPMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newHTTPMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if _, err := newHTTPMetrics(reg); !errors.As(err, &are) {
		t.Fatalf("second registration: %v", err)
	}
}

// BenchmarkInstrument measures what the metrics middleware adds to a
// request: compare "instrumented" with "bare" (the same router without it).
func BenchmarkInstrument(b *testing.B) {
	for _, bc := range []struct {
		name string
		m    func() *httpMetrics
	}{
		{"bare", func() *httpMetrics { return nil }},
		{"instrumented", func() *httpMetrics {
			m, err := newHTTPMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			return m
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := metricsRouter(bc.m())
			req := httptest.NewRequest("GET", "/ngsi-ld/v1/entities/urn:x:1", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				w.Body.Reset()
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkInstrumentAlone measures the middleware by itself: around a
// handler that does nothing, on a request already routed (as chi leaves
// it), so that the difference between the two is all the middleware's.
func BenchmarkInstrumentAlone(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	rc := chi.NewRouteContext()
	rc.RoutePatterns = []string{"/ngsi-ld/v1/*", "/entities/{id}"}
	req := httptest.NewRequest("GET", "/ngsi-ld/v1/entities/urn:x:1", nil)
	req = req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, rc))
	m, err := newHTTPMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", noop}, {"instrumented", m.instrument(noop)}} {
		b.Run(bc.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

// TestHTTPMetricsPanic checks that a handler panic is counted as a 500
// InternalError and leaves nothing in flight.
func TestHTTPMetricsPanic(t *testing.T) {
	m, err := newHTTPMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	r := chi.NewRouter()
	r.Use(m.instrument)
	r.Get("/boom", h.wrap(func(w http.ResponseWriter, r *http.Request) error { panic("boom") }))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 {
		t.Fatalf("status %d", w.Code)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("/boom", "GET", "InternalError")); got != 1 {
		t.Errorf("errors %v", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/boom", "GET", "500")); got != 1 {
		t.Errorf("requests %v", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v", got)
	}
}
