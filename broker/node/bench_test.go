package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/broker"
)

// startNode runs a whole node on random ports with its data in a temp dir.
// The data-model check is off: these benchmarks measure the broker's own
// path (BenchmarkBatchUpsertValidation measures it with validation).
func startNode(tb testing.TB) *Node {
	tb.Helper()
	n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:-1", DataDir: tb.TempDir(),
		Validation: broker.ValidationConfig{PolicySet: broker.PolicySet{Default: broker.PolicyOff}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}

// aqEntity is an AirQualityObserved-like entity of about 600 bytes.
func aqEntity(i, round int) string {
	return fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:bench-%07d","type":"AirQualityObserved",`+
		`"dateObserved":{"type":"Property","value":"2024-01-10T10:00:00Z"},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79%02d,45.15%02d]}},`+
		`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm10":{"type":"Property","value":%d,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm25":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"o3":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"temperature":{"type":"Property","value":%d.1,"unitCode":"CEL"},`+
		`"relativeHumidity":{"type":"Property","value":0.%02d},`+
		`"airQualityLevel":{"type":"Property","value":"moderate"},`+
		`"refPointOfInterest":{"type":"Relationship","object":"urn:ngsi-ld:PointOfInterest:MN-%d"}}`,
		i, i%100, i%97, 30+round%50, 20+i%30, 10+i%20, 60+i%40, i%35, i%100, i%10)
}

func batchBody(start, n, round int) []byte {
	return batchBodyOf(start, n, round, "")
}

// coreContext is the member a JSON-LD client sends in each entity.
const coreContext = `"@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",`

// batchBodyOf is batchBody with member inserted first in each entity.
func batchBodyOf(start, n, round int, member string) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		e := aqEntity(start+i, round)
		b.WriteString("{" + member + e[1:])
	}
	b.WriteByte(']')
	return b.Bytes()
}

// BenchmarkBatchUpsertHTTP posts batches of 1,000 AirQualityObserved-like
// entities (about 600 bytes each) to /entityOperations/upsert over loopback,
// two clients at once, against a node with embedded NATS on disk. Every
// batch changes every entity, so every entity is committed and published.
// broker-jsonld sends the same entities as JSON-LD clients do
// (application/ld+json, an @context in each entity). The raw sub-benchmark
// publishes the same payloads straight to JetStream on the same kind of
// server: the ceiling the broker works under.
func BenchmarkBatchUpsertHTTP(b *testing.B) {
	const perBatch = 1000
	const entities = 20000 // distinct ids cycled through
	for _, v := range []struct{ name, contentType, member string }{
		{"broker", "application/json", ""},
		// As JSON-LD clients send it: an @context in each entity.
		{"broker-jsonld", "application/ld+json", coreContext},
	} {
		b.Run(v.name, func(b *testing.B) { benchUpsert(b, perBatch, entities, v.contentType, v.member) })
	}
	b.Run("raw-jetstream", func(b *testing.B) {
		n := startNode(b)
		nc, err := nats.Connect(n.NATSURL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
		payloads := make([][]byte, entities)
		for i := range payloads {
			payloads[i] = []byte(aqEntity(i, 0))
		}
		b.ReportAllocs()
		start, cpu0 := time.Now(), cpuTime()
		count := 0
		for b.Loop() {
			for i := 0; i < perBatch; i++ {
				k := (count + i) % entities
				if _, err := js.PublishAsync(fmt.Sprintf("raw.AirQualityObserved.bench-%07d", k), payloads[k]); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			count += perBatch
		}
		b.ReportMetric(float64(count)/time.Since(start).Seconds(), "entities/s")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(count), "cpu-µs/entity")
	})
}

// benchUpsert is BenchmarkBatchUpsertHTTP's broker sub-benchmark, with the
// given body type and a member added to each entity.
func benchUpsert(b *testing.B, perBatch, entities int, contentType, member string) {
	n := startNode(b)
	url := "http://" + n.HTTPAddr() + "/ngsi-ld/v1/entityOperations/upsert"
	bodies := make([][]byte, 0, 40)
	for r := 0; r < 2; r++ {
		for s := 0; s < entities; s += perBatch {
			bodies = append(bodies, batchBodyOf(s, perBatch, r, member))
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(1) // GOMAXPROCS clients
	start, cpu0 := time.Now(), cpuTime()
	batches := postBatches(b, client, url, contentType, bodies, &next)
	el := time.Since(start).Seconds()
	done := float64(batches) * float64(perBatch)
	b.ReportMetric(done/el, "entities/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/done, "cpu-µs/entity")
}

// postBatches posts bodies in turn (from next on, cycling) with
// GOMAXPROCS×parallelism clients until the benchmark's loop ends, and returns
// how many were answered 201 or 204. Consecutive bodies are batches of
// distinct ids, and a body's round flips each pass, so that every upsert
// changes its entities.
func postBatches(b *testing.B, client *http.Client, url, contentType string, bodies [][]byte, next *atomic.Int64) int64 {
	var batches atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)-1) % len(bodies)
			resp, err := client.Post(url, contentType, bytes.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			batches.Add(1)
		}
	})
	return batches.Load()
}

// cpuTime is the CPU time this process has used (user and system): on a
// shared machine it measures the work where wall time measures the load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGetEntityHTTP reads entities by id with 32 concurrent keep-alive
// clients over loopback and reports requests/s and latency percentiles.
func BenchmarkGetEntityHTTP(b *testing.B) {
	n := startNode(b)
	base := "http://" + n.HTTPAddr() + "/ngsi-ld/v1/"
	const ents = 1000
	resp, err := http.Post(base+"entityOperations/upsert", "application/json", bytes.NewReader(batchBody(0, ents, 0)))
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("load: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	b.SetParallelism(16) // 16 x GOMAXPROCS(2) = 32 clients
	b.ReportAllocs()
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			i := next.Add(1) % ents
			t0 := time.Now()
			resp, err := client.Get(fmt.Sprintf("%sentities/urn:ngsi-ld:AirQualityObserved:bench-%07d", base, i))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	el := time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el, "req/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(len(lat)), "cpu-µs/req")
	}
}

// BenchmarkGetEntityHandler measures the CPU cost of one GET /entities/{id}
// in the handler alone (no network), the part Piazza controls.
func BenchmarkGetEntityHandler(b *testing.B) {
	n := startNode(b)
	h := n.Handler()
	rec := httptestRecorder()
	req, _ := http.NewRequest("POST", "/ngsi-ld/v1/entityOperations/upsert", bytes.NewReader(batchBody(0, 100, 0)))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.code != http.StatusCreated {
		b.Fatalf("load: %d", rec.code)
	}
	get, _ := http.NewRequest("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:bench-0000042", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec.reset()
		h.ServeHTTP(rec, get)
		if rec.code != http.StatusOK {
			b.Fatalf("status %d", rec.code)
		}
	}
}

// recorder is a minimal reusable ResponseWriter for handler benchmarks.
type recorder struct {
	h    http.Header
	code int
	n    int
}

func httptestRecorder() *recorder               { return &recorder{h: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { r.n += len(p); return len(p), nil }
func (r *recorder) WriteHeader(c int)           { r.code = c }
func (r *recorder) reset()                      { clear(r.h); r.code, r.n = 0, 0 }
