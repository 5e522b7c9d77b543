package broker

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestOverloadQueuesInsteadOfFailing sends more entities at once than the
// NATS client may have unacknowledged (PublishAsyncMaxPending): the writes
// wait their turn and every one lands, rather than some failing with
// "stalled" and leaving the batches half applied.
func TestOverloadQueuesInsteadOfFailing(t *testing.T) {
	// The test is about failures, not speed: a slow machine (-race) may
	// take longer than the default timeout to drain the queue.
	b, _ := startBroker(t, Options{WriteTimeout: 2 * time.Minute})
	ctx := context.Background()
	const clients, per = 32, 1000 // 32,000 in flight, eight times the client's limit
	var wg sync.WaitGroup
	errs := make(chan error, clients*per)
	for c := range clients {
		batch := make([]*Entity, per)
		for i := range batch {
			batch[i] = mustParse(t, fmt.Sprintf(`{"id":"urn:ngsi-ld:Load:%d-%d","type":"Load","n":{"type":"Property","value":%d}}`, c, i, i), ParseOptions{})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs, err := b.Batch(ctx, "", BatchUpsert, batch, BatchOptions{})
			if err != nil {
				errs <- err
				return
			}
			for _, o := range outs {
				if o.Err != nil {
					errs <- o.Err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 3 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d entities failed under load", n, clients*per)
	}
	if got := b.entityCount(); got != clients*per {
		t.Fatalf("%d entities stored, want %d", got, clients*per)
	}
}

func TestAdmission(t *testing.T) {
	a := newAdmission(10)
	ctx := context.Background()
	if err := a.acquire(ctx, 8); err != nil {
		t.Fatal(err)
	}
	// A big request waits; a small one behind it waits too (arrival order),
	// though it would fit.
	big := make(chan error, 1)
	go func() { big <- a.acquire(ctx, 10) }()
	for {
		a.mu.Lock()
		n := len(a.waiters)
		a.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	cctx, cancel := context.WithCancel(ctx)
	small := make(chan error, 1)
	go func() { small <- a.acquire(cctx, 1) }()
	select {
	case err := <-small:
		t.Fatalf("the small request jumped the queue: %v", err)
	case err := <-big:
		t.Fatalf("the big request did not wait: %v", err)
	default:
	}
	cancel()
	if err := <-small; err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	a.release(8)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	a.release(10)
	if a.free != 10 || len(a.waiters) != 0 {
		t.Fatalf("free %d, %d waiting; want 10 and none", a.free, len(a.waiters))
	}
}
