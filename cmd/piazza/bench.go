package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// 'piazza bench': a load generator for a running Piazza, over its HTTP API
// only. Each scenario preloads what it needs, runs its workers (closed loop)
// or a schedule (open loop, --rate) for a warmup and then a measured phase,
// records each request's latency in a per-worker histogram of fixed size
// (merged at the end, so no lock on the hot path), and deletes what it wrote.

const benchUsage = `Usage:
  piazza bench [flags]

Drives a running Piazza over HTTP with the standard scenarios and prints, per scenario, requests and
entities per second, p50/p95/p99/max latency and the errors by HTTP status (any non-2xx, and 207
Multi-Status, counts as an error; so do transport errors), with the first error body.

Scenarios (--scenario, one, a comma list, or all; they run one after the other in this order):
  create   POST /entities, one new entity (unique id) per request
  upsert   POST /entityOperations/upsert, --batch entities per request (about 600 bytes each,
           AirQualityObserved-like); every request changes every entity it sends
  get      GET /entities/{id}, random ids over --entities preloaded entities
  query    GET /entities?type=T&q=p1>v;p2=="w" over --entities preloaded entities of 10 types
  notify   a subscription whose endpoint is a receiver inside piazza bench (--listen, --notify-host);
           PATCHes entities and measures the time from the acknowledgement of each write to the
           arrival of its notification, and counts the notifications lost and duplicated

The loop is closed by default: --concurrency workers each send a request, wait for the answer and
send the next. With --rate the loop is open: requests start on a fixed schedule (at most
--concurrency in flight) and latency counts from the scheduled start, so a slow server is not
hidden by a slower client. Connections are kept alive.

Bench entities have types PiazzaBenchAirQuality, PiazzaBenchQuery0..9 and PiazzaBenchNotify, and
ids that name the run; after each scenario the bench deletes the entities and the subscription it
created (--keep keeps them). It refuses to run against a tenant that already holds entities of these
types, unless --force (which leaves those entities alone).

Examples:
  piazza bench                                           # every scenario, 32 workers, 15 s each
  piazza bench --scenario upsert --batch 1000 --concurrency 2 --duration 30s
  piazza bench --scenario get,query --entities 100000 --concurrency 32 --warmup 2s
  piazza bench --scenario get --rate 5000 --duration 20s  # open loop at 5,000 requests/s
  piazza bench --scenario create --requests 10000 --json > create.json
  piazza bench --url http://piazza:1026 --tenant bench --scenario notify \
               --listen 0.0.0.0:7070 --notify-host bench-client.example.org:7070

Exit status: 0 no errors; 1 some requests failed, notifications were lost, or the broker could not be
reached; 2 bad usage.

Flags:
`

// Bench entity types: piazza bench writes only these, and deletes them.
const (
	benchTypeAQ     = "PiazzaBenchAirQuality"
	benchTypeQuery  = "PiazzaBenchQuery" // + 0..9
	benchTypeNotify = "PiazzaBenchNotify"
	benchQueryTypes = 10
)

// benchTypes lists every type piazza bench writes.
func benchTypes() []string {
	ts := []string{benchTypeAQ, benchTypeNotify}
	for i := range benchQueryTypes {
		ts = append(ts, benchTypeQuery+strconv.Itoa(i))
	}
	return ts
}

var benchScenarios = []string{"create", "upsert", "get", "query", "notify"}

// benchFlags are the flags of 'piazza bench'.
type benchFlags struct {
	url, tenant, scenario     string
	concurrency, requests     int
	batch, entities           int
	duration, warmup, timeout time.Duration
	drain                     time.Duration
	rate                      float64
	listen, notifyHost        string
	asJSON, keep, force       bool
	scenarios                 []string
}

// bench runs 'piazza bench': it parses the flags, then runs the scenarios
// one after the other, each with its own workers, and prints the results.
// An interrupt stops the run, still deleting what the bench wrote.
func bench(args []string, stdout, stderr io.Writer) int {
	f, code := parseBenchFlags(args, stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runBench(ctx, f, stdout, stderr)
}

// parseBenchFlags returns the flags, or an exit code >= 0 when the command
// must stop (help: 0, usage error: 2).
func parseBenchFlags(args []string, stderr io.Writer) (benchFlags, int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f benchFlags
	fs.StringVar(&f.url, "url", "http://localhost:1026", "the Piazza broker's base URL")
	fs.StringVar(&f.tenant, "tenant", "", "NGSILD-Tenant to work in (default: the broker's default tenant)")
	fs.StringVar(&f.scenario, "scenario", "all", "create, upsert, get, query, notify: one, a comma list, or all")
	fs.IntVar(&f.concurrency, "concurrency", 32, "workers (closed loop) or most requests in flight (open loop)")
	fs.DurationVar(&f.duration, "duration", 15*time.Second, "measured time per scenario (unless --requests)")
	fs.IntVar(&f.requests, "requests", 0, "measured requests per scenario instead of --duration")
	fs.DurationVar(&f.warmup, "warmup", 0, "time per scenario before measuring (same load, not counted)")
	fs.IntVar(&f.batch, "batch", 1000, "entities per upsert request")
	fs.IntVar(&f.entities, "entities", 10000, "entities preloaded for get and query")
	fs.Float64Var(&f.rate, "rate", 0, "requests/s for an open loop (0: closed loop)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time allowed for one request")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "notify: time allowed after the last write for the notifications still due")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "notify: the receiver's listen address")
	fs.StringVar(&f.notifyHost, "notify-host", "", "notify: host[:port] Piazza must call to reach the receiver (default: the listen address)")
	fs.BoolVar(&f.asJSON, "json", false, "print the results as JSON on standard output")
	fs.BoolVar(&f.keep, "keep", false, "keep the entities and subscriptions the bench created")
	fs.BoolVar(&f.force, "force", false, "run even if the tenant already holds entities of the bench types")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0
		}
		return f, 2
	}
	if err := f.check(fs.Args()); err != nil {
		fmt.Fprintf(stderr, "piazza bench: %v\nRun 'piazza bench -h' for the flags.\n", err)
		return f, 2
	}
	return f, -1
}

// check validates the flags and fills f.scenarios.
func (f *benchFlags) check(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (piazza bench takes only flags)", rest[0])
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http://host:port or https://host:port", f.url)
	}
	f.url = strings.TrimRight(f.url, "/")
	switch {
	case f.concurrency < 1:
		return fmt.Errorf("--concurrency %d: must be at least 1", f.concurrency)
	case f.requests < 0:
		return fmt.Errorf("--requests %d: must not be negative", f.requests)
	case f.requests == 0 && f.duration <= 0:
		return fmt.Errorf("--duration %s: must be positive (or give --requests)", f.duration)
	case f.warmup < 0:
		return fmt.Errorf("--warmup %s: must not be negative", f.warmup)
	case f.batch < 1 || f.batch > 100000:
		return fmt.Errorf("--batch %d: must be between 1 and 100000", f.batch)
	case f.entities < 1:
		return fmt.Errorf("--entities %d: must be at least 1", f.entities)
	case f.rate < 0:
		return fmt.Errorf("--rate %g: must not be negative", f.rate)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %s: must be positive", f.timeout)
	case f.drain < 0:
		return fmt.Errorf("--drain %s: must not be negative", f.drain)
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port (port 0 for any)", f.listen)
	}
	f.scenarios = nil
	for s := range strings.SplitSeq(f.scenario, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			f.scenarios = append(f.scenarios, benchScenarios...)
		case slices.Contains(benchScenarios, s):
			f.scenarios = append(f.scenarios, s)
		default:
			return fmt.Errorf("--scenario: unknown scenario %q (want %s or all)", s, strings.Join(benchScenarios, ", "))
		}
	}
	// Keep the canonical order, once each.
	var ordered []string
	for _, s := range benchScenarios {
		if slices.Contains(f.scenarios, s) {
			ordered = append(ordered, s)
		}
	}
	f.scenarios = ordered
	return nil
}

// benchReport is what piazza bench prints (--json prints it as is).
type benchReport struct {
	URL         string        `json:"url"`
	Tenant      string        `json:"tenant"`
	Loop        string        `json:"loop"` // "closed" or "open"
	Rate        float64       `json:"rate,omitempty"`
	Concurrency int           `json:"concurrency"`
	Duration    string        `json:"duration,omitempty"`
	Requests    int           `json:"requests,omitempty"`
	Warmup      string        `json:"warmup"`
	Batch       int           `json:"batch"`
	Entities    int           `json:"entities"`
	LoadAverage string        `json:"loadAverage,omitempty"`
	Started     time.Time     `json:"started"`
	Scenarios   []benchResult `json:"scenarios"`
	Error       string        `json:"error,omitempty"`
}

// benchResult is the outcome of one scenario.
type benchResult struct {
	Scenario       string         `json:"scenario"`
	Requests       int64          `json:"requests"`
	Entities       int64          `json:"entities"`
	Seconds        float64        `json:"seconds"`
	RequestsPerSec float64        `json:"requestsPerSecond"`
	EntitiesPerSec float64        `json:"entitiesPerSecond"`
	Latency        benchLatency   `json:"latency"`
	Errors         map[string]int `json:"errors,omitempty"` // by HTTP status, or "transport"
	FirstError     string         `json:"firstError,omitempty"`
	Notify         *benchNotify   `json:"notifications,omitempty"`
	Setup          string         `json:"setupError,omitempty"` // the scenario could not start
}

// benchNotify is the notification side of the notify scenario.
type benchNotify struct {
	Expected   int64        `json:"expected"` // acknowledged writes
	Received   int64        `json:"received"`
	Lost       int64        `json:"lost"`
	Duplicates int64        `json:"duplicates"`
	Latency    benchLatency `json:"latency"` // acknowledgement to arrival
}

// benchLatency holds latency quantiles in milliseconds.
type benchLatency struct {
	P50  float64 `json:"p50ms"`
	P95  float64 `json:"p95ms"`
	P99  float64 `json:"p99ms"`
	Max  float64 `json:"maxms"`
	Mean float64 `json:"meanms"`
}

func (r *benchResult) failed() bool {
	return len(r.Errors) > 0 || r.Setup != "" || (r.Notify != nil && r.Notify.Lost > 0)
}

func runBench(ctx context.Context, f benchFlags, stdout, stderr io.Writer) int {
	b := newBencher(f)
	defer b.client.CloseIdleConnections()
	rep := benchReport{URL: f.url, Tenant: f.tenant, Loop: "closed", Concurrency: f.concurrency, Warmup: f.warmup.String(),
		Batch: f.batch, Entities: f.entities, LoadAverage: loadAverage(), Started: time.Now().UTC()}
	if f.rate > 0 {
		rep.Loop, rep.Rate = "open", f.rate
	}
	if f.requests > 0 {
		rep.Requests = f.requests
	} else {
		rep.Duration = f.duration.String()
	}
	if !f.force {
		if err := b.checkTenant(ctx); err != nil {
			fmt.Fprintf(stderr, "piazza bench: %v\n", err)
			return 1
		}
	}
	if !f.asJSON {
		printBenchHeader(stdout, &rep)
	}
	code := 0
	for _, s := range f.scenarios {
		if ctx.Err() != nil {
			break
		}
		r := b.scenario(ctx, s)
		if !f.keep {
			if err := b.cleanup(s); err != nil {
				fmt.Fprintf(stderr, "piazza bench: cleanup after %s: %v\n", s, err)
				code = 1
			}
		}
		if r.failed() {
			code = 1
		}
		rep.Scenarios = append(rep.Scenarios, r)
		if !f.asJSON {
			printBenchResult(stdout, &r)
		}
	}
	if ctx.Err() != nil {
		rep.Error = "interrupted"
		code = 1
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "piazza bench: %v\n", err)
			return 1
		}
	}
	return code
}

// loadAverage reads the 1, 5 and 15 minute load averages (Linux), or "".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return ""
	}
	return strings.Join(fields[:3], " ")
}

// bencher runs the scenarios. It is used by one goroutine at a time, apart
// from its client, which the workers share.
type bencher struct {
	f      benchFlags
	client *http.Client
	run    string // unique per run, in every entity id
}

func newBencher(f benchFlags) *bencher {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = f.concurrency * 2
	tr.MaxIdleConnsPerHost = f.concurrency
	tr.MaxConnsPerHost = 0
	var id [4]byte
	_, _ = rand.Read(id[:])
	return &bencher{f: f, client: &http.Client{Transport: tr, Timeout: f.timeout}, run: hex.EncodeToString(id[:])}
}

// benchCall is one request of a scenario.
type benchCall struct {
	method, path string
	body         []byte
	entities     int                   // entities written or read, when the answer is 2xx
	count        func(body []byte) int // counts the entities of a 2xx answer instead
	acked        func(at time.Time)    // called at a 2xx answer
	want         func(status int) bool // success; default any 2xx but 207
}

// do sends one request and returns the status (0 on a transport error),
// the body when it is an error or count needs it, and the error.
func (b *bencher) do(ctx context.Context, c benchCall) (int, []byte, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, b.f.url+c.path, body)
	if err != nil {
		return 0, nil, err
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if b.f.tenant != "" {
		req.Header.Set("NGSILD-Tenant", b.f.tenant)
	}
	res, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	ok := benchOK(c, res.StatusCode)
	if !ok || c.count != nil {
		data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		return res.StatusCode, data, err
	}
	_, err = io.Copy(io.Discard, res.Body) // keeps the connection reusable
	return res.StatusCode, nil, err
}

func benchOK(c benchCall, status int) bool {
	if c.want != nil {
		return c.want(status)
	}
	return status >= 200 && status < 300 && status != http.StatusMultiStatus
}

// benchWorker holds one worker's tallies; merged at the end of a phase.
type benchWorker struct {
	hist       histogram
	requests   int64
	entities   int64
	errors     map[string]int
	firstError string
	firstAt    time.Time
}

func (w *benchWorker) fail(key, msg string) {
	if w.errors == nil {
		w.errors = map[string]int{}
	}
	w.errors[key]++
	if w.firstError == "" {
		w.firstError, w.firstAt = msg, time.Now()
	}
}

// loop runs calls made by next for the measured phase (after the warmup)
// and returns the tallies. next is called concurrently with the worker's
// number and a sequence number unique in the scenario.
func (b *bencher) loop(ctx context.Context, name string, next func(worker int, seq int64) benchCall, onMeasure ...func(first int64)) benchResult {
	var seq atomic.Int64
	if b.f.warmup > 0 {
		b.phase(ctx, b.f.warmup, 0, &seq, next)
	}
	for _, f := range onMeasure {
		f(seq.Load() + 1)
	}
	ws, elapsed := b.phase(ctx, b.f.duration, b.f.requests, &seq, next)
	r := benchResult{Scenario: name, Seconds: elapsed.Seconds()}
	var h histogram
	var firstAt time.Time
	for _, w := range ws {
		h.merge(&w.hist)
		r.Requests += w.requests
		r.Entities += w.entities
		for k, n := range w.errors {
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			r.Errors[k] += n
		}
		if w.firstError != "" && (firstAt.IsZero() || w.firstAt.Before(firstAt)) {
			r.FirstError, firstAt = w.firstError, w.firstAt
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		r.RequestsPerSec = float64(r.Requests) / s
		r.EntitiesPerSec = float64(r.Entities) / s
	}
	r.Latency = h.latency()
	return r
}

// phase runs one phase: for d (when limit is 0) or until limit requests
// have started. Requests in flight at the end are waited for, not cut.
func (b *bencher) phase(ctx context.Context, d time.Duration, limit int, seq *atomic.Int64, next func(int, int64) benchCall) ([]*benchWorker, time.Duration) {
	start := time.Now()
	var started atomic.Int64
	var stopped atomic.Bool
	take := func() bool {
		if stopped.Load() || ctx.Err() != nil {
			return false
		}
		if limit > 0 {
			return started.Add(1) <= int64(limit)
		}
		return true
	}
	if limit == 0 {
		t := time.AfterFunc(d, func() { stopped.Store(true) })
		defer t.Stop()
	}
	// The requests themselves are not cancelled at the deadline (that would
	// count as errors); only an interrupt cancels them.
	reqCtx := ctx

	ws := make([]*benchWorker, b.f.concurrency)
	var wg sync.WaitGroup
	var sched chan time.Time
	if b.f.rate > 0 {
		sched = make(chan time.Time, b.f.concurrency)
		go func() {
			defer close(sched)
			interval := time.Duration(float64(time.Second) / b.f.rate)
			timer := time.NewTimer(0)
			defer timer.Stop()
			for i := int64(0); ; i++ {
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
				if !take() {
					return
				}
				select {
				case sched <- at: // blocks while every worker is busy: the delay counts in latency
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for i := range ws {
		w := &benchWorker{}
		ws[i] = w
		wg.Go(func() {
			for {
				var at time.Time
				if sched != nil {
					t, ok := <-sched
					if !ok {
						return
					}
					at = t
				} else {
					if !take() {
						return
					}
					at = time.Now()
				}
				c := next(i, seq.Add(1))
				status, body, err := b.do(reqCtx, c)
				end := time.Now()
				if ctx.Err() != nil && err != nil {
					return // interrupted: not a failure of the broker
				}
				w.requests++
				w.hist.record(end.Sub(at))
				switch {
				case err != nil: // no answer, or an answer cut short
					w.fail("transport", fmt.Sprintf("%s %s: %v", c.method, c.path, err))
				case !benchOK(c, status):
					w.fail(strconv.Itoa(status), fmt.Sprintf("%s %s: %d %s: %s", c.method, c.path, status,
						http.StatusText(status), benchTrim(body)))
				default:
					if c.count != nil {
						w.entities += int64(c.count(body))
					} else {
						w.entities += int64(c.entities)
					}
					if c.acked != nil {
						c.acked(end)
					}
				}
			}
		})
	}
	wg.Wait()
	return ws, time.Since(start)
}

// benchTrim shortens an error body for the report.
func benchTrim(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func (b *bencher) scenario(ctx context.Context, name string) benchResult {
	switch name {
	case "create":
		return b.create(ctx)
	case "upsert":
		return b.upsert(ctx)
	case "get":
		return b.get(ctx)
	case "query":
		return b.query(ctx)
	case "notify":
		return b.notify(ctx)
	}
	return benchResult{Scenario: name, Setup: "unknown scenario"}
}

const benchTime = "2024-01-10T10:00:00Z"

var benchLevels = []string{"good", "moderate", "poor", "veryPoor"}

// appendAQ appends an AirQualityObserved-like entity of about 600 bytes
// (normalized form) whose values depend on v, so that a new v changes it.
func appendAQ(buf []byte, id, typ string, v int64) []byte {
	buf = append(buf, `{"id":"`...)
	buf = append(buf, id...)
	buf = append(buf, `","type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, `","dateObserved":{"type":"Property","value":"`+benchTime+`"},"no2":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, 20+v%60, 10)
	buf = append(buf, `,"unitCode":"GQ","observedAt":"`+benchTime+`"},"pm10":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, 10+v%37, 10)
	buf = append(buf, `,"unitCode":"GQ","observedAt":"`+benchTime+`"},"pm25":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, 5+v%23, 10)
	buf = append(buf, `,"unitCode":"GQ"},"o3":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, 40+v%51, 10)
	buf = append(buf, `,"unitCode":"GQ"},"temperature":{"type":"Property","value":`...)
	buf = strconv.AppendFloat(buf, float64(v%300)/10, 'f', 1, 64)
	buf = append(buf, `,"unitCode":"CEL"},"airQualityLevel":{"type":"Property","value":"`...)
	buf = append(buf, benchLevels[v%int64(len(benchLevels))]...)
	buf = append(buf, `"},"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}},"seq":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, v, 10)
	buf = append(buf, `}}`...)
	return buf
}

func (b *bencher) id(typ, kind string, parts ...int64) string {
	var sb strings.Builder
	sb.WriteString("urn:ngsi-ld:" + typ + ":" + kind + "-" + b.run)
	for _, p := range parts {
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatInt(p, 10))
	}
	return sb.String()
}

func (b *bencher) create(ctx context.Context) benchResult {
	return b.loop(ctx, "create", func(_ int, seq int64) benchCall {
		body := appendAQ(make([]byte, 0, 700), b.id(benchTypeAQ, "c", seq), benchTypeAQ, seq)
		return benchCall{method: http.MethodPost, path: "/ngsi-ld/v1/entities", body: body, entities: 1}
	})
}

// upsertBody is a batch of n entities with the ids id(k), each at value v+k.
func upsertBody(n int, id func(k int) string, typ string, v int64) []byte {
	buf := make([]byte, 0, n*660+2)
	buf = append(buf, '[')
	for k := range n {
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = appendAQ(buf, id(k), typ, v+int64(k))
	}
	return append(buf, ']')
}

func (b *bencher) upsert(ctx context.Context) benchResult {
	n := b.f.batch
	return b.loop(ctx, "upsert", func(worker int, seq int64) benchCall {
		// Each worker rewrites its own n entities with new values each time:
		// no two requests in flight touch one entity.
		body := upsertBody(n, func(k int) string { return b.id(benchTypeAQ, "u", int64(worker), int64(k)) }, benchTypeAQ, seq)
		return benchCall{method: http.MethodPost, path: "/ngsi-ld/v1/entityOperations/upsert", body: body, entities: n}
	})
}

// preload upserts the entities made by body in batches; it stops at the
// first failure.
func (b *bencher) preload(ctx context.Context, total int, batch func(from, n int) []byte) error {
	step := min(b.f.batch, 1000)
	type job struct{ from, n int }
	jobs := make(chan job)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(4, b.f.concurrency) {
		wg.Go(func() {
			for j := range jobs {
				c := benchCall{method: http.MethodPost, path: "/ngsi-ld/v1/entityOperations/upsert", body: batch(j.from, j.n)}
				status, body, err := b.do(ctx, c)
				if err == nil && !benchOK(c, status) {
					err = fmt.Errorf("POST %s: %d %s: %s", c.path, status, http.StatusText(status), benchTrim(body))
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	var err error
loop:
	for from := 0; from < total; from += step {
		select {
		case jobs <- job{from, min(step, total-from)}:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	return nil
}

func (b *bencher) get(ctx context.Context) benchResult {
	n := b.f.entities
	err := b.preload(ctx, n, func(from, k int) []byte {
		return upsertBody(k, func(i int) string { return b.id(benchTypeAQ, "g", int64(from+i)) }, benchTypeAQ, int64(from))
	})
	if err != nil {
		return benchResult{Scenario: "get", Setup: err.Error()}
	}
	return b.loop(ctx, "get", func(_ int, _ int64) benchCall {
		id := b.id(benchTypeAQ, "g", mrand.Int64N(int64(n)))
		return benchCall{method: http.MethodGet, path: "/ngsi-ld/v1/entities/" + url.PathEscape(id), entities: 1}
	})
}

var benchWords = []string{"alfa", "bravo", "charlie", "delta", "echo"}

// appendQueryEntity appends entity i of the query scenario: type
// PiazzaBenchQuery<i%10>, p1 a number 0..99, p2 one of five words.
func (b *bencher) appendQueryEntity(buf []byte, i int) []byte {
	buf = append(buf, `{"id":"`+"urn:ngsi-ld:"...)
	typ := benchTypeQuery + strconv.Itoa(i%benchQueryTypes)
	buf = append(buf, typ+":q-"+b.run+"-"...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, `","type":"`+typ+`","p1":{"type":"Property","value":`...)
	buf = strconv.AppendInt(buf, int64((i*37)%100), 10)
	buf = append(buf, `},"p2":{"type":"Property","value":"`+benchWords[(i/benchQueryTypes)%len(benchWords)]+`"},"p3":{"type":"Property","value":`...)
	buf = strconv.AppendFloat(buf, float64(i%1000)/10, 'f', 1, 64)
	buf = append(buf, `},"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[`...)
	buf = strconv.AppendFloat(buf, 10.7+float64(i%100)/1000, 'f', 4, 64)
	buf = append(buf, ',')
	buf = strconv.AppendFloat(buf, 45.1+float64(i%97)/1000, 'f', 4, 64)
	return append(buf, `]}}}`...)
}

func (b *bencher) query(ctx context.Context) benchResult {
	err := b.preload(ctx, b.f.entities, func(from, k int) []byte {
		buf := make([]byte, 0, k*360+2)
		buf = append(buf, '[')
		for i := range k {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = b.appendQueryEntity(buf, from+i)
		}
		return append(buf, ']')
	})
	if err != nil {
		return benchResult{Scenario: "query", Setup: err.Error()}
	}
	return b.loop(ctx, "query", func(_ int, _ int64) benchCall {
		q := fmt.Sprintf(`p1>%d;p2==%q`, mrand.IntN(100), benchWords[mrand.IntN(len(benchWords))])
		v := url.Values{"type": {benchTypeQuery + strconv.Itoa(mrand.IntN(benchQueryTypes))}, "q": {q}}
		return benchCall{method: http.MethodGet, path: "/ngsi-ld/v1/entities?" + v.Encode(), count: countArray}
	})
}

// countArray counts the members of a JSON array (the entities of a query
// answer); 0 if it is not one.
func countArray(body []byte) int {
	var a []json.RawMessage
	if json.Unmarshal(body, &a) != nil {
		return 0
	}
	return len(a)
}

// checkTenant refuses a tenant that already holds entities of the bench
// types, and reports a broker that cannot be reached.
func (b *bencher) checkTenant(ctx context.Context) error {
	v := url.Values{"type": {strings.Join(benchTypes(), ",")}, "limit": {"1"}, "options": {"keyValues"}}
	c := benchCall{method: http.MethodGet, path: "/ngsi-ld/v1/entities?" + v.Encode(), count: countArray}
	status, body, err := b.do(ctx, c)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", b.f.url, err)
	}
	if status == http.StatusNotFound && bytes.Contains(body, []byte("NonexistentTenant")) {
		return nil
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s: %s", c.path, status, http.StatusText(status), benchTrim(body))
	}
	var found []struct{ ID, Type string }
	if err := json.Unmarshal(body, &found); err != nil {
		return fmt.Errorf("GET %s: %w", c.path, err)
	}
	if len(found) > 0 {
		return fmt.Errorf("tenant %s already holds bench entities (%s, type %s): delete them with "+
			"DELETE /ngsi-ld/v1/entities?type=%s, or run with --force", benchTenantName(b.f.tenant), found[0].ID, found[0].Type, found[0].Type)
	}
	return nil
}

func benchTenantName(t string) string {
	if t == "" {
		return "(default)"
	}
	return strconv.Quote(t)
}

// cleanup deletes the entities a scenario created in this run (their ids
// carry the run's id), and no others.
func (b *bencher) cleanup(scenario string) error {
	var types []string
	switch scenario {
	case "create", "upsert", "get":
		types = []string{benchTypeAQ}
	case "query":
		for i := range benchQueryTypes {
			types = append(types, benchTypeQuery+strconv.Itoa(i))
		}
	case "notify":
		types = []string{benchTypeNotify}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v := url.Values{"type": {strings.Join(types, ",")}, "idPattern": {"^urn:ngsi-ld:PiazzaBench[A-Za-z0-9]*:[a-z]-" + b.run + "-.*$"}}
	c := benchCall{method: http.MethodDelete, path: "/ngsi-ld/v1/entities?" + v.Encode(),
		want: func(s int) bool { return s/100 == 2 || s == http.StatusNotFound }}
	status, body, err := b.do(ctx, c)
	if err != nil {
		return err
	}
	if !benchOK(c, status) {
		return fmt.Errorf("DELETE %s: %d %s: %s", c.path, status, http.StatusText(status), benchTrim(body))
	}
	return nil
}

func printBenchHeader(w io.Writer, r *benchReport) {
	loop := "closed loop"
	if r.Loop == "open" {
		loop = fmt.Sprintf("open loop at %g requests/s", r.Rate)
	}
	span := r.Duration + " per scenario"
	if r.Requests > 0 {
		span = fmt.Sprintf("%d requests per scenario", r.Requests)
	}
	fmt.Fprintf(w, "piazza bench: %s, tenant %s, %s, concurrency %d, %s, warmup %s\n", r.URL, benchTenantName(r.Tenant),
		loop, r.Concurrency, span, r.Warmup)
	if r.LoadAverage != "" {
		fmt.Fprintf(w, "load average at start: %s\n", r.LoadAverage)
	}
	fmt.Fprintf(w, benchRowFormat, "scenario", "requests", "req/s", "entities/s", "p50", "p95", "p99", "max", "errors")
}

const benchRowFormat = "%-8s %9s %9s %11s %9s %9s %9s %9s %7s\n"

func printBenchResult(w io.Writer, r *benchResult) {
	if r.Setup != "" {
		fmt.Fprintf(w, "%-8s FAILED to start: %s\n", r.Scenario, r.Setup)
		return
	}
	var nerr int
	for _, n := range r.Errors {
		nerr += n
	}
	fmt.Fprintf(w, benchRowFormat, r.Scenario, strconv.FormatInt(r.Requests, 10), benchRate(r.RequestsPerSec),
		benchRate(r.EntitiesPerSec), benchMS(r.Latency.P50), benchMS(r.Latency.P95), benchMS(r.Latency.P99),
		benchMS(r.Latency.Max), strconv.Itoa(nerr))
	if n := r.Notify; n != nil {
		fmt.Fprintf(w, "  notifications: %d expected, %d received, %d lost, %d duplicate; write acknowledged to notification arrived: p50 %s p95 %s p99 %s max %s\n",
			n.Expected, n.Received, n.Lost, n.Duplicates, benchMS(n.Latency.P50), benchMS(n.Latency.P95), benchMS(n.Latency.P99), benchMS(n.Latency.Max))
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.Errors[k])
		}
		fmt.Fprintf(w, "  errors: %s\n  first error: %s\n", strings.Join(parts, ", "), r.FirstError)
	}
}

// benchRate formats a rate: one decimal below 100.
func benchRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// benchMS formats milliseconds with three significant digits.
func benchMS(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// histogram records latencies in microseconds in log-linear buckets (as
// HdrHistogram does): values below 128 µs exactly, larger ones with 128
// sub-buckets per power of two (under 0.8% error). Its memory is fixed
// (about 36 KiB) however long the run. The zero value is ready; it is not
// safe for concurrent use.
type histogram struct {
	counts [histSub * (histShifts + 1)]int64
	n      int64
	sum    int64 // µs
	max    int64 // µs, exact
}

const (
	histSub    = 128
	histShifts = 36 // up to 2^43 µs, about 100 days
)

func histIndex(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 8 // v>>shift in [128, 256)
	if shift > histShifts-1 {
		return len(histogram{}.counts) - 1
	}
	return histSub + shift*histSub + int(v>>shift) - histSub
}

// histValue is the highest value of bucket i.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := (i - histSub) / histSub
	sub := int64((i-histSub)%histSub) + histSub
	return (sub+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := max(d.Microseconds(), 0)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value (µs) at quantile q in [0, 1].
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == len(h.counts)-1 {
				return h.max // the overflow bucket
			}
			return min(histValue(i), h.max)
		}
	}
	return h.max
}

func (h *histogram) latency() benchLatency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	l := benchLatency{P50: ms(h.quantile(0.50)), P95: ms(h.quantile(0.95)), P99: ms(h.quantile(0.99)), Max: ms(h.max)}
	if h.n > 0 {
		l.Mean = ms(h.sum / h.n)
	}
	return l
}

// notifyPerWorker is how many entities each notify worker updates in turn.
const notifyPerWorker = 4

func (b *bencher) notify(ctx context.Context) benchResult {
	fail := func(format string, a ...any) benchResult {
		return benchResult{Scenario: "notify", Setup: fmt.Sprintf(format, a...)}
	}
	ln, err := net.Listen("tcp", b.f.listen)
	if err != nil {
		return fail("receiver: %v", err)
	}
	rc := newNotifyReceiver()
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 1 << 20}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	endpoint := "http://" + notifyHostPort(b.f.notifyHost, ln.Addr()) + "/piazza-bench/" + b.run

	n := b.f.concurrency * notifyPerWorker
	id := func(k int) string { return b.id(benchTypeNotify, "n", int64(k)) }
	if err := b.preload(ctx, n, func(from, k int) []byte {
		return upsertBody(k, func(i int) string { return id(from + i) }, benchTypeNotify, 0)
	}); err != nil {
		return fail("%v", err)
	}

	sub := map[string]any{
		"type": "Subscription", "subscriptionName": "piazza bench " + b.run,
		"entities": []any{map[string]any{"type": benchTypeNotify}}, "watchedAttributes": []string{"seq"},
		"notification": map[string]any{"format": "keyValues", "attributes": []string{"seq"},
			"endpoint": map[string]any{"uri": endpoint, "accept": "application/json"}},
	}
	subBody, _ := json.Marshal(sub)
	subID, err := b.createSubscription(ctx, subBody)
	if err != nil {
		return fail("%v", err)
	}
	if !b.f.keep {
		defer b.deleteSubscription(subID)
	}

	// Probe until one notification arrives: the subscription works and the
	// broker can reach the receiver.
	patch := func(k int, seq int64) benchCall {
		body := fmt.Appendf(nil, `{"seq":{"type":"Property","value":%d},"no2":{"type":"Property","value":%d,"unitCode":"GQ"}}`, seq, 20+seq%60)
		return benchCall{method: http.MethodPatch, path: "/ngsi-ld/v1/entities/" + url.PathEscape(id(k)) + "/attrs", body: body, entities: 1}
	}
	wait := max(b.f.drain, 30*time.Second)
	deadline := time.Now().Add(wait)
	for probe := int64(-1); !rc.probed(); probe-- {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail("no notification arrived at %s within %s: can Piazza reach it? (set --listen and --notify-host)", endpoint, wait)
		}
		c := patch(0, probe)
		status, body, err := b.do(ctx, c)
		if err != nil || !benchOK(c, status) {
			return fail("probe: PATCH %s: %d %v %s", c.path, status, err, benchTrim(body))
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end) && !rc.probed(); {
			time.Sleep(5 * time.Millisecond)
		}
	}

	r := b.loop(ctx, "notify", func(worker int, seq int64) benchCall {
		c := patch(worker*notifyPerWorker+int(seq%notifyPerWorker), seq)
		c.acked = func(at time.Time) { rc.ack(seq, at) }
		return c
	}, rc.start)

	// Wait for the notifications still due.
	end := time.Now().Add(b.f.drain)
	for !rc.complete() && time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	r.Notify = rc.result()
	return r
}

// notifyHostPort is the host:port the broker must call: --notify-host
// (with the listener's port when it names none), or the listener's address
// (127.0.0.1 when it listens on every interface).
func notifyHostPort(flagHost string, addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	if flagHost != "" {
		if _, _, err := net.SplitHostPort(flagHost); err == nil {
			return flagHost
		}
		return net.JoinHostPort(strings.Trim(flagHost, "[]"), port)
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr.String()
}

func (b *bencher) createSubscription(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.f.url+"/ngsi-ld/v1/subscriptions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if b.f.tenant != "" {
		req.Header.Set("NGSILD-Tenant", b.f.tenant)
	}
	res, err := b.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create subscription: %w", err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusCreated || loc == "" {
		return "", fmt.Errorf("create subscription: POST /ngsi-ld/v1/subscriptions: %d %s: %s", res.StatusCode, http.StatusText(res.StatusCode), benchTrim(data))
	}
	id, err := url.PathUnescape(loc[strings.LastIndexByte(loc, '/')+1:])
	if err != nil {
		return "", fmt.Errorf("create subscription: Location %q: %w", loc, err)
	}
	return id, nil
}

func (b *bencher) deleteSubscription(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, _ = b.do(ctx, benchCall{method: http.MethodDelete, path: "/ngsi-ld/v1/subscriptions/" + url.PathEscape(id)})
}

// notifyReceiver is the HTTP endpoint of the notify scenario's
// subscription. Each write carries a unique seq; the receiver pairs the
// time a write was acknowledged with the time its notification arrived,
// whichever comes first. It is safe for concurrent use.
type notifyReceiver struct {
	mu         sync.Mutex
	from       int64 // first measured seq; 0 until measuring starts
	pending    map[int64]notifyPending
	seen       []uint64 // bit seq-from: a notification arrived
	probes     int
	expected   int64
	received   int64
	matched    int64
	duplicates int64
	hist       histogram
}

type notifyPending struct {
	at    time.Time
	acked bool // at is the acknowledgement (else the arrival)
}

func newNotifyReceiver() *notifyReceiver {
	return &notifyReceiver{pending: map[int64]notifyPending{}}
}

// start is called with the first seq of the measured phase.
func (rc *notifyReceiver) start(first int64) {
	rc.mu.Lock()
	rc.from = first
	rc.mu.Unlock()
}

func (rc *notifyReceiver) measured(seq int64) bool { return rc.from > 0 && seq >= rc.from }

func (rc *notifyReceiver) ack(seq int64, at time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.measured(seq) {
		return
	}
	rc.expected++
	if p, ok := rc.pending[seq]; ok && !p.acked {
		delete(rc.pending, seq)
		rc.matched++
		rc.hist.record(p.at.Sub(at)) // negative (arrived before the answer was read) counts as 0
		return
	}
	rc.pending[seq] = notifyPending{at: at, acked: true}
}

func (rc *notifyReceiver) arrive(seq int64, at time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if seq < 0 {
		rc.probes++
		return
	}
	if !rc.measured(seq) {
		return
	}
	i := seq - rc.from
	for int64(len(rc.seen))*64 <= i {
		rc.seen = append(rc.seen, 0)
	}
	if rc.seen[i/64]&(1<<(i%64)) != 0 {
		rc.duplicates++
		return
	}
	rc.seen[i/64] |= 1 << (i % 64)
	rc.received++
	if p, ok := rc.pending[seq]; ok && p.acked {
		delete(rc.pending, seq)
		rc.matched++
		rc.hist.record(at.Sub(p.at))
		return
	}
	rc.pending[seq] = notifyPending{at: at}
}

// probed reports whether the notification of a probe (seq < 0) arrived.
func (rc *notifyReceiver) probed() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.probes > 0
}

// complete reports whether every acknowledged write has been notified.
func (rc *notifyReceiver) complete() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.matched >= rc.expected
}

func (rc *notifyReceiver) result() *benchNotify {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return &benchNotify{Expected: rc.expected, Received: rc.received, Lost: rc.expected - rc.matched,
		Duplicates: rc.duplicates, Latency: rc.hist.latency()}
}

func (rc *notifyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var n struct {
		Data []struct {
			Seq json.RawMessage `json:"seq"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&n); err != nil {
		http.Error(w, "piazza bench: not a notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	for _, d := range n.Data {
		if seq, ok := notifySeq(d.Seq); ok {
			rc.arrive(seq, at)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// notifySeq reads seq as keyValues (a number) or normalized ({"value": n}).
func notifySeq(raw json.RawMessage) (int64, bool) {
	var v int64
	if json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	var p struct{ Value *int64 }
	if json.Unmarshal(raw, &p) == nil && p.Value != nil {
		return *p.Value, true
	}
	return 0, false
}
