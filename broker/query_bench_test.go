package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The query benchmarks of issue 3: entities of 10 types with 6 attributes
// each (numbers, strings, a boolean, a location point near Mantova or
// Messina), loaded into a read model through its apply path (newRecord and
// put, as the stream consumer does; no NATS, no HTTP). Each reports latency
// percentiles, queries/s and the process CPU time per query (robust on a
// loaded machine). Sizes: 10k and 100k; 1M too with PIAZZA_BENCH_1M=1.

// benchWords are the values of p2: each one is on 1/20 of the entities.
var benchWords = func() []string {
	var w []string
	for i := 0; i < 20; i++ {
		w = append(w, fmt.Sprintf("w%d", i))
	}
	return w
}()

// Mantova and Messina.
var benchCenters = [2][2]float64{{10.7914, 45.1564}, {15.5540, 38.1938}}

func benchQueryEntity(tb testing.TB, rng *rand.Rand, i int) *Entity {
	c := benchCenters[i%2]
	lon := c[0] + (rng.Float64()-0.5)*0.3
	lat := c[1] + (rng.Float64()-0.5)*0.3
	js := fmt.Sprintf(`{"id":"urn:ngsi-ld:T%d:%08d","type":"T%d",`+
		`"p1":{"type":"Property","value":%d},`+
		`"p2":{"type":"Property","value":%q},`+
		`"p3":{"type":"Property","value":%.2f,"unitCode":"CEL","observedAt":"2024-01-10T10:00:00Z"},`+
		`"p4":{"type":"Property","value":"name %d"},`+
		`"p5":{"type":"Property","value":%v},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[%.6f,%.6f]}}}`,
		i%10, i, i%10, rng.IntN(1000), benchWords[rng.IntN(len(benchWords))], rng.Float64()*40-5, i, rng.IntN(2) == 0, lon, lat)
	return mustParse(tb, js, ParseOptions{})
}

var benchModels = map[int]*readModel{}

// benchModel returns a read model of n entities (built once per process).
func benchModel(b *testing.B, n int) *readModel {
	if rm := benchModels[n]; rm != nil {
		return rm
	}
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	rm := newReadModel(10000)
	for i := 0; i < n; i++ {
		e := benchQueryEntity(b, rng, i)
		e.CreatedAt, e.ModifiedAt = now(), now()
		rm.put(newRecord(e.ID, e.Types[0], e.Types, uint64(i+1), encodeStored(e)))
	}
	benchModels[n] = rm
	return rm
}

func benchSizes() []int {
	if os.Getenv("PIAZZA_BENCH_1M") != "" {
		return []int{10_000, 100_000, 1_000_000}
	}
	return []int{10_000, 100_000}
}

// cpuNow is the process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencies records per-operation times and reports their percentiles,
// the rate and the CPU time per operation.
type latencies struct {
	d   []time.Duration
	cpu time.Duration
}

func (l *latencies) start() { l.cpu = cpuNow() }

func (l *latencies) report(b *testing.B) {
	cpu := cpuNow() - l.cpu
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	pct := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(float64(len(l.d))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.d))/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(l.d)), "cpu-ms/query")
}

func runQueryBench(b *testing.B, rm *readModel, mk func(i int) Query) {
	ctx := context.Background()
	var l latencies
	results := 0
	b.ReportAllocs()
	l.start()
	i := 0
	for b.Loop() {
		q := mk(i)
		t0 := time.Now()
		res, err := rm.query(ctx, &q, 20)
		l.d = append(l.d, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		results += res.Total
		i++
	}
	l.report(b)
	b.ReportMetric(float64(results)/float64(i), "matches/query")
}

// BenchmarkQueryTypeQ is type=Tk&q=p1>v;p2==w, with the default page of 20.
func BenchmarkQueryTypeQ(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			rm := benchModel(b, n)
			qs := make([]Query, 64)
			for i := range qs {
				qe, err := ParseQ(fmt.Sprintf("p1>%d;p2==%q", 800+i%100, benchWords[i%len(benchWords)]), nil)
				if err != nil {
					b.Fatal(err)
				}
				qs[i] = Query{Types: []string{fmt.Sprintf("T%d", i%10)}, Q: qe}
			}
			runQueryBench(b, rm, func(i int) Query { return qs[i%len(qs)] })
		})
	}
}

// BenchmarkQueryNear is georel=near;maxDistance==2000 around points of
// Mantova and Messina, over located entities.
func BenchmarkQueryNear(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			rm := benchModel(b, n)
			rng := rand.New(rand.NewPCG(3, 4))
			qs := make([]Query, 64)
			for i := range qs {
				c := benchCenters[i%2]
				g, err := ParseGeoQuery("near;maxDistance==2000", "Point",
					fmt.Sprintf("[%.5f,%.5f]", c[0]+(rng.Float64()-0.5)*0.2, c[1]+(rng.Float64()-0.5)*0.2), "", nil)
				if err != nil {
					b.Fatal(err)
				}
				qs[i] = Query{Geo: g}
			}
			runQueryBench(b, rm, func(i int) Query { return qs[i%len(qs)] })
		})
	}
}

// BenchmarkQueryParallel is BenchmarkQueryTypeQ from every core at once:
// the rate a replica sustains.
func BenchmarkQueryParallel(b *testing.B) {
	rm := benchModel(b, 100_000)
	qe, err := ParseQ(`p1>900;p2=="w3"`, nil)
	if err != nil {
		b.Fatal(err)
	}
	q := Query{Types: []string{"T3"}, Q: qe}
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuNow()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q := q
			if _, err := rm.query(ctx, &q, 20); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64((cpuNow()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/query")
}

// BenchmarkIndexMemory reports the heap per entity of a loaded read model
// (records, maps and indexes) and the part the secondary indexes take.
func BenchmarkIndexMemory(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rng := rand.New(rand.NewPCG(7, uint64(n)))
			rm := newReadModel(0)
			for i := 0; i < n; i++ {
				e := benchQueryEntity(b, rng, i)
				e.CreatedAt, e.ModifiedAt = now(), now()
				rm.put(newRecord(e.ID, e.Types[0], e.Types, uint64(i+1), encodeStored(e)))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			for b.Loop() {
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/entity")
			b.ReportMetric(float64(rm.ix.bytes())/float64(n), "index-B/entity")
			runtime.KeepAlive(rm)
		})
	}
}

// BenchmarkReadModelApply measures the apply path alone (newRecord, which
// reads the index keys from the stored form, and put), per entity.
func BenchmarkReadModelApply(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	stored := make([][]byte, 10_000)
	ents := make([]*Entity, len(stored))
	for i := range stored {
		ents[i] = benchQueryEntity(b, rng, i)
		stored[i] = encodeStored(ents[i])
	}
	rm := newReadModel(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := ents[i%len(ents)]
		rm.put(newRecord(e.ID, e.Types[0], e.Types, uint64(i+1), stored[i%len(stored)]))
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "entities/s")
}
