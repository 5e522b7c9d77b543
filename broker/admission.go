package broker

import (
	"context"
	"sync"
)

// admission bounds the messages this broker has published to JetStream and
// not yet seen acknowledged. The NATS client refuses ("stalled") past its
// own limit of pending asynchronous publishes, which under a burst of large
// batches failed part of each batch; instead, a write waits here for room,
// in arrival order, so that a big batch is not starved by small ones and a
// burst becomes a queue: the client sees a slower answer, not a 207 with
// per-entity 503s. It is safe for concurrent use.
type admission struct {
	mu      sync.Mutex
	free    int
	waiters []*admissionWaiter
}

type admissionWaiter struct {
	n     int
	ready chan struct{}
}

// maxInFlight is the admission's capacity: below the NATS client's limit of
// pending asynchronous publishes (jetstream.WithPublishAsyncMaxPending), so
// that the client never stalls on our own writes.
const maxInFlight = 3072

func newAdmission(capacity int) *admission { return &admission{free: capacity} }

// acquire waits until n messages may be published (n must not exceed the
// capacity) or ctx ends.
func (a *admission) acquire(ctx context.Context, n int) error {
	a.mu.Lock()
	if len(a.waiters) == 0 && a.free >= n {
		a.free -= n
		a.mu.Unlock()
		return nil
	}
	w := &admissionWaiter{n: n, ready: make(chan struct{})}
	a.waiters = append(a.waiters, w)
	a.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			a.free += n
		default:
			for i, x := range a.waiters {
				if x == w {
					a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
					break
				}
			}
		}
		a.grant()
		a.mu.Unlock()
		return ctx.Err()
	}
}

// release returns n messages' room.
func (a *admission) release(n int) {
	a.mu.Lock()
	a.free += n
	a.grant()
	a.mu.Unlock()
}

// grant wakes the waiters at the head of the queue that now fit. The
// caller holds mu.
func (a *admission) grant() {
	for len(a.waiters) > 0 && a.free >= a.waiters[0].n {
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.free -= w.n
		close(w.ready)
	}
}
