package api

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the id of the request being served ("" outside one).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// statusWriter remembers what the middleware report of a response: its
// status, its size and the ProblemDetails type it carried (noteProblem).
// The metrics and the request log share one per request: the outer of the
// two makes it, the inner one finds it.
type statusWriter struct {
	http.ResponseWriter
	status  int
	bytes   int
	problem string
	// idValue holds the X-Request-Id header value, so that setting it
	// allocates no slice.
	idValue [1]string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// responseState returns the statusWriter w is, or a new one around w.
func responseState(w http.ResponseWriter) *statusWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw
	}
	return &statusWriter{ResponseWriter: w}
}

// noteProblem records the ProblemDetails type of err on the response for
// the metrics middleware, on each statusWriter that w wraps.
func noteProblem(w http.ResponseWriter, err error) {
	problem := ""
	for {
		switch x := w.(type) {
		case *statusWriter:
			if problem == "" {
				t := problemOf(err).Type
				problem = t[strings.LastIndexByte(t, '/')+1:]
			}
			x.problem = problem
			w = x.ResponseWriter
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// newRequestID returns 16 random hex digits. The id names a request in
// logs; it is no secret, so the runtime's generator (seeded by the system,
// a few nanoseconds) serves rather than the system's.
func newRequestID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	var x [16]byte
	hex.Encode(x[:], b[:])
	return string(x[:])
}

// requestLog gives every request an id (the client's X-Request-Id if it sent
// a sane one), echoes it, and logs one line per request: at Info with the
// access log on, at Debug otherwise, and always at Warn for 5xx answers.
func (h *Handler) requestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		sw := responseState(w)
		sw.idValue[0] = id
		w.Header()["X-Request-Id"] = sw.idValue[:]
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		next.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if h.opts.AccessLog {
			level = slog.LevelInfo
		}
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		if !h.log.Enabled(r.Context(), level) {
			return
		}
		route := chi.RouteContext(r.Context())
		pattern := ""
		if route != nil {
			pattern = route.RoutePattern()
		}
		h.log.Log(r.Context(), level, "request",
			"request_id", id, "method", r.Method, "path", r.URL.Path, "route", pattern,
			"status", sw.status, "bytes", sw.bytes, "duration", time.Since(start),
			"tenant", tenantHeader(r), "remote", r.RemoteAddr)
	})
}
