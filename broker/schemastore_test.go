package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/piazza-city/piazza/schemas"
)

const bicycleSchema = `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
 "properties":{"wheels":{"type":"integer","minimum":2}},"required":["wheels"]}`

// schemaBroker starts a broker on ns with a registry of its own, as a
// replica on its own machine would have.
func schemaBroker(t *testing.T, ns *EmbeddedNATS) *Broker {
	t.Helper()
	reg, err := schemas.NewRegistry(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return brokerOn(t, ns, Options{Validator: validator(t, reg, ValidationConfig{})})
}

// eventually polls cond until it holds or five seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSchemaStoreSharesModelsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	a, b := schemaBroker(t, ns), schemaBroker(t, ns)

	m, existed, err := a.PutSchema(ctx, "Bicycle", "", []byte(bicycleSchema))
	if err != nil || existed {
		t.Fatalf("put: existed=%v err=%v", existed, err)
	}
	if _, ok := a.SchemaRegistry().Get("Bicycle"); !ok {
		t.Fatal("the replica that answered does not have the model at once")
	}
	eventually(t, "replica B has the model A put", func() bool {
		got, ok := b.SchemaRegistry().Get("Bicycle")
		return ok && got.TypeIRI == m.TypeIRI
	})
	// B now enforces it.
	_, err = b.Create(ctx, "", mustParse(t, `{"id":"urn:ngsi-ld:Bicycle:1","type":"Bicycle","wheels":1}`, ParseOptions{}))
	var be *Error
	if !errors.As(err, &be) || !errors.Is(be.Kind, ErrBadRequestData) {
		t.Fatalf("B accepted an entity the model refuses: %v", err)
	}

	// A schema that does not compile is refused and nothing is stored.
	if _, _, err := a.PutSchema(ctx, "Broken", "", []byte(`{"type":"object","properties":{"x":{"$ref":"#/nowhere"}}}`)); err == nil {
		t.Fatal("a schema with a dangling $ref was accepted")
	}
	if _, err := a.schemas.kv.Get(ctx, "Broken"); err == nil {
		t.Fatal("a refused schema reached the bucket")
	}

	// Deleting an embedded model reaches the other replica too.
	if _, ok := b.SchemaRegistry().Get("AirQualityObserved"); !ok {
		t.Fatal("embedded model missing")
	}
	if err := a.DeleteSchema(ctx, "AirQualityObserved"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica B lost the model A deleted", func() bool {
		_, ok := b.SchemaRegistry().Get("AirQualityObserved")
		return !ok
	})
	if err := a.DeleteSchema(ctx, "NoSuchModel"); !errors.Is(err, schemas.ErrModelNotFound) {
		t.Fatalf("delete of an unknown model: %v", err)
	}

	// Replacing a model: the new version wins everywhere.
	v2 := `{"type":"object","properties":{"wheels":{"type":"integer","minimum":3}}}`
	if _, existed, err := b.PutSchema(ctx, "Bicycle", "", []byte(v2)); err != nil || !existed {
		t.Fatalf("replace: existed=%v err=%v", existed, err)
	}
	eventually(t, "replica A has B's new version", func() bool {
		got, ok := a.SchemaRegistry().Get("Bicycle")
		return ok && string(got.Schema()) == v2
	})

	// A replica started later (or after a restart) loads the same models
	// before it serves.
	c := schemaBroker(t, ns)
	if got, ok := c.SchemaRegistry().Get("Bicycle"); !ok || string(got.Schema()) != v2 {
		t.Fatalf("new replica: Bicycle = %v, %v", ok, got)
	}
	if _, ok := c.SchemaRegistry().Get("AirQualityObserved"); ok {
		t.Fatal("new replica brought back a deleted model")
	}
}

func TestSchemaStoreUndoesWhenNATSIsGone(t *testing.T) {
	ctx := context.Background()
	ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	a := schemaBroker(t, ns)
	ns.Shutdown()
	eventually(t, "connection lost", func() bool { return !a.nc.IsConnected() })
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, _, err := a.PutSchema(tctx, "Bicycle", "", []byte(bicycleSchema)); err == nil {
		t.Fatal("put succeeded without NATS")
	}
	if _, ok := a.SchemaRegistry().Get("Bicycle"); ok {
		t.Fatal("a model that was not stored stayed installed")
	}
	if err := a.DeleteSchema(tctx, "AirQualityObserved"); err == nil {
		t.Fatal("delete succeeded without NATS")
	}
	if _, ok := a.SchemaRegistry().Get("AirQualityObserved"); !ok {
		t.Fatal("a deletion that was not stored stayed applied")
	}
}
