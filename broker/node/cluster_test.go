package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
)

// The broker's write timeout (broker.Options.WriteTimeout's default, which
// the node keeps): no request may take longer than this and a margin for
// the answer to travel.
const (
	clusterWriteTimeout = 10 * time.Second
	clusterAnswerMargin = 3 * time.Second
	// clusterRecovery bounds the time from a NATS node's stop to the first
	// write started after it and acknowledged, through each Piazza. The
	// writes in flight on a stream leader that stops are never answered by
	// NATS and hold their writer for the write timeout (then 503).
	clusterRecovery = clusterWriteTimeout + 5*time.Second
)

// longClusterTests runs every victim and longer loads (PIAZZA_TEST_LONG=1).
func longClusterTests() bool { return os.Getenv("PIAZZA_TEST_LONG") != "" }

// clusterLogger logs the nodes to stderr with PIAZZA_TEST_LOG=1, else nowhere.
func clusterLogger(name string) *slog.Logger {
	if os.Getenv("PIAZZA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("piazza", name)
}

// clusterPiazza is one Piazza node on the cluster.
type clusterPiazza struct {
	name string
	node *Node
	base string // http://host:port
}

// startClusterPiazza starts a Piazza on the cluster with streams of three
// replicas. urls is its --nats-url (one server or a list).
func startClusterPiazza(t *testing.T, name string, urls string) *clusterPiazza {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{HTTPAddr: "127.0.0.1:0", NATSURL: urls, Replicas: 3, Logger: clusterLogger(name), Version: "test"})
	if err != nil {
		t.Fatalf("piazza %s on %s: %v", name, urls, err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	t.Logf("piazza %s started on %s in %v", name, n.nc.ConnectedServerName(), time.Since(start).Round(time.Millisecond))
	return &clusterPiazza{name: name, node: n, base: "http://" + n.HTTPAddr()}
}

// answer is one HTTP exchange as the load saw it.
type answer struct {
	code    int
	body    string
	header  http.Header
	took    time.Duration
	err     error
	started time.Time
}

func exchange(ctx context.Context, client *http.Client, method, url, body string) answer {
	a := answer{started: time.Now()}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		a.err = err
		return a
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		a.err, a.took = err, time.Since(a.started)
		return a
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	a.code, a.body, a.header, a.err, a.took = resp.StatusCode, string(b), resp.Header, err, time.Since(a.started)
	return a
}

// unavailable reports whether a is a clear 503: a ProblemDetails body
// with the status and a type, and Retry-After.
func (a answer) unavailable() bool {
	if a.code != http.StatusServiceUnavailable || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") ||
		a.header.Get("Retry-After") == "" {
		return false
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	return json.Unmarshal([]byte(a.body), &p) == nil && p.Status == 503 && p.Type != "" && p.Detail != ""
}

func (a answer) String() string {
	if a.err != nil {
		return fmt.Sprintf("error after %v: %v", a.took.Round(time.Millisecond), a.err)
	}
	return fmt.Sprintf("%d after %v: %s", a.code, a.took.Round(time.Millisecond), a.body)
}

// clusterLoad is the writers and readers that run while a NATS node stops.
type clusterLoad struct {
	client  *http.Client
	piazzas []*clusterPiazza

	mu sync.Mutex
	// created maps every acknowledged creation to the value it wrote.
	created map[string]int
	// counters are the entities each writer PATCHes: the last value
	// acknowledged and the last one tried (a 503 may still have committed).
	counters map[string]*counter
	bad      []string // answers that are neither success nor a clear 503
	// acked and refused count answers per Piazza; ackedAfter counts the
	// writes started after the stop that were acknowledged, and firstAck
	// is the first of them.
	acked, refused, ackedAfter []int
	firstAck                   []time.Duration
	// slowest is the longest write per Piazza; took their total time.
	slowest, took []time.Duration
	stopAt        time.Time
	reads         atomic.Int64
}

type counter struct {
	piazza       int
	acked, tried int
}

func newClusterLoad(client *http.Client, piazzas []*clusterPiazza) *clusterLoad {
	n := len(piazzas)
	return &clusterLoad{client: client, piazzas: piazzas, created: map[string]int{}, counters: map[string]*counter{},
		acked: make([]int, n), refused: make([]int, n), ackedAfter: make([]int, n), firstAck: make([]time.Duration, n),
		slowest: make([]time.Duration, n), took: make([]time.Duration, n)}
}

// note classifies a write's answer. want is the success code.
func (l *clusterLoad) note(p int, what string, a answer, want int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest[p] = max(l.slowest[p], a.took)
	l.took[p] += a.took
	switch {
	case a.err == nil && a.code == want && a.took <= clusterWriteTimeout+clusterAnswerMargin:
		l.acked[p]++
		if !l.stopAt.IsZero() && a.started.After(l.stopAt) {
			if l.ackedAfter[p] == 0 {
				l.firstAck[p] = a.started.Add(a.took).Sub(l.stopAt)
			}
			l.ackedAfter[p]++
		}
		return true
	case a.err == nil && a.unavailable() && a.took <= clusterWriteTimeout+clusterAnswerMargin:
		l.refused[p]++
		return false
	}
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf("piazza %s: %s: %s", l.piazzas[p].name, what, a))
	}
	return false
}

// write runs one writer until ctx ends: it creates a new entity, then
// PATCHes its own counter, in turns, through Piazza p.
func (l *clusterLoad) write(ctx context.Context, w, p int) {
	base := l.piazzas[p].base
	cid := fmt.Sprintf("urn:ngsi-ld:Counter:w%d", w)
	c := &counter{piazza: p}
	for refused := false; ; refused = true {
		a := exchange(ctx, l.client, "POST", base+"/ngsi-ld/v1/entities",
			fmt.Sprintf(`{"id":%q,"type":"Counter","count":{"type":"Property","value":0}}`, cid))
		if ctx.Err() != nil {
			return
		}
		if refused && a.code == http.StatusConflict {
			break // the refused creation was committed all the same
		}
		if l.note(p, "create "+cid, a, http.StatusCreated) {
			break
		}
	}
	l.mu.Lock()
	l.counters[cid] = c
	l.mu.Unlock()
	for k := 1; ; k++ {
		id := fmt.Sprintf("urn:ngsi-ld:Counter:w%d-%d", w, k)
		a := exchange(ctx, l.client, "POST", base+"/ngsi-ld/v1/entities",
			fmt.Sprintf(`{"id":%q,"type":"Counter","count":{"type":"Property","value":%d}}`, id, k))
		if ctx.Err() != nil {
			return
		}
		if l.note(p, "create "+id, a, http.StatusCreated) {
			l.mu.Lock()
			l.created[id] = k
			l.mu.Unlock()
		}
		l.mu.Lock()
		c.tried = k
		l.mu.Unlock()
		a = exchange(ctx, l.client, "PATCH", base+"/ngsi-ld/v1/entities/"+cid+"/attrs",
			fmt.Sprintf(`{"count":{"type":"Property","value":%d}}`, k))
		if ctx.Err() != nil {
			return
		}
		if l.note(p, "patch "+cid, a, http.StatusNoContent) {
			l.mu.Lock()
			c.acked = k
			l.mu.Unlock()
		}
	}
}

// read runs one reader until ctx ends: it reads back, through Piazza p,
// counters whose PATCHes p acknowledged, and finds at least the value last
// acknowledged when the read began (read-your-writes holds on the writer's
// own Piazza, cluster failover or not).
func (l *clusterLoad) read(ctx context.Context, p int) {
	base := l.piazzas[p].base
	for ctx.Err() == nil {
		var id string
		var least int
		l.mu.Lock()
		for cid, c := range l.counters { // map order: a random one
			if c.piazza == p && c.acked > 0 {
				id, least = cid, c.acked
				break
			}
		}
		l.mu.Unlock()
		if id == "" {
			// Nothing acknowledged yet: ask for one that cannot exist.
			id = "urn:ngsi-ld:Counter:none-" + strconv.Itoa(rand.IntN(1000))
		}
		a := exchange(ctx, l.client, "GET", base+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
		if ctx.Err() != nil {
			return
		}
		l.reads.Add(1)
		want := http.StatusOK
		if least == 0 {
			want = http.StatusNotFound
		}
		var e struct{ Count int }
		if a.code == http.StatusOK && (json.Unmarshal([]byte(a.body), &e) != nil || e.Count < least) {
			a.err = fmt.Errorf("count %d, older than the acknowledged %d (%s)", e.Count, least, a.body)
		}
		if a.err != nil || a.code != want || a.took > clusterAnswerMargin {
			l.mu.Lock()
			if len(l.bad) < 20 {
				l.bad = append(l.bad, fmt.Sprintf("piazza %s: read %s: %s", l.piazzas[p].name, id, a))
			}
			l.mu.Unlock()
		}
	}
}

// TestClusterSurvivesNATSNodeStop runs two Piazzas on a three-node NATS
// cluster (JetStream, streams of three replicas): writes through one are
// read through the other; then, under load from several writers on each
// Piazza, one NATS node stops. While the cluster elects new leaders, writes
// may be refused, but only with a clear 503 ProblemDetails within the
// write timeout, never a 500 or a hang; reads keep answering, and find
// every write their Piazza acknowledged; writes succeed again through both
// Piazzas within a bound; and every acknowledged write is read back
// through both Piazzas.
//
// The embedded servers stop as a nats-server does on SIGTERM, handing their
// Raft leaderships over first; the writes in flight on a stream leader that
// stops get no answer and wait for the write timeout (503). The crash case
// (PIAZZA_TEST_LONG=1) kills a nats-server process instead. Each case
// starts Piazza B again until things land where the case needs them (the
// leaders, B's connection, the node of B's read-model consumer).
func TestClusterSurvivesNATSNodeStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	// A case picks, from where things landed, the NATS server Piazza A
	// connects to and the one to stop; ok false starts Piazza B again for
	// another placement of its read model's consumer.
	type placement = clusterPlacement
	follower := func(p placement, not ...int) int {
		for i := range 3 {
			if i != p.streamLeader && i != p.metaLeader && !slices.Contains(not, i) {
				return i
			}
		}
		return -1
	}
	cases := []struct {
		name  string
		long  bool
		place func(p placement) (aConn, victim int, ok bool)
		// maxWrite bounds every write's answer.
		maxWrite time.Duration
		// crash runs the third NATS node as a process, makes it lead the
		// stream, and kills it (SIGKILL): no leadership is handed over.
		crash bool
		// recovery bounds the first acknowledged write started after the
		// stop (default clusterRecovery).
		recovery time.Duration
	}{
		// Piazza A's connection moves to another node; the cluster's
		// leaders stay.
		{name: "piazza's node", maxWrite: 6 * time.Second, place: func(p placement) (int, int, bool) {
			v := follower(p, p.bConn)
			return v, v, v >= 0
		}},
		// Both Piazzas stay connected; the stream's leadership moves, and the
		// writes in flight on the old leader wait for the write timeout.
		{name: "stream leader", maxWrite: clusterWriteTimeout + clusterAnswerMargin, place: func(p placement) (int, int, bool) {
			a := follower(p)
			return a, p.streamLeader, p.bConn != p.streamLeader
		}},
		// Piazza B stays connected, but the consumer that feeds its read
		// model lives on the node that stops: B notices by the missed
		// heartbeats and creates another.
		{name: "node of a read model's consumer", maxWrite: 6 * time.Second, place: func(p placement) (int, int, bool) {
			v := p.bConsumer
			return p.bConn, v, v != p.bConn && v != p.streamLeader
		}},
		// Piazza A is connected to the JetStream meta leader that stops.
		// This fails about one run in two today: A's read model stops for
		// 10s, its writes are answered only at the write timeout and its
		// own reads are stale meanwhile. On reconnecting, nats.go's
		// ordered consumer creates a new consumer at once, while the meta
		// group has no leader yet; nats-server drops that request, and
		// nats.go waits 10s (fixed) before it tries again.
		{name: "meta leader and piazza's node", long: true, maxWrite: 6 * time.Second, place: func(p placement) (int, int, bool) {
			return p.metaLeader, p.metaLeader, p.bConn != p.metaLeader && p.metaLeader != p.streamLeader
		}},
		// The stream leader crashes: the two other nodes elect a new one
		// after their election timeout (4-9s); the writes sent meanwhile
		// get no answer from NATS and a 503 at the write timeout.
		{name: "stream leader crashes", long: true, crash: true, maxWrite: clusterWriteTimeout + clusterAnswerMargin,
			recovery: 2*clusterWriteTimeout + 5*time.Second, place: func(p placement) (int, int, bool) {
				return 1 - p.bConn, 2, p.streamLeader == 2 && p.bConn != 2
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && !longClusterTests() {
				t.Skip("PIAZZA_TEST_LONG=1 runs it")
			}
			c := startNATSCluster(t, 3, tc.crash)
			// Piazza B starts first, on a URL list, and creates the
			// streams; then the leaders are known and Piazza A connects
			// where the case wants it.
			var b *clusterPiazza
			var p placement
			var aConn, victim int
			for try := 0; ; try++ {
				b = startClusterPiazza(t, "B", strings.Join([]string{c.url(1), c.url(2), c.url(0)}, ","))
				if tc.crash {
					c.moveStreamLeader(broker.StreamName(""), 2)
				}
				p = c.placement(t, b.node)
				var ok bool
				if aConn, victim, ok = tc.place(p); ok {
					break
				}
				if try == 30 {
					t.Fatalf("no placement for the case in 30 starts of Piazza B (last %+v)", p)
				}
				_ = b.node.Shutdown(context.Background())
				c.deleteConsumers(t, broker.StreamName(""))
			}
			a := startClusterPiazza(t, "A", c.url(aConn))
			t.Logf("stream leader nats-%d, meta leader nats-%d, B on nats-%d with its consumer on nats-%d, A on nats-%d; stopping nats-%d",
				p.streamLeader+1, p.metaLeader+1, p.bConn+1, p.bConsumer+1, aConn+1, victim+1)
			recovery := tc.recovery
			if recovery == 0 {
				recovery = clusterRecovery
			}
			testNATSNodeStop(t, c, victim, tc.maxWrite, recovery, []*clusterPiazza{a, b})
		})
	}
}

func testNATSNodeStop(t *testing.T, c *natsCluster, victim int, maxWrite, recovery time.Duration, piazzas []*clusterPiazza) {
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: clusterWriteTimeout + 2*clusterAnswerMargin}

	// Writes through one Piazza are read through the other.
	ctx := context.Background()
	for i, p := range piazzas {
		q := piazzas[1-i]
		id := "urn:ngsi-ld:Counter:from-" + p.name
		if r := exchange(ctx, client, "POST", p.base+"/ngsi-ld/v1/entities", fmt.Sprintf(`{"id":%q,"type":"Counter","count":{"type":"Property","value":7}}`, id)); r.code != 201 {
			t.Fatalf("create through %s: %s", p.name, r)
		}
		pollUntil(t, id+" through "+q.name, 10*time.Second, func() bool {
			r := exchange(ctx, client, "GET", q.base+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
			return r.code == 200 && strings.Contains(r.body, `"count":7`)
		})
	}

	// Load: writers and a reader on each Piazza.
	load := newClusterLoad(client, piazzas)
	writers := 3
	if longClusterTests() {
		writers = 8
	}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 2 * writers {
		wg.Go(func() { load.write(lctx, w, w%2) })
	}
	for p := range piazzas {
		wg.Go(func() { load.read(lctx, p) })
	}
	stopped := false
	defer func() {
		if !stopped {
			stopLoad()
			wg.Wait()
		}
	}()
	acked := func(p int) int { load.mu.Lock(); defer load.mu.Unlock(); return load.acked[p] }
	pollUntil(t, "30 acknowledged writes through each Piazza", 20*time.Second, func() bool { return acked(0) >= 30 && acked(1) >= 30 })

	load.mu.Lock()
	load.stopAt = time.Now()
	load.mu.Unlock()
	c.stop(victim)
	t.Logf("nats-%d stopped", victim+1)

	// Writes succeed again through both Piazzas within the bound.
	after := 20
	if longClusterTests() {
		after = 500
	}
	pollUntil(t, fmt.Sprintf("%d acknowledged writes through each Piazza after the stop", after), recovery+clusterWriteTimeout, func() bool {
		load.mu.Lock()
		defer load.mu.Unlock()
		return load.ackedAfter[0] >= after && load.ackedAfter[1] >= after
	})
	stopLoad()
	wg.Wait()
	stopped = true

	load.mu.Lock()
	t.Logf("writes acknowledged A %d B %d, refused with 503 A %d B %d; first write acknowledged after the stop: A %v B %v; reads %d",
		load.acked[0], load.acked[1], load.refused[0], load.refused[1],
		load.firstAck[0].Round(time.Millisecond), load.firstAck[1].Round(time.Millisecond), load.reads.Load())
	for i := range piazzas {
		n := load.acked[i] + load.refused[i]
		t.Logf("piazza %s: %d writes, mean %v, slowest %v", piazzas[i].name, n, (load.took[i] / time.Duration(max(n, 1))).Round(time.Microsecond), load.slowest[i].Round(time.Millisecond))
	}
	for i := range piazzas {
		if load.slowest[i] > maxWrite {
			t.Errorf("piazza %s: a write took %v, bound %v", piazzas[i].name, load.slowest[i].Round(time.Millisecond), maxWrite)
		}
	}
	for i, f := range load.firstAck {
		if f > recovery {
			t.Errorf("piazza %s: first write acknowledged %v after the stop, bound %v", piazzas[i].name, f, recovery)
		}
	}
	for _, s := range load.bad {
		t.Errorf("bad answer (neither a success nor a clear 503 within the write timeout, or a stale read): %s", s)
	}
	created := maps.Clone(load.created)
	counters := map[string]counter{}
	for id, c := range load.counters {
		counters[id] = *c
	}
	load.mu.Unlock()
	if t.Failed() {
		return
	}

	// Every acknowledged write is read back through both Piazzas.
	for _, p := range piazzas {
		for id, v := range created {
			pollUntil(t, id+" with its value through "+p.name, 10*time.Second, func() bool {
				r := exchange(ctx, client, "GET", p.base+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
				return r.code == 200 && strings.Contains(r.body, fmt.Sprintf(`"count":%d`, v))
			})
		}
		for id, cn := range counters {
			pollUntil(t, id+" at its last acknowledged value through "+p.name, 10*time.Second, func() bool {
				r := exchange(ctx, client, "GET", p.base+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
				var e struct{ Count int }
				if r.code != 200 || json.Unmarshal([]byte(r.body), &e) != nil {
					return false
				}
				// A PATCH refused with 503 may have committed all the same:
				// the value lies between the last acknowledged and the last tried.
				if e.Count > cn.tried {
					t.Errorf("%s through %s: count %d, never written (last tried %d)", id, p.name, e.Count, cn.tried)
				}
				return e.Count >= cn.acked
			})
		}
	}
	t.Logf("%d created entities and %d counters read back through both Piazzas", len(created), len(counters))
}
