package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/schemas"
)

// Outcome is what a write did to one entity.
type Outcome struct {
	ID string
	// Created is true when the write created the entity.
	Created bool
	// Unchanged is true when the new state equalled the stored one, so
	// nothing was written or published.
	Unchanged bool
	// NotUpdated lists the attributes the operation left alone.
	NotUpdated []NotUpdated
	// Seq is the stream sequence that committed the write (0 if none).
	Seq uint64
	// Warnings are data-model violations accepted under the warn policy.
	Warnings []schemas.Violation
	// Model names the data model of Warnings.
	Model string
	Err   error
}

// stepFunc computes the next state of an entity from its current one (nil
// if it does not exist; the function owns it). It returns the next state and
// the operation, or OpDelete with a nil state, or an error.
type stepFunc func(cur *Entity, ts time.Time) (next *Entity, op string, nu []NotUpdated, err error)

// job is one entity's write within a request.
type job struct {
	id   string
	step stepFunc
	out  Outcome
	// set while in flight
	future jetstream.PubAckFuture
	retry  bool
	// quarantine holds a state the quarantine policy keeps aside.
	quarantine *quarantined
	// del marks a deletion of the whole entity.
	del bool
	// next is the state prepare built; handed is its handoff entry.
	next   *Entity
	handed *handoffEntry
	// kind is the operation asked for (metrics); op the one the step chose.
	kind, op string
	// keepsCur says that step does not modify the state it is given, so
	// prepare hands it the shared state instead of a clone.
	keepsCur bool
}

func (b *Broker) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.WriteTimeout)
}

// current returns the read model's state of id, shared: the caller must not
// modify it (prepare hands the step a clone, unless the step only reads it).
func (t *tenant) current(id string) (*Entity, string, uint64, error) {
	r := t.rm.get(id)
	if r == nil {
		return nil, "", 0, nil
	}
	e, err := t.rm.shared(r)
	if err != nil {
		return nil, "", 0, err
	}
	return e, r.subjType, r.seq, nil
}

// prepare computes a job's message from a known state. It returns nil when
// there is nothing to write (an error, or no change).
func (j *job) prepare(t *tenant, cur *Entity, subjType string, seq uint64, v *Validator) *nats.Msg {
	ts := now()
	existed := cur != nil
	// cur may be shared with readers: the step works on a clone of it,
	// unless it only reads it.
	before := cur
	if existed && !j.keepsCur {
		cur = cur.Clone()
	}
	next, op, nu, err := j.step(cur, ts)
	j.out.NotUpdated, j.op = nu, op
	if err != nil {
		j.out.Err = err
		return nil
	}
	if op == OpDelete {
		if !existed {
			j.out.Err = &Error{Kind: ErrNotFound, Detail: fmt.Sprintf("entity %s not found", j.id), Entity: j.id}
			return nil
		}
		return newMessage(t.name, subjType, before, OpDelete, tombstone(before, formatTime(ts)), seq, false)
	}
	if existed && sameContent(before, next) {
		j.out.Unchanged = true
		return nil
	}
	if v != nil {
		vd := v.check(t.name, next)
		if vd.err != nil {
			j.out.Err = vd.err
			return nil
		}
		switch vd.policy {
		case PolicyEnforce:
			j.out.Err = &Error{Kind: ErrBadRequestData, Entity: j.id, Detail: describeViolations(j.id, vd.model, vd.violations), Violations: vd.violations}
			return nil
		case PolicyQuarantine:
			j.quarantine = &quarantined{entity: next, op: op, model: vd.model, violations: vd.violations}
			return nil
		case PolicyWarn:
			j.out.Warnings, j.out.Model = vd.violations, vd.model
		}
	}
	if !existed {
		subjType = next.Types[0]
	}
	j.out.Created = !existed
	j.next = next
	return newMessage(t.name, subjType, next, op, encodeStored(next), seq, !existed)
}

// run commits jobs: first all at once from the read model's state
// (asynchronous publishes), then any that lost a race one by one on the
// stream's fresh state. Jobs on the same id run in request order. It waits
// until the read model has applied every committed write.
func (b *Broker) run(reqCtx context.Context, t *tenant, jobs []*job) {
	defer b.m.wrote(jobs)
	// Each step below (waiting for room, acknowledgements, the read model)
	// has the write timeout of its own, counted from when it starts, so
	// that a write queued behind a burst is not failed for the queue.
	ctx, cancel := reqCtx, context.CancelFunc(func() {}) // each wave sets its own
	defer func() { cancel() }()
	var maxSeq uint64
	remaining := jobs
	for len(remaining) > 0 {
		// One wave holds the first job of each id still to run.
		seen := make(map[string]bool, len(remaining))
		var wave, later []*job
		for _, j := range remaining {
			if seen[j.id] {
				later = append(later, j)
				continue
			}
			seen[j.id] = true
			wave = append(wave, j)
		}
		for start := 0; start < len(wave); start += maxInFlight {
			chunk := wave[start:min(start+maxInFlight, len(wave))]
			b.commit(reqCtx, t, chunk)
		}
		cancel()
		ctx, cancel = b.writeContext(reqCtx)
		for _, j := range wave {
			if j.retry {
				j.retry = false
				j.out = Outcome{}
				b.retry(ctx, t, j)
			}
			if j.out.Seq > maxSeq {
				maxSeq = j.out.Seq
			}
		}
		if len(later) > 0 && maxSeq > 0 {
			// The next wave reads the read model: let it see this wave.
			if err := t.rm.waitApplied(ctx, maxSeq); err != nil {
				for _, j := range later {
					j.out.Err = fmt.Errorf("%w: read model did not catch up: %v", ErrInternal, err)
				}
				return
			}
		}
		remaining = later
	}
	if maxSeq > 0 {
		if err := t.rm.waitApplied(ctx, maxSeq); err != nil {
			b.log.Warn("read model behind own write", "tenant", t.name, "seq", maxSeq, "err", err)
		}
	}
	// Entries the read model did not take (failed or lost writes) go.
	for _, j := range jobs {
		t.handoff.forget(j.id, j.handed)
	}
}

// commit prepares and publishes a chunk of jobs (at most maxInFlight, of
// distinct ids) once the admission has room for them, and collects their
// acknowledgements.
func (b *Broker) commit(reqCtx context.Context, t *tenant, chunk []*job) {
	actx, cancel := b.writeContext(reqCtx)
	err := b.admit.acquire(actx, len(chunk))
	cancel()
	if err != nil {
		for _, j := range chunk {
			j.out.Err = fmt.Errorf("%w: too many writes waiting; none of this was written: %v", ErrUnavailable, err)
		}
		return
	}
	defer b.admit.release(len(chunk))
	ctx, cancel := b.writeContext(reqCtx)
	defer cancel()
	for _, j := range chunk {
		cur, typ, seq, err := t.current(j.id)
		if err != nil && j.del {
			// A state that cannot be read can still be deleted: the
			// tombstone needs only the id and the types.
			if r := t.rm.get(j.id); r != nil {
				cur, typ, seq, err = &Entity{ID: j.id, Types: append([]string(nil), r.types...)}, r.subjType, r.seq, nil
				b.log.Warn("deleting an unreadable entity", "tenant", t.name, "id", j.id)
			}
		}
		if err != nil {
			j.out.Err = err
			continue
		}
		m := j.prepare(t, cur, typ, seq, b.opts.Validator)
		if m == nil {
			b.keepAside(ctx, t, j)
			continue
		}
		if j.next != nil {
			j.handed = t.handoff.leave(j.id, m.Data, j.next)
		}
		f, err := b.js.PublishMsgAsync(m)
		if err != nil {
			if err = translateNATS(err); !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			j.out.Err = err
			continue
		}
		j.future = f
	}
	for _, j := range chunk {
		if j.future == nil {
			continue
		}
		select {
		case ack := <-j.future.Ok():
			j.out.Seq = ack.Sequence
		case err := <-j.future.Err():
			if err = classifyPublishError(err); errors.Is(err, errWrongLastSeq) {
				j.retry = true
			} else {
				j.out.Err = err
			}
		case <-ctx.Done():
			j.out.Err = fmt.Errorf("%w: no acknowledgement: %v", ErrUnavailable, ctx.Err())
		}
		j.future = nil
	}
}

// maxAttempts bounds the retries of a write that keeps losing races.
const maxAttempts = 64

// retry runs a job that lost a race, on the stream's latest state, until it
// commits or the attempts run out.
func (b *Broker) retry(ctx context.Context, t *tenant, j *job) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			// Back off with jitter so that racing writers spread out.
			d := time.Duration(1+rand.IntN(1<<min(attempt, 7))) * time.Millisecond
			select {
			case <-time.After(d):
			case <-ctx.Done():
				j.out.Err = fmt.Errorf("%w: %v", ErrConflict, ctx.Err())
				return
			}
		}
		cur, typ, seq, err := b.latest(ctx, t, j.id)
		if err != nil {
			j.out.Err = err
			return
		}
		j.out = Outcome{ID: j.id}
		m := j.prepare(t, cur, typ, seq, b.opts.Validator)
		if m == nil {
			b.keepAside(ctx, t, j)
			return
		}
		s, err := b.publish(ctx, m)
		if errors.Is(err, errWrongLastSeq) {
			continue
		}
		if err != nil {
			j.out.Err = err
			return
		}
		j.out.Seq = s
		return
	}
	j.out.Err = &Error{Kind: ErrConflict, Detail: fmt.Sprintf("entity %s: concurrent writers kept changing it; try again", j.id), Entity: j.id}
}

// one runs a single job and returns its outcome as an error if it failed.
func (b *Broker) one(ctx context.Context, tenantName, kind string, create, del bool, id string, step stepFunc) (Outcome, error) {
	t, err := b.tenant(ctx, tenantName, create)
	if err != nil {
		return Outcome{}, err
	}
	// Creates and deletes only look at the current state.
	j := &job{id: id, step: step, out: Outcome{ID: id}, del: del, kind: kind, keepsCur: create || del}
	// Writers of one entity in this process take turns, so that they do
	// not race each other on the stream; other replicas still may.
	l := &b.idLocks[stripe(id)]
	l.Lock()
	defer l.Unlock()
	b.run(ctx, t, []*job{j})
	return j.out, j.out.Err
}

var stripeSeed = maphash.MakeSeed()

func stripe(id string) int { return int(maphash.String(stripeSeed, id) % idStripes) }

// idStripes is the number of per-entity write locks.
const idStripes = 256

func notFound(id string) error {
	return &Error{Kind: ErrNotFound, Detail: fmt.Sprintf("entity %s not found", id), Entity: id}
}

// Create commits a new entity. It fails with ErrAlreadyExists if the id is
// live (under any type).
func (b *Broker) Create(ctx context.Context, tenant string, e *Entity) (Outcome, error) {
	return b.one(ctx, tenant, OpCreate, true, false, e.ID, createStep(e))
}

func createStep(e *Entity) stepFunc {
	return func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur != nil {
			return nil, "", nil, &Error{Kind: ErrAlreadyExists, Detail: fmt.Sprintf("entity %s already exists", e.ID), Entity: e.ID}
		}
		return newState(e.Clone(), ts), OpCreate, nil, nil
	}
}

// Get returns the current state of an entity. The entity may be shared
// with other readers: the caller must not modify it (Clone it to).
func (b *Broker) Get(ctx context.Context, tenantName, id string) (*Entity, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return nil, err
	}
	r := t.rm.get(id)
	if r == nil {
		return nil, notFound(id)
	}
	return t.rm.shared(r)
}

// Replace replaces all attributes of an entity (PUT /entities/{id}).
func (b *Broker) Replace(ctx context.Context, tenant, id string, next *Entity) (Outcome, error) {
	return b.one(ctx, tenant, OpReplace, false, false, id, func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		return replaceState(cur, next.Clone(), ts), OpReplace, nil, nil
	})
}

// Merge merges a fragment into an entity (PATCH /entities/{id}).
func (b *Broker) Merge(ctx context.Context, tenant, id string, frag *Entity) (Outcome, error) {
	return b.one(ctx, tenant, OpMerge, false, false, id, mergeStep(id, frag))
}

func mergeStep(id string, frag *Entity) stepFunc {
	return func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		return mergeState(cur, frag, ts), OpMerge, nil, nil
	}
}

// Append adds attributes (POST /entities/{id}/attrs).
func (b *Broker) Append(ctx context.Context, tenant, id string, frag *Entity, noOverwrite bool) (Outcome, error) {
	return b.one(ctx, tenant, OpAppend, false, false, id, appendStep(id, frag, noOverwrite))
}

func appendStep(id string, frag *Entity, noOverwrite bool) stepFunc {
	return func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		next, nu := appendState(cur, frag.Clone(), noOverwrite, ts)
		return next, OpAppend, nu, nil
	}
}

// UpdateAttrs overwrites existing attributes (PATCH /entities/{id}/attrs).
func (b *Broker) UpdateAttrs(ctx context.Context, tenant, id string, frag *Entity) (Outcome, error) {
	return b.one(ctx, tenant, OpUpdate, false, false, id, func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		next, nu := updateState(cur, frag.Clone(), ts)
		return next, OpUpdate, nu, nil
	})
}

// PatchAttr merges members into one attribute (PATCH /entities/{id}/attrs/{attr}).
func (b *Broker) PatchAttr(ctx context.Context, tenant, id, name string, patch *Attribute) (Outcome, error) {
	return b.one(ctx, tenant, OpUpdate, false, false, id, func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		old := cur.Attrs[name].Instance(patch.DatasetID)
		if old == nil {
			return nil, "", nil, attrNotFound(id, name, patch.DatasetID)
		}
		if patch.Type != 0 && patch.Type != old.Type {
			return nil, "", nil, &Error{Kind: ErrBadRequestData, Entity: id,
				Detail: fmt.Sprintf("attribute %s of %s is a %s: a partial update cannot make it a %s (replace it instead)", name, id, old.Type, patch.Type)}
		}
		merged := mergeAttr(old, patch)
		stamp(merged, old, ts)
		cur.Attrs[name] = cur.Attrs[name].put(merged)
		cur.ModifiedAt = ts
		return cur, OpUpdate, nil, nil
	})
}

// ReplaceAttr replaces one attribute instance (PUT /entities/{id}/attrs/{attr}).
func (b *Broker) ReplaceAttr(ctx context.Context, tenant, id, name string, a *Attribute) (Outcome, error) {
	return b.one(ctx, tenant, OpReplace, false, false, id, func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		old := cur.Attrs[name].Instance(a.DatasetID)
		if old == nil {
			return nil, "", nil, attrNotFound(id, name, a.DatasetID)
		}
		na := a.clone()
		stamp(na, old, ts)
		cur.Attrs[name] = cur.Attrs[name].put(na)
		cur.ModifiedAt = ts
		return cur, OpReplace, nil, nil
	})
}

func attrNotFound(id, name, datasetID string) error {
	d := fmt.Sprintf("entity %s has no attribute %s", id, name)
	if datasetID != "" {
		d += " with datasetId " + datasetID
	}
	return &Error{Kind: ErrNotFound, Detail: d, Entity: id}
}

// DeleteAttr deletes an attribute instance, or all of them with all.
func (b *Broker) DeleteAttr(ctx context.Context, tenant, id, name, datasetID string, all bool) (Outcome, error) {
	return b.one(ctx, tenant, OpUpdate, false, false, id, deleteAttrStep(id, name, datasetID, all))
}

func deleteAttrStep(id, name, datasetID string, all bool) stepFunc {
	return func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return nil, "", nil, notFound(id)
		}
		is := cur.Attrs[name]
		switch {
		case name == "scope" && len(is) == 0:
			if cur.Scope == nil {
				return nil, "", nil, attrNotFound(id, name, datasetID)
			}
			cur.Scope = nil
		case all && len(is) > 0:
			delete(cur.Attrs, name)
		case is.Instance(datasetID) != nil:
			if is = is.without(datasetID); len(is) == 0 {
				delete(cur.Attrs, name)
			} else {
				cur.Attrs[name] = is
			}
		default:
			return nil, "", nil, attrNotFound(id, name, datasetID)
		}
		cur.ModifiedAt = ts
		return cur, OpUpdate, nil, nil
	}
}

// Delete deletes an entity: a tombstone on its subject.
func (b *Broker) Delete(ctx context.Context, tenant, id string) (Outcome, error) {
	return b.one(ctx, tenant, OpDelete, false, true, id, deleteStep)
}

func deleteStep(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
	return nil, OpDelete, nil, nil
}

// BatchKind is an entity operation on many entities at once.
type BatchKind int

// The batch operations of /entityOperations.
const (
	BatchCreate BatchKind = iota
	BatchUpsert
	BatchUpdate
	BatchMerge
	BatchDelete
)

// BatchOptions modify a batch.
type BatchOptions struct {
	// UpsertUpdate makes an upsert update existing entities (append
	// semantics) instead of replacing them.
	UpsertUpdate bool
	// NoOverwrite keeps existing attributes in a batch update.
	NoOverwrite bool
}

// Batch runs one operation on many entities and reports per entity. For
// BatchDelete, only the ids of entities are used. Batch owns ents: the
// states it commits may share their attributes with them, so the caller
// must not modify them afterwards.
func (b *Broker) Batch(ctx context.Context, tenantName string, kind BatchKind, ents []*Entity, o BatchOptions) ([]Outcome, error) {
	t, err := b.tenant(ctx, tenantName, kind == BatchCreate || kind == BatchUpsert)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, len(ents))
	for i, e := range ents {
		var step stepFunc
		switch kind {
		case BatchCreate:
			step = createStep(e)
		case BatchUpsert:
			step = upsertStep(e, o.UpsertUpdate)
		case BatchUpdate:
			step = appendStep(e.ID, e, o.NoOverwrite)
		case BatchMerge:
			step = mergeStep(e.ID, e)
		case BatchDelete:
			step = deleteStep
		}
		// Creates, deletes and replacing upserts only look at the
		// current state.
		keeps := kind == BatchCreate || kind == BatchDelete || kind == BatchUpsert && !o.UpsertUpdate
		jobs[i] = &job{id: e.ID, step: step, out: Outcome{ID: e.ID}, del: kind == BatchDelete, kind: batchOps[kind], keepsCur: keeps}
	}
	b.run(ctx, t, jobs)
	out := make([]Outcome, len(jobs))
	for i, j := range jobs {
		out[i] = j.out
	}
	return out, nil
}

// upsertStep creates e or replaces the entity by it (with update, appends
// e's attributes). Creating and replacing modify neither the attribute map
// of e nor its instance lists (only the system times of its attributes), so
// the next state shares them with e: Batch owns its entities.
func upsertStep(e *Entity, update bool) stepFunc {
	return func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
		if cur == nil {
			return newState(e.shallow(), ts), OpCreate, nil, nil
		}
		if update {
			next, _ := appendState(cur, e.Clone(), false, ts)
			return next, OpUpdate, nil, nil
		}
		return replaceState(cur, e.shallow(), ts), OpReplace, nil, nil
	}
}

// MaxResults is the most entities one query page may hold.
func (b *Broker) MaxResults() int { return b.opts.MaxResults }

// PurgeRequest selects entities to delete, or attributes to drop from them.
type PurgeRequest struct {
	Query
	// Drop deletes these attributes from the selected entities; Keep deletes
	// all others. With neither, the entities are deleted.
	Drop, Keep []string
}

// Purge deletes the selected entities (or attributes of them) and reports per entity.
func (b *Broker) Purge(ctx context.Context, tenantName string, p PurgeRequest) ([]Outcome, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return nil, err
	}
	q := p.Query
	q.Limit, q.Offset = int(^uint(0)>>1), 0
	res, err := b.Query(ctx, tenantName, q)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, 0, len(res.Entities))
	for _, e := range res.Entities {
		step, id := deleteStep, e.ID
		if len(p.Drop) > 0 || len(p.Keep) > 0 {
			drop, keep := toSet(p.Drop), toSet(p.Keep)
			step = func(cur *Entity, ts time.Time) (*Entity, string, []NotUpdated, error) {
				if cur == nil {
					return nil, "", nil, notFound(id)
				}
				for name := range cur.Attrs {
					if drop[name] || (keep != nil && !keep[name]) {
						delete(cur.Attrs, name)
					}
				}
				cur.ModifiedAt = ts
				return cur, OpUpdate, nil, nil
			}
		}
		jobs = append(jobs, &job{id: e.ID, step: step, out: Outcome{ID: e.ID}, del: len(p.Drop) == 0 && len(p.Keep) == 0, kind: opPurge})
	}
	b.run(ctx, t, jobs)
	out := make([]Outcome, len(jobs))
	for i, j := range jobs {
		out[i] = j.out
	}
	return out, nil
}

func toSet(ss []string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// DeleteHistory deletes an entity with its whole history (the temporal
// representation): a live entity gets a tombstone first, so that every
// replica's read model drops it; then the log keeps only that tombstone.
func (b *Broker) DeleteHistory(ctx context.Context, tenantName, id string) (err error) {
	defer func() { b.m.wroteOne(opDeleteHistory, err) }()
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return err
	}
	if t.rm.get(id) != nil {
		if _, err := b.Delete(ctx, tenantName, id); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	_, typ, seq, err := b.latest(ctx, t, id)
	if err != nil {
		return err
	}
	if seq == 0 {
		return notFound(id)
	}
	st, err := b.js.Stream(ctx, t.stream)
	if err != nil {
		return translateNATS(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(Subject(t.name, typ, id)), jetstream.WithPurgeKeep(1)); err != nil {
		return fmt.Errorf("broker: purging the history of %s: %w", id, translateNATS(err))
	}
	return nil
}
