package api

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker/internal/promnames"
	"github.com/prometheus/client_golang/prometheus"
)

// The HTTP API's metrics (names agreed for every Piazza component):
//
//	piazza_http_requests_total{route,method,code}
//	piazza_http_request_errors_total{route,method,problem}
//	piazza_http_requests_in_flight
//	piazza_http_request_duration_seconds{route,method}
//
// route is the chi route pattern (/ngsi-ld/v1/entities/{id}), never the
// path, so that entity ids do not become series; "unmatched" when no route
// matched. method is one of the standard methods or "other". problem is the
// short name of the ProblemDetails type answered (BadRequestData), counted
// for every ProblemDetails response.

// durationBuckets cover the API's range: a GET by id answers in a few
// hundred microseconds, a 10,000-entity batch in seconds.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// unmatchedRoute is the route label of requests no route matched.
const unmatchedRoute = "unmatched"

// httpMetrics instruments the handler. A nil *httpMetrics does nothing. It
// is safe for concurrent use.
type httpMetrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	inFlight prometheus.Gauge
	duration *prometheus.HistogramVec

	// series caches the label lookups of the request path by what chi
	// leaves in the request (its route patterns), the method and the
	// code: one map lookup per request, without a lock. The set is small
	// (routes × methods × codes) and fixed once warm, so a new series
	// copies the map (under mu) and readers load the current one.
	mu     sync.Mutex
	series atomic.Pointer[map[seriesKey]*series]
}

// seriesKey holds chi's first and last route patterns (a request routed
// through more than two routers has its joined pattern in p0 and "\x00"
// in p1).
type seriesKey struct {
	p0, p1, method string
	code           int
}

type series struct {
	route    string
	requests prometheus.Counter
	duration prometheus.Observer
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "piazza_http_requests_total",
			Help: "HTTP requests answered by the NGSI-LD API, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "piazza_http_request_errors_total",
			Help: "HTTP requests answered with an NGSI-LD ProblemDetails, by route pattern, method and problem type (its short name, e.g. BadRequestData).",
		}, []string{"route", "method", "problem"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "piazza_http_requests_in_flight",
			Help: "HTTP requests being served by the NGSI-LD API.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "piazza_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request of the NGSI-LD API, by route pattern and method.",
			Buckets: durationBuckets,
		}, []string{"route", "method"}),
	}
	m.series.Store(&map[seriesKey]*series{})
	for _, c := range []prometheus.Collector{m.requests, m.errors, m.inFlight, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
	}
	return m, nil
}

// MetricNames lists the names of every metric the HTTP API exports.
func MetricNames() []string {
	r := promnames.NewRecorder()
	_, _ = newHTTPMetrics(r)
	return r.Names()
}

// instrument is the middleware that counts and times every request.
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		mw := responseState(w)
		next.ServeHTTP(mw, r)
		code := mw.status
		if code == 0 {
			code = http.StatusOK
		}
		s := m.get(chi.RouteContext(r.Context()), r.Method, code)
		s.requests.Inc()
		s.duration.Observe(time.Since(start).Seconds())
		if mw.problem != "" {
			m.errors.WithLabelValues(s.route, methodLabel(r.Method), mw.problem).Inc()
		}
	})
}

// get returns the series of a request, creating it the first time.
func (m *httpMetrics) get(rc *chi.Context, method string, code int) *series {
	// The key holds the method label: unknown methods share one entry.
	k := seriesKey{method: methodLabel(method), code: code}
	if rc != nil {
		switch n := len(rc.RoutePatterns); {
		case n > 2:
			k.p0, k.p1 = rc.RoutePattern(), "\x00"
		case n > 0:
			k.p0, k.p1 = rc.RoutePatterns[0], rc.RoutePatterns[n-1]
		}
	}
	if s := (*m.series.Load())[k]; s != nil {
		return s
	}
	route := unmatchedRoute
	if rc != nil && len(rc.RoutePatterns) > 0 {
		if p := rc.RoutePattern(); p != "" {
			route = p
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.series.Load()
	if s := cur[k]; s != nil {
		return s
	}
	s := &series{
		route:    route,
		requests: m.requests.WithLabelValues(route, k.method, strconv.Itoa(code)),
		duration: m.duration.WithLabelValues(route, k.method),
	}
	next := make(map[seriesKey]*series, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = s
	m.series.Store(&next)
	return s
}

// methodLabel bounds the method label: clients may send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
