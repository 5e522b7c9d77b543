package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/node"
)

// These tests run 'piazza bench' in process against a real node
// (node.Start: embedded NATS JetStream in a temp dir, the HTTP API on a
// random port, the notifier), with short runs.

func benchNode(t *testing.T) string {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return "http://" + n.HTTPAddr()
}

// runBenchCmd runs 'piazza bench args...', failing the test if it takes
// more than a minute (a bench must never hang).
func runBenchCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(append([]string{"bench"}, args...), &out, &errb) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(time.Minute):
		t.Fatalf("piazza bench %s: still running after a minute", strings.Join(args, " "))
		return 0, "", ""
	}
}

func decodeBenchReport(t *testing.T, out string) benchReport {
	t.Helper()
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	return rep
}

// benchEntityCount counts the tenant's entities of the bench types.
func benchEntityCount(t *testing.T, base, tenant string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/ngsi-ld/v1/entities?count=true&limit=1&type="+strings.Join(benchTypes(), ","), nil)
	if tenant != "" {
		req.Header.Set("NGSILD-Tenant", tenant)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return 0 // the tenant does not exist
	}
	var n int
	if _, err := fmt.Sscan(res.Header.Get("NGSILD-Results-Count"), &n); err != nil {
		t.Fatalf("status %d, NGSILD-Results-Count %q", res.StatusCode, res.Header.Get("NGSILD-Results-Count"))
	}
	return n
}

func TestBenchEveryScenario(t *testing.T) {
	base := benchNode(t)
	code, out, errOut := runBenchCmd(t, "--url", base, "--tenant", "bench", "--duration", "400ms", "--warmup", "100ms",
		"--concurrency", "4", "--batch", "50", "--entities", "300", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	rep := decodeBenchReport(t, out)
	if rep.Loop != "closed" || rep.Concurrency != 4 || rep.Tenant != "bench" {
		t.Errorf("report header: %+v", rep)
	}
	var names []string
	for _, r := range rep.Scenarios {
		names = append(names, r.Scenario)
		t.Run(r.Scenario, func(t *testing.T) {
			if r.Setup != "" || len(r.Errors) > 0 {
				t.Fatalf("setup %q, errors %v, first %q", r.Setup, r.Errors, r.FirstError)
			}
			if r.Requests < 4 || r.RequestsPerSec <= 0 {
				t.Errorf("requests %d, %.0f/s", r.Requests, r.RequestsPerSec)
			}
			if r.Seconds < 0.4 || r.Seconds > 30 {
				t.Errorf("measured %.2fs, want about 0.4s", r.Seconds)
			}
			l := r.Latency
			if !(l.P50 > 0 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max && l.Max < 30000) {
				t.Errorf("latency not ordered or not sane: %+v", l)
			}
			perRequest := float64(r.Entities) / float64(r.Requests)
			switch r.Scenario {
			case "upsert":
				if r.Entities != 50*r.Requests {
					t.Errorf("upsert: %d entities in %d requests, want 50 each", r.Entities, r.Requests)
				}
			case "create", "get", "notify":
				if r.Entities != r.Requests {
					t.Errorf("%d entities in %d requests, want 1 each", r.Entities, r.Requests)
				}
			case "query":
				// 300 entities over 10 types, p1 spread over 0..99 and p2 over 5 words:
				// some queries match, none returns more than the 30 of its type.
				if perRequest <= 0 || perRequest > 20 {
					t.Errorf("query: %.2f entities per request", perRequest)
				}
			}
			if r.Scenario == "notify" {
				n := r.Notify
				if n == nil || n.Expected != r.Requests || n.Received != n.Expected || n.Lost != 0 || n.Duplicates != 0 {
					t.Fatalf("notifications %+v for %d writes", n, r.Requests)
				}
				if nl := n.Latency; !(nl.P50 >= 0 && nl.P50 <= nl.P99 && nl.P99 <= nl.Max && nl.Max < 30000) {
					t.Errorf("notification latency %+v", nl)
				}
			}
		})
	}
	if !slices.Equal(names, benchScenarios) {
		t.Errorf("scenarios %v, want %v", names, benchScenarios)
	}
	if n := benchEntityCount(t, base, "bench"); n != 0 {
		t.Errorf("%d bench entities left after the run", n)
	}
}

func TestBenchTextOutput(t *testing.T) {
	base := benchNode(t)
	code, out, errOut := runBenchCmd(t, "--url", base, "--scenario", "get,create", "--requests", "40", "--concurrency", "2", "--entities", "20")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"closed loop, concurrency 2, 40 requests per scenario", "scenario  requests", "\ncreate ", "\nget "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The canonical order, whatever the order of --scenario.
	if strings.Index(out, "\ncreate ") > strings.Index(out, "\nget ") {
		t.Errorf("create should come before get:\n%s", out)
	}
	// --requests is exact.
	_, out, _ = runBenchCmd(t, "--url", base, "--scenario", "create", "--requests", "37", "--concurrency", "5", "--json")
	if r := decodeBenchReport(t, out).Scenarios[0]; r.Requests != 37 {
		t.Errorf("--requests 37 made %d requests", r.Requests)
	}
}

func TestBenchOpenLoop(t *testing.T) {
	base := benchNode(t)
	code, out, errOut := runBenchCmd(t, "--url", base, "--scenario", "get", "--rate", "200", "--duration", "1s",
		"--concurrency", "4", "--entities", "50", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	rep := decodeBenchReport(t, out)
	r := rep.Scenarios[0]
	if rep.Loop != "open" || rep.Rate != 200 {
		t.Errorf("loop %q rate %g", rep.Loop, rep.Rate)
	}
	// 200/s for 1 s: about 200 requests, whatever the server's speed allows above it.
	if r.Requests < 150 || r.Requests > 210 {
		t.Errorf("open loop at 200/s for 1s made %d requests", r.Requests)
	}
	_, text, _ := runBenchCmd(t, "--url", base, "--scenario", "get", "--rate", "100", "--requests", "10", "--entities", "10")
	if !strings.Contains(text, "open loop at 100 requests/s") {
		t.Errorf("the output should say the loop is open:\n%s", text)
	}
}

func TestBenchRefusesATenantWithBenchEntities(t *testing.T) {
	base := benchNode(t)
	// The query scenario's entities have none of the attributes of the others.
	code, out, errOut := runBenchCmd(t, "--url", base, "--scenario", "query", "--requests", "10", "--entities", "25", "--keep")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if n := benchEntityCount(t, base, ""); n != 25 {
		t.Fatalf("--keep: %d bench entities, want 25", n)
	}
	code, out, errOut = runBenchCmd(t, "--url", base, "--scenario", "create", "--requests", "10")
	if code != 1 || !strings.Contains(errOut, "already holds bench entities") || !strings.Contains(errOut, "--force") || out != "" {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// Another tenant is fine.
	if code, _, errOut := runBenchCmd(t, "--url", base, "--tenant", "other", "--scenario", "create", "--requests", "10"); code != 0 {
		t.Fatalf("another tenant: exit %d: %s", code, errOut)
	}
	// --force runs, and deletes what it wrote, not what was there before.
	if code, _, errOut := runBenchCmd(t, "--url", base, "--scenario", "create,query", "--requests", "10", "--entities", "30", "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
	if n := benchEntityCount(t, base, ""); n != 25 {
		t.Errorf("%d bench entities after --force, want the 25 kept before", n)
	}
}

// stoppedURL is the address of a server that has stopped.
func stoppedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestBenchStoppedServer(t *testing.T) {
	base := stoppedURL(t)
	t.Run("check", func(t *testing.T) {
		code, out, errOut := runBenchCmd(t, "--url", base, "--duration", "200ms")
		if code != 1 || !strings.Contains(errOut, "cannot reach "+base) || out != "" {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
	t.Run("force", func(t *testing.T) {
		code, out, errOut := runBenchCmd(t, "--url", base, "--duration", "300ms", "--force", "--json", "--concurrency", "3")
		if code != 1 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		rep := decodeBenchReport(t, out)
		for _, r := range rep.Scenarios {
			switch r.Scenario {
			case "create", "upsert":
				if r.Errors["transport"] == 0 || r.Errors["transport"] != int(r.Requests) || !strings.Contains(r.FirstError, "connection refused") {
					t.Errorf("%s: errors %v of %d requests, first %q", r.Scenario, r.Errors, r.Requests, r.FirstError)
				}
				if r.EntitiesPerSec != 0 {
					t.Errorf("%s: %.0f entities/s without a server", r.Scenario, r.EntitiesPerSec)
				}
			default: // get, query, notify cannot preload
				if !strings.Contains(r.Setup, "preload") || !strings.Contains(r.Setup, "connection refused") {
					t.Errorf("%s: setup %q", r.Scenario, r.Setup)
				}
			}
		}
		if len(rep.Scenarios) != len(benchScenarios) {
			t.Errorf("%d scenarios reported", len(rep.Scenarios))
		}
		_, text, _ := runBenchCmd(t, "--url", base, "--scenario", "create", "--duration", "100ms", "--force")
		if !strings.Contains(text, "errors: transport ×") || !strings.Contains(text, "first error: POST /ngsi-ld/v1/entities:") {
			t.Errorf("text output hides the errors:\n%s", text)
		}
	})
}

func TestBenchCountsErrorsByStatus(t *testing.T) {
	// A server that refuses every other creation with a ProblemDetails.
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		odd := n%2 == 1
		mu.Unlock()
		switch {
		case r.Method == "POST" && r.URL.Path == "/ngsi-ld/v1/entities" && odd:
			w.WriteHeader(http.StatusCreated)
		case r.Method == "POST" && r.URL.Path == "/ngsi-ld/v1/entities":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"type":"https://uri.etsi.org/ngsi-ld/errors/InternalError","title":"NATS is not available"}`)
		case r.URL.Path == "/ngsi-ld/v1/entityOperations/upsert":
			w.WriteHeader(http.StatusMultiStatus)
			fmt.Fprint(w, `{"success":[],"errors":[{"entityId":"x","error":{"title":"bad"}}]}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	code, out, errOut := runBenchCmd(t, "--url", srv.URL, "--scenario", "create,upsert", "--requests", "20", "--force",
		"--concurrency", "1", "--batch", "3", "--json")
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	rep := decodeBenchReport(t, out)
	c, u := rep.Scenarios[0], rep.Scenarios[1]
	if c.Requests != 20 || c.Errors["503"] != 10 || len(c.Errors) != 1 || c.Entities != 10 ||
		!strings.Contains(c.FirstError, "503 Service Unavailable") || !strings.Contains(c.FirstError, "NATS is not available") {
		t.Errorf("create: %+v", c)
	}
	if u.Errors["207"] != 20 || u.Entities != 0 || !strings.Contains(u.FirstError, `"errors"`) {
		t.Errorf("upsert: 207 must count as an error: %+v", u)
	}
}

func TestBenchServerThatNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	code, out, errOut := runBenchCmd(t, "--url", srv.URL, "--scenario", "create", "--requests", "4", "--concurrency", "2",
		"--timeout", "200ms", "--force", "--json")
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	r := decodeBenchReport(t, out).Scenarios[0]
	if r.Errors["transport"] != 4 || !strings.Contains(r.FirstError, "Client.Timeout") {
		t.Errorf("errors %v, first %q", r.Errors, r.FirstError)
	}
	// Four requests of 200 ms on two workers, and a cleanup that times out too.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "delete"}, `unknown scenario "delete"`},
		{[]string{"--scenario", "get,,query"}, `unknown scenario ""`},
		{[]string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--duration", "0s"}, "--duration 0s"},
		{[]string{"--duration", "soon"}, "invalid value"},
		{[]string{"--requests", "-1"}, "--requests -1"},
		{[]string{"--batch", "0"}, "--batch 0"},
		{[]string{"--entities", "0"}, "--entities 0"},
		{[]string{"--rate", "-5"}, "--rate -5"},
		{[]string{"--url", "localhost:1026"}, `--url "localhost:1026"`},
		{[]string{"--url", "ftp://x"}, `--url "ftp://x"`},
		{[]string{"--listen", "7070"}, `--listen "7070"`},
		{[]string{"--timeout", "0s"}, "--timeout 0s"},
		{[]string{"get"}, `unexpected argument "get"`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runBenchCmd(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d, stderr %q, want 2 and %q", code, errOut, tc.want)
			}
		})
	}
	code, _, errOut := runBenchCmd(t, "-h")
	if code != 0 || !strings.Contains(errOut, "Examples:") || !strings.Contains(errOut, "--scenario upsert") || !strings.Contains(errOut, "-notify-host") {
		t.Errorf("-h: exit %d\n%s", code, errOut)
	}
}

func TestBenchEntitySize(t *testing.T) {
	b := &bencher{run: "0123abcd"}
	e := appendAQ(nil, b.id(benchTypeAQ, "u", 31, 999), benchTypeAQ, 123456)
	var m map[string]any
	if err := json.Unmarshal(e, &m); err != nil {
		t.Fatalf("%v\n%s", err, e)
	}
	if len(e) < 550 || len(e) > 700 {
		t.Errorf("entity of %d bytes, want about 600", len(e))
	}
	if !bytes.Equal(e, appendAQ(nil, b.id(benchTypeAQ, "u", 31, 999), benchTypeAQ, 123456)) ||
		bytes.Equal(e, appendAQ(nil, b.id(benchTypeAQ, "u", 31, 999), benchTypeAQ, 123457)) {
		t.Error("the entity must depend on its value, and only on it")
	}
	var batch []map[string]any
	body := upsertBody(3, func(k int) string { return fmt.Sprint("urn:ngsi-ld:X:", k) }, "X", 7)
	if err := json.Unmarshal(body, &batch); err != nil || len(batch) != 3 {
		t.Fatalf("batch: %v, %d entities", err, len(batch))
	}
	var q []map[string]any
	qb := b.appendQueryEntity([]byte("["), 123)
	if err := json.Unmarshal(append(qb, ']'), &q); err != nil || q[0]["type"] != "PiazzaBenchQuery3" {
		t.Fatalf("query entity: %v %s", err, qb)
	}
}

func TestHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-200µs", func() time.Duration { return time.Duration(r.IntN(200)) * time.Microsecond }},
		{"log-normal ms", func() time.Duration { return time.Duration(float64(time.Millisecond) * (0.2 + r.ExpFloat64()*3)) }},
		{"seconds", func() time.Duration { return time.Duration(r.IntN(100000)) * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h, h1, h2 histogram
			vals := make([]int64, 20000)
			for i := range vals {
				d := tc.gen()
				vals[i] = d.Microseconds()
				h.record(d)
				if i%2 == 0 {
					h1.record(d)
				} else {
					h2.record(d)
				}
			}
			h1.merge(&h2)
			if h1 != h {
				t.Error("merging two halves differs from recording all")
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.95, 0.99, 1} {
				exact := vals[max(int(q*float64(len(vals))+0.5)-1, 0)]
				got := h.quantile(q)
				if diff := float64(got - exact); diff < 0 || diff > float64(exact)/128+1 {
					t.Errorf("q%.2f: %d µs, exact %d µs", q, got, exact)
				}
			}
			if h.max != vals[len(vals)-1] {
				t.Errorf("max %d, want %d", h.max, vals[len(vals)-1])
			}
		})
	}
	var h histogram
	h.record(-time.Second) // a clock step: counts as 0
	h.record(1000 * 24 * time.Hour)
	if h.quantile(0.5) != 0 || h.quantile(1) != h.max || h.n != 2 {
		t.Errorf("extremes: %d %d %d", h.quantile(0.5), h.quantile(1), h.n)
	}
	if (&histogram{}).latency() != (benchLatency{}) {
		t.Error("empty histogram")
	}
}

func TestNotifyReceiver(t *testing.T) {
	rc := newNotifyReceiver()
	t0 := time.Now()
	rc.arrive(5, t0) // warmup: ignored
	rc.ack(5, t0)
	rc.start(10)
	rc.ack(10, t0)
	rc.arrive(10, t0.Add(3*time.Millisecond)) // after its ack
	rc.arrive(11, t0.Add(time.Millisecond))   // before its ack
	rc.ack(11, t0.Add(2*time.Millisecond))
	rc.arrive(11, t0.Add(4*time.Millisecond)) // duplicate
	rc.ack(12, t0)                            // never notified
	rc.arrive(-1, t0)                         // probe
	if rc.complete() {
		t.Error("complete with seq 12 outstanding")
	}
	got := rc.result()
	want := benchNotify{Expected: 3, Received: 2, Lost: 1, Duplicates: 1}
	lat := got.Latency
	got.Latency = benchLatency{}
	if *got != want || !rc.probed() {
		t.Errorf("got %+v, want %+v", *got, want)
	}
	if lat.Max != 3 || lat.P50 != 0 {
		t.Errorf("latency %+v: want 0 (arrived before the ack was read) and 3 ms", lat)
	}
	rc.arrive(12, t0.Add(time.Millisecond))
	if !rc.complete() {
		t.Error("not complete")
	}
}

func FuzzNotifyReceiver(f *testing.F) {
	f.Add([]byte(`{"id":"urn:ngsi-ld:Notification:1","type":"Notification","data":[{"id":"x","seq":12},{"id":"y","seq":{"type":"Property","value":13}}]}`))
	f.Add([]byte(`{"data":[{"seq":-3},{"seq":"x"},{"seq":1e400}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rc := newNotifyReceiver()
		rc.start(1)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, httptest.NewRequest("POST", "/piazza-bench/x", bytes.NewReader(body)))
		if w.Code != http.StatusNoContent && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d", w.Code)
		}
		if r := rc.result(); r.Received < 0 || r.Duplicates < 0 || r.Expected != 0 {
			t.Fatalf("%+v", r)
		}
	})
}

func TestNotifyHostPort(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4zero, Port: 7070}
	for _, tc := range []struct {
		flag string
		addr net.Addr
		want string
	}{
		{"", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, "127.0.0.1:5000"},
		{"", addr, "127.0.0.1:7070"},
		{"bench.example.org", addr, "bench.example.org:7070"},
		{"bench.example.org:80", addr, "bench.example.org:80"},
		{"[::1]", addr, "[::1]:7070"},
	} {
		if got := notifyHostPort(tc.flag, tc.addr); got != tc.want {
			t.Errorf("notifyHostPort(%q, %v) = %q, want %q", tc.flag, tc.addr, got, tc.want)
		}
	}
}
