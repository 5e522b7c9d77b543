package broker

import (
	"context"
	"fmt"
)

// ReadyMaxLag is how many messages a tenant's read model may be behind its
// stream while the broker still reports ready. A replica applies the live
// tail within milliseconds, so a lag past this means it is loading,
// stalled, or far slower than the writers.
const ReadyMaxLag = 10000

// CheckReady reports whether the broker can serve: connected to NATS, every
// attached tenant's stream answering (a stream without a leader does not),
// and every read model caught up with its stream (within ReadyMaxLag
// messages). It makes one JetStream request per tenant; ctx bounds them.
// The error says what is missing and wraps ErrNotConnected or ErrNotReady.
func (b *Broker) CheckReady(ctx context.Context) error {
	if err := b.Ready(); err != nil {
		return err
	}
	for _, t := range b.attached() {
		lag, err := b.lag(ctx, t)
		if err != nil {
			return fmt.Errorf("%w: stream %s does not answer: %v", ErrNotReady, t.stream, err)
		}
		if lag > ReadyMaxLag {
			return fmt.Errorf("%w: the read model of tenant %q is %d messages behind its stream", ErrNotReady, t.name, lag)
		}
	}
	return nil
}

// attached returns the tenants whose read model is loaded.
func (b *Broker) attached() []*tenant {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*tenant, 0, len(b.tenants))
	for _, t := range b.tenants {
		select {
		case <-t.ready:
			if t.err == nil {
				out = append(out, t)
			}
		default:
		}
	}
	return out
}

// lag is how many messages of t's stream its read model has not applied:
// the stream's last sequence less the highest one applied.
func (b *Broker) lag(ctx context.Context, t *tenant) (uint64, error) {
	st, err := b.js.Stream(ctx, t.stream)
	if err != nil {
		return 0, translateNATS(err)
	}
	last, applied := st.CachedInfo().State.LastSeq, t.rm.applied.Load()
	if last <= applied {
		return 0, nil
	}
	return last - applied, nil
}
