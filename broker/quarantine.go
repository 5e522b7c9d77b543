package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/schemas"
)

// The quarantine keeps writes that the quarantine policy set aside: the
// entity state as it would have been committed, with its violations, in
// the stream QuarantineStream on subjects
// piazza-quarantine.<tenant>.<Type>.<id> (tokens as in subject.go). Nothing
// there is applied or published on piazza.>; an operator lists, inspects,
// replays (validating again) or drops each entry.

// QuarantineStream is the name of the quarantine stream.
const QuarantineStream = "PIAZZA_QUARANTINE"

const quarantinePrefix = "piazza-quarantine"

// quarantined is a state set aside by the quarantine policy.
type quarantined struct {
	entity     *Entity
	op         string
	model      string
	violations []schemas.Violation
}

// QuarantineEntry is one write kept in quarantine.
type QuarantineEntry struct {
	Seq        uint64              `json:"seq"`
	Tenant     string              `json:"tenant"`
	ID         string              `json:"id"`
	Type       string              `json:"type"`
	Op         string              `json:"op"`
	Model      string              `json:"model"`
	Violations []schemas.Violation `json:"violations"`
	Received   time.Time           `json:"received"`
	// Entity is the state that was not committed, in the stored form.
	Entity json.RawMessage `json:"entity"`
}

func (b *Broker) quarantineStream(ctx context.Context) (jetstream.Stream, error) {
	st, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        QuarantineStream,
		Description: "Piazza: writes set aside by the quarantine validation policy",
		Subjects:    []string{quarantinePrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
		AllowDirect: true,
	})
	if err != nil {
		return nil, translateNATS(err)
	}
	return st, nil
}

// keepAside stores a job's quarantined state, if it has one, and reports
// it as the job's error.
func (b *Broker) keepAside(ctx context.Context, t *tenant, j *job) {
	q := j.quarantine
	if q == nil {
		return
	}
	j.quarantine = nil
	if _, err := b.quarantineStream(ctx); err != nil {
		j.out.Err = fmt.Errorf("broker: quarantine unavailable, write refused: %w", err)
		return
	}
	entry := QuarantineEntry{
		Tenant: t.name, ID: q.entity.ID, Type: q.entity.Types[0], Op: q.op, Model: q.model,
		Violations: q.violations, Received: now(), Entity: encodeStored(q.entity),
	}
	data, err := json.Marshal(entry)
	if err != nil {
		j.out.Err = fmt.Errorf("%w: quarantine entry: %v", ErrInternal, err)
		return
	}
	subj := quarantinePrefix + "." + TenantToken(t.name) + "." + EncodeToken(entry.Type) + "." + EncodeToken(entry.ID)
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data})
	if err != nil {
		j.out.Err = fmt.Errorf("broker: quarantine unavailable, write refused: %w", translateNATS(err))
		return
	}
	b.m.kept(entry.Type)
	b.log.Warn("write quarantined", "tenant", t.name, "id", entry.ID, "model", q.model, "violations", len(q.violations), "entry", ack.Sequence)
	j.out.Err = &Error{Kind: ErrBadRequestData, Entity: entry.ID, Violations: q.violations, Quarantine: ack.Sequence,
		Detail: describeViolations(entry.ID, q.model, q.violations) + "; the write is kept in quarantine as entry " + strconv.FormatUint(ack.Sequence, 10)}
}

// Quarantine lists the entries of a tenant's quarantine, oldest first.
func (b *Broker) Quarantine(ctx context.Context, tenantName string) ([]QuarantineEntry, error) {
	st, err := b.quarantineStream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(quarantinePrefix+"."+TenantToken(tenantName)+".>"))
	if err != nil {
		return nil, translateNATS(err)
	}
	var out []QuarantineEntry
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{quarantinePrefix + "." + TenantToken(tenantName) + ".>"},
	})
	if err != nil {
		return nil, translateNATS(err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, translateNATS(err)
		}
		n := 0
		var pending uint64
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			var e QuarantineEntry
			if json.Unmarshal(m.Data(), &e) == nil {
				e.Seq = md.Sequence.Stream
				out = append(out, e)
			}
			pending = md.NumPending
		}
		if n == 0 || pending == 0 {
			return out, nil
		}
	}
}

// QuarantineEntry returns one entry of a tenant's quarantine.
func (b *Broker) QuarantineEntry(ctx context.Context, tenantName string, seq uint64) (*QuarantineEntry, error) {
	st, err := b.quarantineStream(ctx)
	if err != nil {
		return nil, err
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, &Error{Kind: ErrNotFound, Detail: fmt.Sprintf("no quarantine entry %d", seq)}
	}
	if err != nil {
		return nil, translateNATS(err)
	}
	var e QuarantineEntry
	if err := json.Unmarshal(m.Data, &e); err != nil || e.Tenant != tenantName {
		return nil, &Error{Kind: ErrNotFound, Detail: fmt.Sprintf("no quarantine entry %d in this tenant", seq)}
	}
	e.Seq = seq
	return &e, nil
}

// DropQuarantine deletes a quarantine entry: the write is abandoned.
func (b *Broker) DropQuarantine(ctx context.Context, tenantName string, seq uint64) error {
	if _, err := b.QuarantineEntry(ctx, tenantName, seq); err != nil {
		return err
	}
	st, err := b.quarantineStream(ctx)
	if err != nil {
		return err
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return translateNATS(err)
	}
	return nil
}

// ReplayQuarantine commits a quarantined state as an upsert, validating it
// again (the model or the policy may have changed). On success the entry
// is deleted; otherwise it stays and the error says why.
func (b *Broker) ReplayQuarantine(ctx context.Context, tenantName string, seq uint64) (Outcome, error) {
	e, err := b.QuarantineEntry(ctx, tenantName, seq)
	if err != nil {
		return Outcome{}, err
	}
	ent, err := decodeStored(e.Entity)
	if err != nil {
		return Outcome{}, err
	}
	outs, err := b.Batch(ctx, tenantName, BatchUpsert, []*Entity{ent}, BatchOptions{})
	if err != nil {
		return Outcome{}, err
	}
	if outs[0].Err != nil {
		var be *Error
		if errors.As(outs[0].Err, &be) && be.Quarantine != 0 {
			// Quarantined again: keep only the newer entry.
			_ = b.DropQuarantine(ctx, tenantName, seq)
		}
		return outs[0], outs[0].Err
	}
	return outs[0], b.DropQuarantine(ctx, tenantName, seq)
}
