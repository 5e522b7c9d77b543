package broker

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
)

// startBroker runs an embedded nats-server (random port, JetStream in a temp
// dir) and a broker on it, both stopped at the end of the test.
func startBroker(t testing.TB, o Options) (*Broker, *EmbeddedNATS) {
	t.Helper()
	ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b := brokerOn(t, ns, o)
	return b, ns
}

func brokerOn(t testing.TB, ns *EmbeddedNATS, o Options) *Broker {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	o.Conn = nc
	b, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func mustParse(t testing.TB, js string, o ParseOptions) *Entity {
	t.Helper()
	v, err := DecodeJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEntity(v, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
