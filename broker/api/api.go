// Package api is the NGSI-LD HTTP API of Piazza (ETSI GS CIM 009 V1.9.1,
// API root /ngsi-ld/v1): entities, attributes, batch operations, purge, and
// the probes real clients send. It is a thin layer: it negotiates media
// types, resolves @context, parses parameters and bodies, calls the broker,
// and writes NGSI-LD representations or ProblemDetails.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the HTTP API.
type Options struct {
	// MaxBodyBytes caps request bodies (413 past it). Default 8 MiB.
	MaxBodyBytes int64
	// MaxBatch caps the entities of one batch operation. Default 10,000.
	MaxBatch int
	// Contexts resolves @context values; nil builds a loader with defaults.
	Contexts *jsonld.Loader
	// Version is reported by the version probes.
	Version string
	Logger  *slog.Logger
	// Ready reports readiness for /readyz (nil: the broker's).
	Ready func() error
	// AccessLog logs every request at Info (otherwise at Debug).
	AccessLog bool
	// Schemas is the data model registry that /ngsi-ld/ex/v1/schemas lists
	// and changes (the broker's validator's, so that a change applies to
	// the next write); nil answers those requests 422.
	Schemas *schemas.Registry
	// Subscriptions keeps the NGSI-LD subscriptions (nil: the broker's,
	// built at New).
	Subscriptions *broker.SubscriptionStore
	// NotificationHosts, if not empty, are the only hosts subscriptions may
	// send notifications to (see broker.HostAllowed).
	NotificationHosts []string
	// Metrics registers the HTTP metrics (metrics.go); nil exports none.
	Metrics prometheus.Registerer
}

// Handler serves the NGSI-LD API over a broker. It is safe for concurrent use.
type Handler struct {
	b       *broker.Broker
	opts    Options
	log     *slog.Logger
	ctxs    *jsonld.Loader
	router  chi.Router
	metrics *httpMetrics // nil: no metrics
}

// New builds the API handler.
func New(b *broker.Broker, o Options) *Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Contexts == nil {
		o.Contexts = jsonld.NewLoader(jsonld.LoaderOptions{Logger: o.Logger})
	}
	if o.Ready == nil {
		o.Ready = b.Ready
	}
	if o.Subscriptions == nil {
		o.Subscriptions = broker.NewSubscriptionStore(b, broker.SubscriptionStoreOptions{Logger: o.Logger})
	}
	h := &Handler{b: b, opts: o, log: o.Logger.With("component", "api"), ctxs: o.Contexts}
	var err error
	if h.metrics, err = newHTTPMetrics(o.Metrics); err != nil {
		h.log.Error("HTTP metrics disabled", "err", err)
	}
	h.router = h.routes()
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

// handlerFunc is a handler that returns its error; wrap turns it into ProblemDetails.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (h *Handler) wrap(f handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error("handler panic", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				err := fmt.Errorf("%w: unexpected failure", broker.ErrInternal)
				noteProblem(w, err)
				h.writeProblem(w, r, err)
			}
		}()
		if t := tenantHeader(r); t != "" {
			w.Header()[tenantKey] = []string{t}
		}
		if err := f(w, r); err != nil {
			noteProblem(w, err)
			h.writeProblem(w, r, err)
		}
	}
}

func (h *Handler) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(h.metrics.instrument, h.requestLog, stripSlash, middleware.GetHead)
	r.NotFound(h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("no resource at %s", r.URL.Path)}
	}))
	r.MethodNotAllowed(h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return &broker.Error{Kind: errMethodNotAllowed, Detail: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)}
	}))
	r.Get("/version", h.wrap(h.version))
	r.Get("/ngsi-ld/ex/v1/version", h.wrap(h.version))
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := h.opts.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	r.Route("/ngsi-ld/v1", func(r chi.Router) {
		r.Post("/entities", h.wrap(h.createEntity))
		r.Get("/entities", h.wrap(h.queryEntities))
		r.Delete("/entities", h.wrap(h.purgeEntities))
		missingID := h.wrap(func(w http.ResponseWriter, r *http.Request) error {
			return badParam("%s needs an entity id: /ngsi-ld/v1/entities/{id}", r.Method)
		})
		r.Patch("/entities", missingID)
		r.Put("/entities", missingID)
		r.Get("/entities/{id}", h.wrap(h.getEntity))
		r.Delete("/entities/{id}", h.wrap(h.deleteEntity))
		r.Patch("/entities/{id}", h.wrap(h.mergeEntity))
		r.Put("/entities/{id}", h.wrap(h.replaceEntity))
		r.Post("/entities/{id}/attrs", h.wrap(h.appendAttrs))
		r.Patch("/entities/{id}/attrs", h.wrap(h.updateAttrs))
		r.Patch("/entities/{id}/attrs/{attr}", h.wrap(h.patchAttr))
		r.Put("/entities/{id}/attrs/{attr}", h.wrap(h.replaceAttr))
		r.Delete("/entities/{id}/attrs/{attr}", h.wrap(h.deleteAttr))
		r.Post("/entityOperations/query", h.wrap(h.queryPost))
		r.Post("/entityOperations/{op}", h.wrap(h.batch))
		r.Get("/types", h.wrap(h.listTypes))
		r.Get("/types/{type}", h.wrap(h.getType))
		r.Get("/attributes", h.wrap(h.listAttributes))
		r.Get("/attributes/{attr}", h.wrap(h.getAttribute))
		r.Delete("/temporal/entities/{id}", h.wrap(h.deleteHistory))
		h.subscriptionRoutes(r)
	})
	h.exRoutes(r)
	h.exSubscriptionRoutes(r)
	return r
}

// stripSlash lets collection paths end in a slash, as many clients send them.
func stripSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r.URL.Path = strings.TrimRight(p, "/")
			if r.URL.RawPath != "" {
				r.URL.RawPath = strings.TrimRight(r.URL.RawPath, "/")
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) version(w http.ResponseWriter, r *http.Request) error {
	v := h.opts.Version
	if v == "" {
		v = "dev"
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"name": "piazza", "version": v, "ngsild": "1.9.1",
		"description": "Piazza, an NGSI-LD broker for cities on a NATS JetStream log",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// tenantKey is NGSILD-Tenant in the canonical form net/http keeps header
// names in: Header.Get would make that form anew, two allocations a request.
const tenantKey = "Ngsild-Tenant"

// tenantHeader is the request's NGSILD-Tenant header ("" when absent).
func tenantHeader(r *http.Request) string {
	if v := r.Header[tenantKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// tenantOf reads the NGSILD-Tenant header ("" is the default tenant).
func tenantOf(r *http.Request) (string, error) {
	t := tenantHeader(r)
	if !broker.ValidTenant(t) {
		return "", &broker.Error{Kind: broker.ErrBadRequestData, Detail: "NGSILD-Tenant must be at most 64 characters without spaces or control characters"}
	}
	return t, nil
}

// readBody reads a request body within the size limit.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return h.readBodyInto(w, r, nil)
}

// readBodyPooled is readBody into a pooled buffer, for bodies of which the
// handler keeps nothing once parsed (DecodeJSON and ParseEntityBytes copy
// what they keep): release gives the buffer back, after the last use of data.
func (h *Handler) readBodyPooled(w http.ResponseWriter, r *http.Request) (data []byte, release func(), err error) {
	buf := bodyBufs.Get().(*[]byte)
	data, err = h.readBodyInto(w, r, (*buf)[:0])
	release = func() {
		if cap(data) > cap(*buf) {
			*buf = data[:0]
		}
		if cap(*buf) <= maxPooledBody {
			bodyBufs.Put(buf)
		}
	}
	return data, release, err
}

// bodyBufs are the buffers of readBodyPooled; one that grew past
// maxPooledBody is left to the garbage collector.
var bodyBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 16 << 20

// readBodyInto reads a request body within the size limit, into buf when
// it is large enough.
func (h *Handler) readBodyInto(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	if r.ContentLength > h.opts.MaxBodyBytes {
		return nil, &broker.Error{Kind: errBodyTooLarge, Detail: fmt.Sprintf("the body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.opts.MaxBodyBytes)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	// Read into a buffer of the announced size: a 1 MB batch is not copied
	// a dozen times while it grows.
	if size := int(max(512, min(r.ContentLength+1, h.opts.MaxBodyBytes+1))); cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	b := bytes.NewBuffer(buf[:0])
	_, err := b.ReadFrom(r.Body)
	data := b.Bytes()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &broker.Error{Kind: errBodyTooLarge, Detail: fmt.Sprintf("the body exceeds the limit of %d bytes", h.opts.MaxBodyBytes)}
	}
	if err != nil {
		return nil, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: "reading the body: " + err.Error()}
	}
	return data, nil
}

// requestContext bounds how long resolving a remote @context may take.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}
