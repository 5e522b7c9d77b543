package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencyReceiver is a local HTTP endpoint that counts notifications and
// measures, for each entity in them, the time since its change was written
// (the "t" attribute holds the writer's clock in nanoseconds).
type latencyReceiver struct {
	*httptest.Server
	count atomic.Int64
	mu    sync.Mutex
	lat   []time.Duration
	// arrived is when the notification of each write arrived, by its "t".
	arrived map[int64]time.Time
	// acked is when each write was acknowledged to its writer, by its "t".
	acked map[int64]time.Time
}

func newLatencyReceiver(tb testing.TB) *latencyReceiver {
	r := &latencyReceiver{arrived: map[int64]time.Time{}, acked: map[int64]time.Time{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		data, _ := io.ReadAll(req.Body)
		at := time.Now()
		now := at.UnixNano()
		var n struct {
			Data []struct {
				T json.Number `json:"t"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &n); err != nil {
			tb.Errorf("notification: %v", err)
		}
		r.mu.Lock()
		for _, d := range n.Data {
			if t, err := strconv.ParseInt(string(d.T), 10, 64); err == nil {
				r.lat = append(r.lat, time.Duration(now-t))
				r.arrived[t] = at
			}
		}
		r.mu.Unlock()
		r.count.Add(int64(len(n.Data)))
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(r.Server.Close)
	return r
}

// fromCommit is the latency from each write's acknowledgement (its commit,
// as its writer learns of it) to the arrival of its notification, at the
// 50th and 99th percentiles; a notification that came first counts as 0.
func (r *latencyReceiver) fromCommit() (p50, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []time.Duration
	for t, ack := range r.acked {
		if at, ok := r.arrived[t]; ok {
			l = append(l, max(at.Sub(ack), 0))
		}
	}
	if len(l) == 0 {
		return 0, 0
	}
	slices.Sort(l)
	return l[len(l)/2], l[len(l)*99/100]
}

func (r *latencyReceiver) percentiles() (p50, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) == 0 {
		return 0, 0
	}
	l := slices.Clone(r.lat)
	slices.Sort(l)
	return l[len(l)/2], l[len(l)*99/100]
}

// stampT writes the writer's clock into id's "t" and returns that value.
func stampT(tb testing.TB, b *Broker, id string) int64 {
	t := time.Now().UnixNano()
	f := mustParse(tb, fmt.Sprintf(`{"t":{"type":"Property","value":%d}}`, t), ParseOptions{Fragment: true})
	if _, err := b.Merge(context.Background(), "", id, f); err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkNotifyHTTP measures notifications delivered per second to a
// local HTTP endpoint, one subscription, one entity change per iteration
// (keyValues), and the change-to-delivery latency.
func BenchmarkNotifyHTTP(b *testing.B) {
	br, _ := startBroker(b, Options{})
	rec := newLatencyReceiver(b)
	n, _ := startNotifier(b, br, NotifierOptions{})
	waitLeading(b, n)
	const ents = 100
	for i := 0; i < ents; i++ {
		if _, err := br.Create(context.Background(), "", vehicle(b, fmt.Sprintf("urn:V:%d", i), `,"t":{"type":"Property","value":0}`)); err != nil {
			b.Fatal(err)
		}
	}
	subscribe(b, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"format":"keyValues","attributes":["t"],"endpoint":{"uri":"`+rec.URL+`"}}}`)
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		stampT(b, br, fmt.Sprintf("urn:V:%d", i%ents))
		i++
	}
	waitFor(b, time.Minute, "every notification", func() bool { return rec.count.Load() >= int64(i) })
	el := time.Since(start)
	p50, p99 := rec.percentiles()
	b.ReportMetric(float64(i)/el.Seconds(), "notifications/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// BenchmarkNotify1000Subscriptions: 1,000 subscriptions, each on its own
// entity, and entity updates written at a fixed rate of 1,000/s for two
// seconds (b.N rounds). Every notification is counted (none may be lost);
// the change-to-HTTP latency is reported twice: p50-ms/p99-ms from before
// the write (the write's own time included), commit-p50-ms/commit-p99-ms
// from its acknowledgement (the commit) to the notification's arrival.
func BenchmarkNotify1000Subscriptions(b *testing.B) {
	br, _ := startBroker(b, Options{})
	rec := newLatencyReceiver(b)
	n, _ := startNotifier(b, br, NotifierOptions{})
	waitLeading(b, n)
	const subs = 1000
	ctx := context.Background()
	for i := 0; i < subs; i++ {
		id := fmt.Sprintf("urn:V:%d", i)
		if _, err := br.Create(ctx, "", vehicle(b, id, `,"t":{"type":"Property","value":0}`)); err != nil {
			b.Fatal(err)
		}
		subscribe(b, n.Store(), "", `{"type":"Subscription","entities":[{"id":"`+id+`","type":"Vehicle"}],"notificationTrigger":["attributeUpdated"],
			"notification":{"format":"keyValues","attributes":["t"],"endpoint":{"uri":"`+rec.URL+`"}}}`)
	}
	// Let every delivery worker start.
	time.Sleep(2 * time.Second)
	const rate, seconds = 1000, 2
	sent := 0
	start := time.Now()
	for b.Loop() {
		tick := time.NewTicker(time.Second / rate)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for k := 0; k < rate*seconds; k++ {
			<-tick.C
			id := fmt.Sprintf("urn:V:%d", sent%subs)
			sent++
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := stampT(b, br, id)
				acked := time.Now()
				rec.mu.Lock()
				rec.acked[t] = acked
				rec.mu.Unlock()
				<-sem
			}()
		}
		tick.Stop()
		wg.Wait()
	}
	waitFor(b, 2*time.Minute, "every notification", func() bool { return rec.count.Load() >= int64(sent) })
	el := time.Since(start)
	if got := rec.count.Load(); got != int64(sent) {
		b.Fatalf("%d notifications for %d updates", got, sent)
	}
	p50, p99 := rec.percentiles()
	c50, c99 := rec.fromCommit()
	b.ReportMetric(float64(c50.Microseconds())/1000, "commit-p50-ms")
	b.ReportMetric(float64(c99.Microseconds())/1000, "commit-p99-ms")
	b.ReportMetric(float64(sent), "notifications")
	b.ReportMetric(float64(sent)/el.Seconds(), "notifications/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}
