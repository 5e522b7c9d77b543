package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errWrongLastSeq is a lost optimistic-concurrency race; the caller retries.
var errWrongLastSeq = errors.New("broker: wrong last sequence")

// newMessage builds the message that commits a state: the stored form as
// payload, the operation and the types as headers, and the expectation on the
// last sequence of the entity's subjects. With byID the expectation covers
// every subject of the id (piazza.<tenant>.*.<id>), so that an id lives on one
// subject only; otherwise just the entity's own subject.
func newMessage(tenantName string, subjType string, e *Entity, op string, data []byte, expect uint64, byID bool) *nats.Msg {
	subj := Subject(tenantName, subjType, e.ID)
	// The header values share one backing array, each with its own
	// capacity (one allocation instead of one per header).
	vals := make([]string, 0, 4+len(e.Types))
	one := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	h := make(nats.Header, 5)
	h[HeaderOp] = one(op)
	h[HeaderVersion] = one(PayloadVersion)
	h[jetstream.ExpectedLastSubjSeqHeader] = one(strconv.FormatUint(expect, 10))
	if byID {
		h["Nats-Expected-Last-Subject-Sequence-Subject"] = one(idSubjectFilter(tenantName, e.ID))
	}
	vals = append(vals, e.Types...)
	h[HeaderType] = vals[len(vals)-len(e.Types) : len(vals) : len(vals)]
	return &nats.Msg{Subject: subj, Header: h, Data: data}
}

// publish commits one message and returns its stream sequence.
func (b *Broker) publish(ctx context.Context, m *nats.Msg) (uint64, error) {
	ack, err := b.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, classifyPublishError(err)
	}
	return ack.Sequence, nil
}

func classifyPublishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errWrongLastSeq
	}
	return translateNATS(err)
}

// latest reads the current state of id straight from the stream (after a lost
// race, when the read model may lag): the entity (nil if it has none or was
// deleted), its subject's type token, and the sequence of that message (0 if
// the id never existed).
func (b *Broker) latest(ctx context.Context, t *tenant, id string) (*Entity, string, uint64, error) {
	st, err := b.js.Stream(ctx, t.stream)
	if err != nil {
		return nil, "", 0, translateNATS(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, idSubjectFilter(t.name, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, "", 0, nil
	}
	if err != nil {
		return nil, "", 0, translateNATS(err)
	}
	_, typ, _, err := ParseSubject(m.Subject)
	if err != nil {
		return nil, "", 0, fmt.Errorf("broker: stream %s holds a foreign subject %q", t.stream, m.Subject)
	}
	if m.Header.Get(HeaderOp) == OpDelete {
		return nil, typ, m.Sequence, nil
	}
	e, err := decodeStored(m.Data)
	if err != nil {
		return nil, "", 0, err
	}
	return e, typ, m.Sequence, nil
}

// decodeStored reads the broker's stored form.
func decodeStored(data []byte) (*Entity, error) {
	if e, ok := ParseEntityBytes(data, ParseOptions{stored: true}); ok {
		return e, nil
	}
	v, err := DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: stored entity: %v", ErrInternal, err)
	}
	e, err := ParseEntity(v, ParseOptions{stored: true})
	if err != nil {
		return nil, fmt.Errorf("%w: stored entity: %v", ErrInternal, err)
	}
	return e, nil
}

// encodeStored writes the broker's stored form.
func encodeStored(e *Entity) []byte {
	buf := encodeBufs.Get().(*[]byte)
	*buf = AppendEntity((*buf)[:0], e, storedOptions)
	out := append([]byte(nil), *buf...) // exactly sized: it is kept
	encodeBufs.Put(buf)
	return out
}

// encodeBufs are scratch buffers for encodeStored.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// tombstone is the payload of a delete: who was deleted, and when; no data.
func tombstone(e *Entity, at string) []byte {
	dst := append([]byte(`{"id":`), appendString(nil, e.ID)...)
	dst = append(dst, `,"type":`...)
	dst = appendValue(dst, stringsToAny(e.Types))
	dst = append(dst, `,"deletedAt":`...)
	dst = appendString(dst, at)
	return append(dst, '}')
}
