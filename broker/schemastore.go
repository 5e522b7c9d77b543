package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/schemas"
)

// SchemaBucket is the JetStream key-value bucket that holds the data models
// put and deleted at run time (through /ngsi-ld/ex/v1/schemas): one key per
// model name, whose value is a schemaRecord, or a delete marker for a model
// deleted (an embedded one, say). Every replica watches it, so all of them
// validate with the same models, and the models survive restarts.
const SchemaBucket = "PIAZZA_SCHEMAS"

// schemaRecord is the value of a model in SchemaBucket (format version 1).
type schemaRecord struct {
	TypeIRI string          `json:"typeIRI"`
	Schema  json.RawMessage `json:"schema"`
}

// schemaStore keeps a registry's run-time models in SchemaBucket. Writers
// compile and install a model locally first (so a bad schema is refused
// without touching the bucket, and the replica that answered validates with
// the new model at once), then store it; a watcher applies every stored
// change, this replica's own included (those find the model already there).
type schemaStore struct {
	reg *schemas.Registry
	kv  jetstream.KeyValue
	log *slog.Logger
	mu  sync.Mutex // serialises this replica's puts and deletes
	w   jetstream.KeyWatcher
}

// startSchemaStore opens (or creates) the bucket, applies every stored
// model to reg before returning, and then follows the bucket until ctx ends.
func startSchemaStore(ctx, run context.Context, js jetstream.JetStream, reg *schemas.Registry, replicas int, log *slog.Logger) (*schemaStore, error) {
	s := &schemaStore{reg: reg, log: log.With("component", "schemas")}
	// On a NATS cluster that is still electing its leaders, JetStream
	// requests time out for a while: retry until ctx ends or two minutes.
	deadline := time.Now().Add(2 * time.Minute)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{
			Bucket:      SchemaBucket,
			Description: "Piazza data models put or deleted through the API",
			History:     8,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		cancel()
		if err == nil {
			s.kv = kv
			break
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("broker: data model bucket: %w", translateNATS(err))
		}
		s.log.Warn("data model bucket not available yet; retrying", "err", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("broker: data model bucket: %w", ctx.Err())
		case <-t.C:
		}
	}
	var err error
	if s.w, err = s.kv.WatchAll(run); err != nil {
		return nil, fmt.Errorf("broker: watching the data model bucket: %w", translateNATS(err))
	}
	// The stored models come first, then a nil entry marks the present.
	n := 0
	for {
		select {
		case e, ok := <-s.w.Updates():
			if !ok {
				return nil, fmt.Errorf("broker: data model bucket: %w", ErrNotConnected)
			}
			if e == nil {
				if n > 0 {
					s.log.Info("data models loaded from the bucket", "changes", n)
				}
				go s.follow()
				return s, nil
			}
			s.apply(e)
			n++
		case <-ctx.Done():
			_ = s.w.Stop()
			return nil, ctx.Err()
		}
	}
}

func (s *schemaStore) follow() {
	for e := range s.w.Updates() {
		if e != nil {
			s.apply(e)
		}
	}
}

func (s *schemaStore) stop() { _ = s.w.Stop() }

// apply brings one stored change into the registry.
func (s *schemaStore) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := e.Key()
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if err := s.reg.Delete(name); err != nil && !errors.Is(err, schemas.ErrModelNotFound) {
			s.log.Warn("cannot apply a stored model deletion", "model", name, "err", err)
		}
		return
	}
	var rec schemaRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || len(rec.Schema) == 0 {
		s.log.Warn("stored data model is unreadable; skipped", "model", name, "revision", e.Revision(), "err", err)
		return
	}
	if m, ok := s.reg.Get(name); ok && m.TypeIRI == rec.TypeIRI && bytes.Equal(m.Schema(), rec.Schema) {
		return // already here: this replica's own put, or the same model
	}
	if _, err := s.reg.Put(name, rec.TypeIRI, rec.Schema); err != nil {
		// Another replica compiled it; a different Piazza version may not.
		s.log.Error("cannot apply a stored data model; this replica keeps its previous one", "model", name, "revision", e.Revision(), "err", err)
	}
}

// put compiles and installs a model, then stores it. It reports whether a
// model of that name existed. If storing fails, the local change is undone.
func (s *schemaStore) put(ctx context.Context, name, typeIRI string, schema []byte) (*schemas.Model, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, existed := s.reg.Get(name)
	m, err := s.reg.Put(name, typeIRI, schema)
	if err != nil {
		return nil, existed, err
	}
	rec, err := json.Marshal(schemaRecord{TypeIRI: m.TypeIRI, Schema: m.Schema()})
	if err == nil {
		_, err = s.kv.Put(ctx, name, rec)
	}
	if err != nil {
		s.undo(name, prev, existed)
		return nil, existed, fmt.Errorf("broker: storing data model %s: %w", name, translateNATS(err))
	}
	return m, existed, nil
}

// delete removes a model and stores the deletion.
func (s *schemaStore) delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, existed := s.reg.Get(name)
	if err := s.reg.Delete(name); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, name); err != nil {
		s.undo(name, prev, existed)
		return fmt.Errorf("broker: storing the deletion of data model %s: %w", name, translateNATS(err))
	}
	return nil
}

// undo restores the model a failed put or delete replaced.
func (s *schemaStore) undo(name string, prev *schemas.Model, existed bool) {
	var err error
	if existed {
		err = s.reg.Restore(prev)
	} else {
		err = s.reg.Delete(name)
	}
	if err != nil {
		s.log.Error("cannot undo a data model change that was not stored", "model", name, "err", err)
	}
}

// SchemaRegistry returns the registry of data models the broker validates
// with, or nil if it validates nothing.
func (b *Broker) SchemaRegistry() *schemas.Registry {
	if b.opts.Validator == nil {
		return nil
	}
	return b.opts.Validator.Registry()
}

// PutSchema adds or replaces a data model (see schemas.Registry.Put for
// how the type IRI is chosen and when a schema is refused) and stores it
// in SchemaBucket, so that every replica validates with it from now on and
// it survives restarts. It reports whether a model of that name existed.
// A refused schema leaves everything as it was; so does a failure to store
// (ErrNotConnected).
func (b *Broker) PutSchema(ctx context.Context, name, typeIRI string, schema []byte) (*schemas.Model, bool, error) {
	if b.schemas == nil {
		return nil, false, fmt.Errorf("%w: this broker has no data model registry", ErrOperationNotSupported)
	}
	return b.schemas.put(ctx, name, typeIRI, schema)
}

// DeleteSchema removes a data model (embedded ones too) on every replica,
// for good: a restart does not bring it back.
func (b *Broker) DeleteSchema(ctx context.Context, name string) error {
	if b.schemas == nil {
		return fmt.Errorf("%w: this broker has no data model registry", ErrOperationNotSupported)
	}
	return b.schemas.delete(ctx, name)
}
