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
}

func newLatencyReceiver(tb testing.TB) *latencyReceiver {
	r := &latencyReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		data, _ := io.ReadAll(req.Body)
		now := time.Now().UnixNano()
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
			}
		}
		r.mu.Unlock()
		r.count.Add(int64(len(n.Data)))
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(r.Server.Close)
	return r
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

func stampT(tb testing.TB, b *Broker, id string) {
	f := mustParse(tb, fmt.Sprintf(`{"t":{"type":"Property","value":%d}}`, time.Now().UnixNano()), ParseOptions{Fragment: true})
	if _, err := b.Merge(context.Background(), "", id, f); err != nil {
		tb.Fatal(err)
	}
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
// the change-to-HTTP latency is reported.
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
				stampT(b, br, id)
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
	b.ReportMetric(float64(sent), "notifications")
	b.ReportMetric(float64(sent)/el.Seconds(), "notifications/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}
