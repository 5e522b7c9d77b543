package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startListenersBroker runs an embedded nats-server with its MQTT and
// WebSocket listeners on random ports, and a broker on it.
func startListenersBroker(t *testing.T) (*Broker, *EmbeddedNATS) {
	t.Helper()
	ns, err := StartEmbeddedNATS(EmbeddedOptions{
		DataDir: t.TempDir(), ClientAddr: "off", MQTTAddr: "127.0.0.1:-1", WebSocketAddr: "127.0.0.1:-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return brokerOn(t, ns, Options{}), ns
}

// checkChangePayload checks a change's payload is the documented one: the
// full entity in normalized form with createdAt and modifiedAt, or for a
// delete {"id", "type", "deletedAt"}.
func checkChangePayload(t *testing.T, data []byte, id, op string, wantAttr string, wantValue any) {
	t.Helper()
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("payload %q: %v", data, err)
	}
	obj, _ := v.(map[string]any)
	if obj["id"] != id {
		t.Fatalf("payload id %v, want %q: %s", obj["id"], id, data)
	}
	if op == OpDelete {
		if _, ok := obj["deletedAt"].(string); !ok || obj["type"] == nil || len(obj) != 3 {
			t.Fatalf("delete payload %s", data)
		}
		return
	}
	for _, k := range []string{"type", "createdAt", "modifiedAt"} {
		if obj[k] == nil {
			t.Fatalf("payload has no %s: %s", k, data)
		}
	}
	attr, _ := obj[wantAttr].(map[string]any)
	if attr["type"] != "Property" || fmt.Sprint(attr["value"]) != fmt.Sprint(wantValue) {
		t.Fatalf("payload attribute %s = %v, want a Property of value %v: %s", wantAttr, obj[wantAttr], wantValue, data)
	}
}

// TestMQTTListenerDeliversChanges: with the MQTT listener on, Debian's
// mosquitto_sub subscribed to piazza/# receives each change written through
// the broker, on topic piazza/<tenant>/<Type>/<id> (the subject with '/' for
// '.'), with the documented payload, even for an id full of characters a
// topic could not carry raw.
func TestMQTTListenerDeliversChanges(t *testing.T) {
	b, ns := startListenersBroker(t)
	for _, qos := range []string{"0", "1"} {
		t.Run("qos"+qos, func(t *testing.T) {
			sub := startMosquittoSub(t, ns.MQTTAddr(), "piazza/#", int(qos[0]-'0'))
			ctx := context.Background()
			tenant := "mantova" + qos
			id := "urn:ngsi-ld:Ufficio:MN.1/Anagrafe#2+é*"
			e := mustParse(t, `{"id":"`+id+`","type":"Ufficio","open":true}`, ParseOptions{})
			if _, err := b.Create(ctx, tenant, e); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Merge(ctx, tenant, id, mustParse(t, `{"open":false}`, ParseOptions{Fragment: true})); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Delete(ctx, tenant, id); err != nil {
				t.Fatal(err)
			}
			wantTopic := "piazza/" + tenant + "/Ufficio/urn:ngsi-ld:Ufficio:MN%2E1%2FAnagrafe%232%2B%C3%A9%2A"
			if strings.ReplaceAll(Subject(tenant, "Ufficio", id), ".", "/") != wantTopic {
				t.Fatalf("the documented mapping disagrees with Subject: %s", Subject(tenant, "Ufficio", id))
			}
			for _, step := range []struct {
				op    string
				value any
			}{{OpCreate, true}, {OpMerge, false}, {OpDelete, nil}} {
				line := sub.next(t, 10*time.Second)
				topic, payload, _ := strings.Cut(line, " ")
				if topic != wantTopic {
					t.Fatalf("%s: topic %q, want %q", step.op, topic, wantTopic)
				}
				checkChangePayload(t, []byte(payload), id, step.op, "open", step.value)
			}
		})
	}
}

// TestWebSocketListener: a NATS client connected over ws:// receives changes
// live with their headers, and replays them with a JetStream consumer.
func TestWebSocketListener(t *testing.T) {
	b, ns := startListenersBroker(t)
	wsURL := ns.WebSocketURL()
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") || strings.HasSuffix(wsURL, ":-1") {
		t.Fatalf("WebSocket URL %q", wsURL)
	}
	nc, err := nats.Connect(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 8)
	if _, err := nc.ChanSubscribe("piazza.@.Sensor.>", msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := "urn:ngsi-ld:Sensor:ws.1"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"Sensor","level":3}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Subject != "piazza.@.Sensor.urn:ngsi-ld:Sensor:ws%2E1" || m.Header.Get(HeaderOp) != OpCreate || m.Header.Get(HeaderVersion) != "1" {
			t.Fatalf("got %s %v", m.Subject, m.Header)
		}
		checkChangePayload(t, m.Data, id, OpCreate, "level", 3)
	case <-ctx.Done():
		t.Fatal("no change over WebSocket")
	}
	// Replay over the same WebSocket connection.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, "PIAZZA", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"piazza.@.Sensor.>"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m.Headers().Get(HeaderOp) != OpCreate {
		t.Fatalf("replayed %s %v", m.Subject(), m.Headers())
	}
	checkChangePayload(t, m.Data(), id, OpCreate, "level", 3)
}

// TestListenerAddrErrors: a bad or busy MQTT or WebSocket address fails the
// start at once with an error naming the listener.
func TestListenerAddrErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name      string
		mqtt, ws  string
		wantInErr string
	}{
		{"mqtt no port", "localhost", "", `MQTT address "localhost"`},
		{"mqtt bad port", "localhost:x", "", `MQTT address "localhost:x": bad port`},
		{"ws bad port", "", "127.0.0.1:70000", `WebSocket address "127.0.0.1:70000": bad port`},
		{"mqtt busy", busy.Addr().String(), "", "cannot listen for MQTT on " + busy.Addr().String()},
		{"ws busy", "", busy.Addr().String(), "cannot listen for WebSocket on " + busy.Addr().String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "off", MQTTAddr: c.mqtt, WebSocketAddr: c.ws})
			if err == nil {
				ns.Shutdown()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.wantInErr) || time.Since(start) > 5*time.Second {
				t.Fatalf("error %v after %s, want it to contain %q", err, time.Since(start), c.wantInErr)
			}
		})
	}
}

// TestListenersCannotWriteTheLog: MQTT and WebSocket clients read the log
// but cannot write into it or destroy it; Piazza itself still writes.
func TestListenersCannotWriteTheLog(t *testing.T) {
	b, ns := startListenersBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"urn:ngsi-ld:Sensor:1","type":"Sensor","level":1}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	inproc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer inproc.Close()
	seen := make(chan *nats.Msg, 64)
	for _, subj := range []string{"piazza.>", "probe.>"} {
		if _, err := inproc.ChanSubscribe(subj, seen); err != nil {
			t.Fatal(err)
		}
	}
	if err := inproc.Flush(); err != nil {
		t.Fatal(err)
	}
	// waitProbe drains what the in-process subscriber saw until the probe
	// subject arrives, failing on anything on piazza.>.
	waitProbe := func(probe string) {
		t.Helper()
		for {
			select {
			case m := <-seen:
				if strings.HasPrefix(m.Subject, "piazza.") {
					t.Fatalf("an app wrote into the log: %s %s", m.Subject, m.Data)
				}
				if m.Subject == probe {
					return
				}
			case <-ctx.Done():
				t.Fatalf("probe %s never arrived", probe)
			}
		}
	}

	// MQTT: a publish into piazza/... goes nowhere; one elsewhere passes
	// (MQTT notifications to the embedded listener keep working).
	p := NewMQTTPublisher(nil)
	defer p.Close()
	_ = p.Publish(ctx, mustURL(t, "mqtt://"+ns.MQTTAddr()+"/piazza/@/Sensor/urn:ngsi-ld:Sensor:fake"), 1, []byte(`{"id":"urn:ngsi-ld:Sensor:fake"}`))
	if err := p.Publish(ctx, mustURL(t, "mqtt://"+ns.MQTTAddr()+"/probe/mqtt"), 1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	waitProbe("probe.mqtt")

	// WebSocket: no publish into the log, no stream deletion or purge.
	ws, err := nats.Connect(ns.WebSocketURL(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.Publish("piazza.@.Sensor.urn:ngsi-ld:Sensor:fake", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := ws.Publish("probe.ws", nil); err != nil {
		t.Fatal(err)
	}
	waitProbe("probe.ws")
	js, err := jetstream.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := js.DeleteStream(short, "PIAZZA"); err == nil {
		t.Fatal("an app deleted the log")
	}
	st, err := js.Stream(ctx, "PIAZZA")
	if err != nil {
		t.Fatalf("apps cannot read stream info: %v", err)
	}
	if err := st.Purge(short); err == nil {
		t.Fatal("an app purged the log")
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("log holds %v messages (%v), want 1", info.State.Msgs, err)
	}
	// Piazza still writes.
	if _, err := b.Merge(ctx, "", "urn:ngsi-ld:Sensor:1", mustParse(t, `{"level":2}`, ParseOptions{Fragment: true})); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkChangeToSubscriber measures, one change at a time, the time from
// the start of a write (b.Merge) to its arrival at an app subscribed to
// piazza.@.Sensor.>, over the NATS client listener and over WebSocket; it
// reports p50 and p99 in milliseconds.
func BenchmarkChangeToSubscriber(b *testing.B) {
	for _, via := range []string{"nats", "websocket"} {
		b.Run(via, func(b *testing.B) {
			ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: b.TempDir(), ClientAddr: "127.0.0.1:-1", WebSocketAddr: "127.0.0.1:-1"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(ns.Shutdown)
			br := brokerOn(b, ns, Options{})
			url := ns.ClientURL()
			if via == "websocket" {
				url = ns.WebSocketURL()
			}
			nc, err := nats.Connect(url)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			got := make(chan time.Time, 1)
			if _, err := nc.Subscribe("piazza.@.Sensor.>", func(*nats.Msg) { got <- time.Now() }); err != nil {
				b.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			id := "urn:ngsi-ld:Sensor:bench"
			if _, err := br.Create(ctx, "", mustParse(b, `{"id":"`+id+`","type":"Sensor","level":0}`, ParseOptions{})); err != nil {
				b.Fatal(err)
			}
			<-got
			frags := make([]*Entity, 1000)
			for i := range frags {
				frags[i] = mustParse(b, fmt.Sprintf(`{"level":%d}`, i+1), ParseOptions{Fragment: true})
			}
			var lat []time.Duration
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if _, err := br.Merge(ctx, "", id, frags[i%len(frags)]); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-got).Sub(start))
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}
