package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/fastjson"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// batchError is one entry of a BatchOperationResult's errors.
type batchError struct {
	EntityID string  `json:"entityId"`
	Error    Problem `json:"error"`
}

// batch serves POST /entityOperations/{create,upsert,update,merge,delete}.
// Every entity is parsed on its own, so one bad entity is reported with its
// id and reason while the others go on.
func (h *Handler) batch(w http.ResponseWriter, r *http.Request) error {
	var kind broker.BatchKind
	switch op := chi.URLParam(r, "op"); op {
	case "create":
		kind = broker.BatchCreate
	case "upsert":
		kind = broker.BatchUpsert
	case "update":
		kind = broker.BatchUpdate
	case "merge":
		kind = broker.BatchMerge
	case "delete":
		kind = broker.BatchDelete
	default:
		return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("no batch operation %q (create, upsert, update, merge, delete)", op)}
	}
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	ld, err := bodyType(r, false)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	link := jsonld.Core()
	if !ld {
		if link, err = h.linkContext(ctx, r); err != nil {
			return err
		}
	}
	data, release, err := h.readBodyPooled(w, r)
	defer release()
	if err != nil {
		return err
	}
	keyValues := isKeyValues(r)
	var (
		ents   []*broker.Entity
		failed []batchError
	)
	if kind == broker.BatchCreate || kind == broker.BatchUpsert {
		ents, failed, err = h.batchEntitiesFast(ctx, kind, data, ld, keyValues, link)
	}
	if ents == nil && failed == nil && err == nil {
		ents, failed, err = h.batchEntities(ctx, kind, data, ld, keyValues, link)
	}
	if err != nil {
		return err
	}
	var outs []broker.Outcome
	if len(ents) > 0 {
		outs, err = h.b.Batch(r.Context(), tenant, kind, ents, broker.BatchOptions{
			UpsertUpdate: hasOption(r, "update"),
			NoOverwrite:  hasOption(r, "noOverwrite"),
		})
		if err != nil {
			return err
		}
	}
	if kind == broker.BatchUpdate {
		// Attributes kept by noOverwrite make the entity a partial failure.
		for i, o := range outs {
			if o.Err == nil && len(o.NotUpdated) > 0 {
				attrs := make([]string, len(o.NotUpdated))
				for k, nu := range o.NotUpdated {
					attrs[k] = nu.Attr
				}
				outs[i].Err = &broker.Error{Kind: broker.ErrBadRequestData, Entity: o.ID,
					Detail: fmt.Sprintf("entity %s: not updated: %s: %s", o.ID, strings.Join(attrs, ", "), o.NotUpdated[0].Reason)}
			}
		}
	}
	okStatus := http.StatusNoContent
	var created []string
	for _, o := range outs {
		if o.Created && o.Err == nil {
			created = append(created, o.ID)
		}
	}
	if kind == broker.BatchCreate || (kind == broker.BatchUpsert && len(created) > 0) {
		okStatus = http.StatusCreated
	}
	return writeBatchResult(w, outs, okStatus, failed, created...)
}

// batchEntities reads the entities (or, for delete, the ids) of a batch
// body: those it can read, and the reasons for those it cannot. The error
// is for a body that is not a JSON array of at most MaxBatch elements.
func (h *Handler) batchEntities(ctx context.Context, kind broker.BatchKind, data []byte, ld, keyValues bool, link *jsonld.Context) ([]*broker.Entity, []batchError, error) {
	v, err := broker.DecodeJSON(data)
	if err != nil {
		return nil, nil, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: err.Error()}
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, nil, badParam("the body of a batch operation must be a JSON array")
	}
	if err := h.checkBatchSize(len(arr)); err != nil {
		return nil, nil, err
	}
	var failed []batchError
	ents := make([]*broker.Entity, 0, len(arr))
	for i, x := range arr {
		e, be := h.batchElement(ctx, kind, i, x, ld, keyValues, link)
		if be != nil {
			failed = append(failed, *be)
			continue
		}
		ents = append(ents, e)
	}
	return ents, failed, nil
}

// batchElement reads element i (decoded) of a batch body: the entity (for
// delete, an entity with only its id), or why it cannot be read.
func (h *Handler) batchElement(ctx context.Context, kind broker.BatchKind, i int, x any, ld, keyValues bool, link *jsonld.Context) (*broker.Entity, *batchError) {
	if kind == broker.BatchDelete {
		id, ok := x.(string)
		if !ok || !broker.ValidURI(id) {
			return nil, &batchError{EntityID: fmt.Sprint(x), Error: problemOf(badParam("element %d: %v is not an entity id (a URI)", i, x))}
		}
		return &broker.Entity{ID: id}, nil
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, &batchError{EntityID: "", Error: problemOf(badParam("element %d is not a JSON object", i))}
	}
	id, _ := m["id"].(string)
	c, err := h.entityContext(ctx, ld, link, m)
	if err != nil {
		return nil, &batchError{EntityID: id, Error: problemOf(err)}
	}
	partial := kind == broker.BatchUpdate || kind == broker.BatchMerge
	e, err := broker.ParseEntity(m, broker.ParseOptions{Names: names{c}, KeyValues: keyValues, AllowNull: kind == broker.BatchMerge, Fragment: partial})
	if err == nil && e.ID == "" {
		err = badParam("element %d has no id", i)
	}
	if err != nil {
		return nil, &batchError{EntityID: id, Error: problemOf(err)}
	}
	return e, nil
}

func (h *Handler) checkBatchSize(n int) error {
	if n == 0 {
		return badParam("the batch is empty")
	}
	if n > h.opts.MaxBatch {
		return badParam("the batch has %d entities, over the maximum of %d", n, h.opts.MaxBatch)
	}
	return nil
}

// batchEntitiesFast reads the entities of a create or upsert body whose
// elements have the common normalized shape straight from their JSON text
// (broker.ParseEntityBytes; with JSON-LD, once each entity's @context is
// resolved), each other element as batchEntities would. It returns nothing
// (three nils) when the body is to be read by batchEntities: a body that is
// not a well-formed array, and keyValues.
func (h *Handler) batchEntitiesFast(ctx context.Context, kind broker.BatchKind, data []byte, ld, keyValues bool, link *jsonld.Context) ([]*broker.Entity, []batchError, error) {
	if keyValues {
		return nil, nil, nil
	}
	elems, ok := fastjson.SplitArray(data)
	if !ok {
		return nil, nil, nil
	}
	if err := h.checkBatchSize(len(elems)); err != nil {
		return nil, nil, err
	}
	var failed []batchError
	ents := make([]*broker.Entity, 0, len(elems))
	for i, el := range elems {
		o, fast := broker.ParseOptions{Names: names{link}}, true
		if ld {
			// The entity's own @context, resolved as entityContext does;
			// without one, the general path explains what is missing.
			id, raw, has, ok := broker.EntityHead(el)
			fast = ok && has
			if fast {
				c, err := h.entityContext(ctx, ld, link, map[string]any{"@context": raw})
				if err != nil {
					failed = append(failed, batchError{EntityID: id, Error: problemOf(err)})
					continue
				}
				o = broker.ParseOptions{Names: names{c}, SkipContext: true}
			}
		}
		if fast {
			if e, ok := broker.ParseEntityBytes(el, o); ok {
				ents = append(ents, e)
				continue
			}
		}
		// Any other shape, or an error to explain: as batchEntities.
		v, err := broker.DecodeJSON(el)
		if err != nil {
			return nil, nil, nil // cannot happen: the array was checked
		}
		e, be := h.batchElement(ctx, kind, i, v, ld, false, link)
		if be != nil {
			failed = append(failed, *be)
			continue
		}
		ents = append(ents, e)
	}
	return ents, failed, nil
}

// validationHeader says, on a single write accepted under the warn policy,
// that the new state does not match its data model:
// "Piazza-Validation: warn; model=AirQualityObserved; violations=2".
func validationHeader(w http.ResponseWriter, out broker.Outcome) {
	if len(out.Warnings) > 0 {
		w.Header().Set("Piazza-Validation", fmt.Sprintf("warn; model=%s; violations=%d", out.Model, len(out.Warnings)))
	}
}

// writeBatchResult answers a batch: okStatus (with the created ids for 201)
// when every entity succeeded, 207 with a BatchOperationResult otherwise.
// Piazza-Unchanged-Count tells how many entities were already in the state
// asked for, so that nothing was written for them; Piazza-Validation-Warnings,
// present when not 0, how many were accepted under the warn policy although
// they do not match their data model.
func writeBatchResult(w http.ResponseWriter, outs []broker.Outcome, okStatus int, failed []batchError, created ...string) error {
	success := []string{}
	unchanged, warned := 0, 0
	for _, o := range outs {
		if o.Err != nil {
			failed = append(failed, batchError{EntityID: o.ID, Error: problemOf(o.Err)})
			continue
		}
		if o.Unchanged {
			unchanged++
		}
		if len(o.Warnings) > 0 {
			warned++
		}
		success = append(success, o.ID)
	}
	w.Header().Set("Piazza-Unchanged-Count", strconv.Itoa(unchanged))
	if warned > 0 {
		w.Header().Set("Piazza-Validation-Warnings", strconv.Itoa(warned))
	}
	if len(failed) > 0 {
		return writeJSON(w, http.StatusMultiStatus, map[string]any{"success": success, "errors": failed})
	}
	if okStatus == http.StatusCreated {
		if created == nil {
			created = []string{}
		}
		return writeJSON(w, http.StatusCreated, created)
	}
	w.WriteHeader(okStatus)
	return nil
}
