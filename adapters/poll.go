package adapters

import (
	"context"
	"log/slog"
	"time"
)

// Poll is the schedule of the sources that fetch their input (http, ckan,
// ngsiv2): it calls poll once, and then, when interval is positive, again
// every interval until ctx ends. After each poll that succeeds it calls
// out.Sync, so that what the poll emitted is delivered before the wait.
//
// With interval zero Poll returns poll's error. With a schedule a failed poll
// is logged on log and retried at the next tick (a portal that is down for
// an hour must not stop the pipeline), except when the error came from the
// emitter (the pipeline stopped the source), which Poll returns unchanged.
// Poll returns ctx.Err() when ctx ends.
func Poll(ctx context.Context, interval time.Duration, log *slog.Logger, out Emitter, poll func(ctx context.Context, out Emitter) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &emitGuard{Emitter: out}
	for {
		err := poll(ctx, g)
		if err == nil {
			err = g.Sync()
		}
		switch {
		case g.err != nil:
			return g.err
		case ctx.Err() != nil:
			return ctx.Err()
		case interval <= 0:
			return err
		case err != nil:
			log.Warn("poll failed; retrying at the next poll", "error", err, "interval", interval)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// emitGuard remembers the first error the emitter returned, so that Poll
// can tell a stop of the pipeline from a failed fetch.
type emitGuard struct {
	Emitter
	err error
}

func (g *emitGuard) keep(err error) error {
	if err != nil && g.err == nil {
		g.err = err
	}
	return err
}

func (g *emitGuard) Emit(rec Record) error { return g.keep(g.Emitter.Emit(rec)) }

func (g *emitGuard) Reject(rec Record, err error) error { return g.keep(g.Emitter.Reject(rec, err)) }

func (g *emitGuard) Sync() error { return g.keep(g.Emitter.Sync()) }
