package broker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestChangesArePublished subscribes to piazza.> as an app would, with core
// NATS, and checks every change arrives on the documented subject with the
// documented headers and payload, even for an id no subject could carry raw.
func TestChangesArePublished(t *testing.T) {
	b, ns := startBroker(t, Options{})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("piazza.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := "urn:ngsi-ld:Ufficio:Mantova.Anagrafe*/#é+$%"
	e := mustParse(t, `{"id":"`+id+`","type":["Ufficio","PointOfInterest"],"open":true}`, ParseOptions{})
	if _, err := b.Create(ctx, "mantova", e); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Merge(ctx, "mantova", id, mustParse(t, `{"open":false}`, ParseOptions{Fragment: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(ctx, "mantova", id); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{OpCreate, OpMerge, OpDelete} {
		select {
		case m := <-msgs:
			tenant, typ, gotID, err := ParseSubject(m.Subject)
			if err != nil || tenant != "mantova" || typ != "Ufficio" || gotID != id {
				t.Fatalf("subject %q decodes to %q %q %q %v", m.Subject, tenant, typ, gotID, err)
			}
			if m.Header.Get(HeaderOp) != want || m.Header.Get(HeaderVersion) != PayloadVersion {
				t.Fatalf("headers %v, want op %s", m.Header, want)
			}
			if got := m.Header.Values(HeaderType); len(got) != 2 || got[1] != "PointOfInterest" {
				t.Fatalf("types header %v", got)
			}
			v, err := DecodeJSON(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			obj := v.(map[string]any)
			if obj["id"] != id {
				t.Fatalf("payload id %v", obj["id"])
			}
			if want == OpMerge {
				if open := obj["open"].(map[string]any)["value"]; open != false {
					t.Fatalf("payload holds open=%v, want the new state", open)
				}
			}
			if want == OpDelete {
				if _, ok := obj["deletedAt"]; !ok || obj["open"] != nil {
					t.Fatalf("tombstone payload %s", m.Data)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s message", want)
		}
	}
}
