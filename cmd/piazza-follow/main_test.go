package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/piazza-city/piazza/broker"
)

// startPiazza runs an embedded nats-server (random port, JetStream in a temp
// dir, WebSocket listener on) with a broker, as piazza serve does.
func startPiazza(t *testing.T) (*broker.Broker, *broker.EmbeddedNATS) {
	t.Helper()
	ns, err := broker.StartEmbeddedNATS(broker.EmbeddedOptions{
		DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1", WebSocketAddr: "127.0.0.1:-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := broker.New(context.Background(), broker.Options{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, ns
}

// syncBuf is a bytes.Buffer safe for the app writing and the test reading.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// app is piazza-follow running in the test's process.
type app struct {
	stdout, stderr syncBuf
	cancel         context.CancelFunc
	code           chan int
}

func startApp(t *testing.T, args ...string) *app {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{cancel: cancel, code: make(chan int, 1)}
	go func() { a.code <- run(ctx, args, func(string) string { return "" }, &a.stdout, &a.stderr) }()
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop ends the app as a signal would and checks it exits 0.
func (a *app) stop(t *testing.T) {
	a.cancel()
	select {
	case code, ok := <-a.code:
		if ok && code != 0 {
			t.Errorf("exit code %d; stderr: %s", code, a.stderr.String())
		}
		close(a.code)
	case <-time.After(10 * time.Second):
		t.Error("the app did not stop within 10s")
	}
}

// waitStderr polls until stderr contains s.
func (a *app) waitStderr(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr has no %q: %s", s, a.stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling, with a deadline
	}
}

// waitLines polls until stdout has n lines and returns them decoded.
func (a *app) waitLines(t *testing.T, n int) []change {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := a.stdout.String()
		if strings.Count(out, "\n") >= n {
			var cs []change
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var c change
				if err := json.Unmarshal([]byte(l), &c); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				cs = append(cs, c)
			}
			if len(cs) != n {
				t.Fatalf("%d lines, want %d:\n%s", len(cs), n, out)
			}
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines of %d after 10s:\n%s\nstderr: %s", strings.Count(out, "\n"), n, out, a.stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling, with a deadline
	}
}

func write(t *testing.T, b *broker.Broker, op, tenant, body string) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch op {
	case "create":
		e := parse(t, body, false)
		_, err = b.Create(ctx, tenant, e)
	case "merge":
		e := parse(t, body, true)
		_, err = b.Merge(ctx, tenant, e.ID, e)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func parse(t *testing.T, body string, fragment bool) *broker.Entity {
	t.Helper()
	v, err := broker.DecodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if fragment {
		m := v.(map[string]any)
		id := m["id"].(string)
		delete(m, "id")
		e, err := broker.ParseEntity(m, broker.ParseOptions{Fragment: true})
		if err != nil {
			t.Fatal(err)
		}
		e.ID = id
		return e
	}
	e, err := broker.ParseEntity(v, broker.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func checkChange(t *testing.T, c change, seq uint64, op, tenant, id, attr string, value float64) {
	t.Helper()
	if c.Seq != seq || c.Op != op || c.Tenant != tenant || c.Type != "Sensor" || c.ID != id {
		t.Fatalf("got %+v, want seq %d op %s tenant %q Sensor %s", c, seq, op, tenant, id)
	}
	if seq != 0 && c.Time == "" {
		t.Fatalf("replayed change without its time: %+v", c)
	}
	var e map[string]json.RawMessage
	var a struct {
		Value float64 `json:"value"`
	}
	if err := json.Unmarshal(c.Entity, &e); err != nil || json.Unmarshal(e[attr], &a) != nil || a.Value != value {
		t.Fatalf("entity %s, want %s = %v (%v)", c.Entity, attr, value, err)
	}
}

// TestFollowLive follows one type live, over plain NATS and over the
// WebSocket listener, and sees its changes and none of another type's.
func TestFollowLive(t *testing.T) {
	b, ns := startPiazza(t)
	for i, url := range []string{ns.ClientURL(), ns.WebSocketURL()} {
		tenant := []string{"", "mantova.città"}[i]
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			a := startApp(t, "-nats-url", url, "-tenant", tenant, "Sensor")
			a.waitStderr(t, "following piazza.")
			id := "urn:ngsi-ld:Sensor:live.1"
			write(t, b, "create", tenant, `{"id":"`+id+`","type":"Sensor","level":1}`)
			write(t, b, "create", tenant, `{"id":"urn:ngsi-ld:Other:1","type":"Other","level":9}`)
			write(t, b, "merge", tenant, `{"id":"`+id+`","level":2}`)
			cs := a.waitLines(t, 2)
			checkChange(t, cs[0], 0, "create", tenant, id, "level", 1)
			checkChange(t, cs[1], 0, "merge", tenant, id, "level", 2)
		})
	}
}

// TestFollowReplay replays from a sequence, from a time and from the current
// state, then keeps following live.
func TestFollowReplay(t *testing.T) {
	for _, c := range []struct {
		name string
		args func(t0 time.Time) []string
		// want lists the (seq, id, level) replayed before the live change.
		want []struct {
			seq   uint64
			id    string
			level float64
		}
	}{
		{"from-seq", func(time.Time) []string { return []string{"-from-seq", "3"} },
			[]struct {
				seq   uint64
				id    string
				level float64
			}{{3, "urn:s1", 2}, {4, "urn:s2", 5}}},
		{"from-time", func(t0 time.Time) []string { return []string{"-from-time", t0.Format(time.RFC3339Nano)} },
			[]struct {
				seq   uint64
				id    string
				level float64
			}{{3, "urn:s1", 2}, {4, "urn:s2", 5}}},
		{"current", func(time.Time) []string { return []string{"-current"} },
			[]struct {
				seq   uint64
				id    string
				level float64
			}{{3, "urn:s1", 2}, {4, "urn:s2", 5}}},
		{"from-seq 1", func(time.Time) []string { return []string{"-from-seq", "1"} },
			[]struct {
				seq   uint64
				id    string
				level float64
			}{{1, "urn:s1", 1}, {3, "urn:s1", 2}, {4, "urn:s2", 5}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, ns := startPiazza(t)
			write(t, b, "create", "", `{"id":"urn:s1","type":"Sensor","level":1}`) // seq 1
			write(t, b, "create", "", `{"id":"urn:o1","type":"Other","level":1}`)  // seq 2
			t0 := time.Now()                                                       // after seq 2 was committed
			write(t, b, "merge", "", `{"id":"urn:s1","level":2}`)                  // seq 3
			write(t, b, "create", "", `{"id":"urn:s2","type":"Sensor","level":5}`) // seq 4
			a := startApp(t, append(append([]string{"-nats-url", ns.ClientURL()}, c.args(t0)...), "Sensor")...)
			a.waitStderr(t, "replaying piazza.@.Sensor.> of stream PIAZZA")
			cs := a.waitLines(t, len(c.want))
			for i, w := range c.want {
				op := "create"
				if w.seq == 3 {
					op = "merge"
				}
				checkChange(t, cs[i], w.seq, op, "", w.id, "level", w.level)
			}
			write(t, b, "merge", "", `{"id":"urn:s2","level":6}`) // seq 5, live
			cs = a.waitLines(t, len(c.want)+1)
			checkChange(t, cs[len(c.want)], 5, "merge", "", "urn:s2", "level", 6)
		})
	}
}

// TestFollowFlags: help, and clear errors for bad use.
func TestFollowFlags(t *testing.T) {
	for _, c := range []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		inStderr string
	}{
		{"help", []string{"-h"}, nil, 0, "Usage: piazza-follow [flags] <Type>"},
		{"help lists flags", []string{"-h"}, nil, 0, "-from-seq"},
		{"no type", nil, nil, 2, "give exactly one entity type"},
		{"two types", []string{"A", "B"}, nil, 2, "give exactly one entity type"},
		{"bad time", []string{"-from-time", "yesterday", "A"}, nil, 2, `-from-time "yesterday" is not an RFC 3339 time`},
		{"two modes", []string{"-from-seq", "3", "-current", "A"}, nil, 2, "exclude each other"},
		{"unknown flag", []string{"-follow", "A"}, nil, 2, "flag provided but not defined: -follow"},
		{"no NATS", []string{"-nats-url", "nats://127.0.0.1:1", "A"}, nil, 1, "cannot connect to NATS at nats://127.0.0.1:1"},
		{"no NATS from env", []string{"A"}, map[string]string{"PIAZZA_NATS_URL": "nats://127.0.0.1:2"}, 1, "cannot connect to NATS at nats://127.0.0.1:2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr syncBuf
			code := run(context.Background(), c.args, func(k string) string { return c.env[k] }, &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.code, c.inStderr)
			}
		})
	}
}

// TestFollowNoStream: replaying a tenant Piazza never wrote to says so.
func TestFollowNoStream(t *testing.T) {
	_, ns := startPiazza(t)
	var stdout, stderr syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := run(ctx, []string{"-nats-url", ns.ClientURL(), "-tenant", "nobody", "-current", "Sensor"}, func(string) string { return "" }, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no stream holds piazza.nobody.Sensor.>") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// FuzzTokenCodec: the app's own token codec, written from the README, agrees
// with Piazza's on every string.
func FuzzTokenCodec(f *testing.F) {
	for _, s := range []string{"", "urn:ngsi-ld:Sensor:1", "MN.1", "a b/c#d+e*f>", "città", "%", "@", "%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := encodeToken(s)
		if tok != broker.EncodeToken(s) {
			t.Fatalf("%q: app %q, broker %q", s, tok, broker.EncodeToken(s))
		}
		back, err := decodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("%q -> %q -> %q %v", s, tok, back, err)
		}
	})
}
