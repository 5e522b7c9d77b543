package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/schemas"
)

// The API extension under /ngsi-ld/ex/v1: Piazza's own resources, outside
// the NGSI-LD specification, answered with ProblemDetails on error like the
// rest of the API.
//
//	GET    /ngsi-ld/ex/v1/schemas                    the data models (name, typeIRI, source, id, title)
//	GET    /ngsi-ld/ex/v1/schemas/{name}             one model's JSON Schema (application/schema+json)
//	PUT    /ngsi-ld/ex/v1/schemas/{name}[?typeIRI=]  add (201) or replace (204) a model; 400 with the reason if it does not compile
//	DELETE /ngsi-ld/ex/v1/schemas/{name}             remove a model (204, 404)
//	GET    /ngsi-ld/ex/v1/quarantine                 the tenant's quarantined writes (NGSILD-Tenant), without their entities
//	GET    /ngsi-ld/ex/v1/quarantine/{seq}           one entry, with the entity that was not committed
//	POST   /ngsi-ld/ex/v1/quarantine/{seq}/replay    validate and commit it again (204; 400 with the violations if still invalid)
//	DELETE /ngsi-ld/ex/v1/quarantine/{seq}           abandon it (204, 404)
//
// Models put through the API live in this process's registry only: other
// replicas do not see them, and a restart forgets them.
const exRoot = "/ngsi-ld/ex/v1"

// mediaSchema is the media type of a JSON Schema document.
const mediaSchema = "application/schema+json"

func (h *Handler) exRoutes(r chi.Router) {
	r.Get(exRoot+"/schemas", h.wrap(h.listSchemas))
	r.Get(exRoot+"/schemas/{name}", h.wrap(h.getSchema))
	r.Put(exRoot+"/schemas/{name}", h.wrap(h.putSchema))
	r.Delete(exRoot+"/schemas/{name}", h.wrap(h.deleteSchema))
	r.Get(exRoot+"/quarantine", h.wrap(h.listQuarantine))
	r.Get(exRoot+"/quarantine/{seq}", h.wrap(h.getQuarantine))
	r.Delete(exRoot+"/quarantine/{seq}", h.wrap(h.dropQuarantine))
	r.Post(exRoot+"/quarantine/{seq}/replay", h.wrap(h.replayQuarantine))
}

// registry returns the data model registry, or an error if the handler was
// built without one.
func (h *Handler) registry() (*schemas.Registry, error) {
	if h.opts.Schemas == nil {
		return nil, &broker.Error{Kind: broker.ErrOperationNotSupported, Detail: "this server has no data model registry"}
	}
	return h.opts.Schemas, nil
}

// schemaError turns a registry error into an error of the problem table:
// the registry's own text is the detail, since it says what to fix.
func schemaError(err error) error {
	kind := broker.ErrBadRequestData
	switch {
	case errors.Is(err, broker.ErrNotConnected), errors.Is(err, broker.ErrUnavailable), errors.Is(err, broker.ErrOperationNotSupported), errors.Is(err, context.Canceled):
		return err // not the schema's fault
	case errors.Is(err, schemas.ErrModelNotFound):
		kind = broker.ErrNotFound
	case errors.Is(err, schemas.ErrConflict):
		kind = broker.ErrAlreadyExists
	case errors.Is(err, schemas.ErrSchemaTooLarge):
		kind = errBodyTooLarge
	}
	return &broker.Error{Kind: kind, Detail: err.Error(), Cause: err}
}

// modelName reads the {name} path parameter.
func modelName(r *http.Request) (string, error) {
	name, err := pathParam(r, "name")
	if err != nil {
		return "", badParam("model name %q is not valid", chi.URLParam(r, "name"))
	}
	return name, nil
}

func (h *Handler) listSchemas(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.registry()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reg.List())
}

func (h *Handler) getSchema(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.registry()
	if err != nil {
		return err
	}
	name, err := modelName(r)
	if err != nil {
		return err
	}
	m, ok := reg.Get(name)
	if !ok {
		return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("no data model %q", name)}
	}
	w.Header().Set("Content-Type", mediaSchema)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m.Schema())
	return nil
}

// putSchema adds or replaces a model. The body is the JSON Schema; the
// model's type IRI is the typeIRI parameter, or else the registry's rules
// (the schema's x-ngsi-ld-type, a built-in model's IRI, the default
// vocabulary). A new model answers 201 with its listing entry.
func (h *Handler) putSchema(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.registry()
	if err != nil {
		return err
	}
	name, err := modelName(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != mediaJSON && mt != mediaSchema) {
			return &broker.Error{Kind: errUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q: a schema is sent as %s or %s", ct, mediaSchema, mediaJSON)}
		}
	}
	data, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	var m *schemas.Model
	var existed bool
	if reg == h.b.SchemaRegistry() {
		// Stored in NATS: every replica gets it, and it survives restarts.
		m, existed, err = h.b.PutSchema(r.Context(), name, queryParams(r).Get("typeIRI"), data)
	} else {
		_, existed = reg.Get(name)
		m, err = reg.Put(name, queryParams(r).Get("typeIRI"), data)
	}
	if err != nil {
		return schemaError(err)
	}
	h.log.Info("data model put", "request_id", RequestID(r.Context()), "model", m.Name, "type", m.TypeIRI, "replaced", existed)
	if existed {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.Header().Set("Location", exRoot+"/schemas/"+url.PathEscape(m.Name))
	return writeJSON(w, http.StatusCreated, m)
}

func (h *Handler) deleteSchema(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.registry()
	if err != nil {
		return err
	}
	name, err := modelName(r)
	if err != nil {
		return err
	}
	if reg == h.b.SchemaRegistry() {
		err = h.b.DeleteSchema(r.Context(), name)
	} else {
		err = reg.Delete(name)
	}
	if err != nil {
		return schemaError(err)
	}
	h.log.Info("data model deleted", "request_id", RequestID(r.Context()), "model", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// quarantineListing is a quarantine entry without its entity: the Entity
// field shadows the embedded one, so that it is left out of the listing.
type quarantineListing struct {
	broker.QuarantineEntry
	Entity json.RawMessage `json:"entity,omitempty"`
}

func (h *Handler) listQuarantine(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	entries, err := h.b.Quarantine(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := make([]quarantineListing, len(entries))
	for i, e := range entries {
		out[i].QuarantineEntry = e
	}
	w.Header().Set("NGSILD-Results-Count", strconv.Itoa(len(out)))
	return writeJSON(w, http.StatusOK, out)
}

// quarantineSeq reads the tenant and the {seq} path parameter.
func quarantineSeq(r *http.Request) (string, uint64, error) {
	tenant, err := tenantOf(r)
	if err != nil {
		return "", 0, err
	}
	s := chi.URLParam(r, "seq")
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return "", 0, badParam("quarantine entry %q is not a sequence number (a positive integer)", s)
	}
	return tenant, seq, nil
}

func (h *Handler) getQuarantine(w http.ResponseWriter, r *http.Request) error {
	tenant, seq, err := quarantineSeq(r)
	if err != nil {
		return err
	}
	e, err := h.b.QuarantineEntry(r.Context(), tenant, seq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

// replayQuarantine validates a quarantined state again and commits it (an
// upsert). If it still does not match its model, the answer lists the
// violations, and the write stays in quarantine (under the quarantine
// policy, as a new entry named by the answer's "quarantine" member).
func (h *Handler) replayQuarantine(w http.ResponseWriter, r *http.Request) error {
	tenant, seq, err := quarantineSeq(r)
	if err != nil {
		return err
	}
	out, err := h.b.ReplayQuarantine(r.Context(), tenant, seq)
	if err != nil {
		return err
	}
	h.log.Info("quarantine entry replayed", "request_id", RequestID(r.Context()), "tenant", tenant, "entry", seq, "id", out.ID)
	validationHeader(w, out)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) dropQuarantine(w http.ResponseWriter, r *http.Request) error {
	tenant, seq, err := quarantineSeq(r)
	if err != nil {
		return err
	}
	if err := h.b.DropQuarantine(r.Context(), tenant, seq); err != nil {
		return err
	}
	h.log.Info("quarantine entry dropped", "request_id", RequestID(r.Context()), "tenant", tenant, "entry", seq)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
