package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
)

// The HTTP side of the query figures of issue 3: 100,000 entities of 10
// types with 6 attributes (numbers, strings, a boolean, a point near
// Mantova or Messina) committed through the broker, then queries through
// the real handler (routing, parameters, @context, rendering; no network).

var benchServer *server

func loadedServer(b *testing.B) *server {
	if benchServer != nil {
		return benchServer
	}
	s := newServer(b, api.Options{})
	rng := rand.New(rand.NewPCG(7, 100_000))
	centers := [2][2]float64{{10.7914, 45.1564}, {15.5540, 38.1938}}
	var batch []*broker.Entity
	for i := 0; i < 100_000; i++ {
		c := centers[i%2]
		js := fmt.Sprintf(`{"id":"urn:ngsi-ld:T%d:%08d","type":"T%d","p1":{"type":"Property","value":%d},"p2":{"type":"Property","value":"w%d"},`+
			`"p3":{"type":"Property","value":%.2f},"p4":{"type":"Property","value":"name %d"},"p5":{"type":"Property","value":%v},`+
			`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[%.6f,%.6f]}}}`,
			i%10, i, i%10, rng.IntN(1000), rng.IntN(20), rng.Float64()*40-5, i, rng.IntN(2) == 0,
			c[0]+(rng.Float64()-0.5)*0.3, c[1]+(rng.Float64()-0.5)*0.3)
		v, err := broker.DecodeJSON([]byte(js))
		if err != nil {
			b.Fatal(err)
		}
		e, err := broker.ParseEntity(v, broker.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, e)
		if len(batch) == 1000 {
			if _, err := s.b.Batch(context.Background(), "", broker.BatchUpsert, batch, broker.BatchOptions{}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	benchServer = s
	return s
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchGET serves GET requests (one per path, in turn) through the
// handler and reports latency percentiles, requests/s and CPU per request.
func benchGET(b *testing.B, s *server, paths []string) {
	var lat []time.Duration
	cpu := cpuNow()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL, _ = url.Parse(paths[i%len(paths)])
		rec := httptest.NewRecorder()
		t0 := time.Now()
		s.h.ServeHTTP(rec, req)
		lat = append(lat, time.Since(t0))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", paths[i%len(paths)], rec.Code, rec.Body)
		}
		i++
	}
	used := cpuNow() - cpu
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "requests/s")
	b.ReportMetric(float64(used.Microseconds())/1000/float64(len(lat)), "cpu-ms/request")
}

// BenchmarkHTTPQueryTypeQ is GET /entities?type=Tk&q=p1>v;p2=="w".
func BenchmarkHTTPQueryTypeQ(b *testing.B) {
	s := loadedServer(b)
	var paths []string
	for i := 0; i < 64; i++ {
		paths = append(paths, fmt.Sprintf(`/ngsi-ld/v1/entities?type=T%d&q=p1>%d;p2==%%22w%d%%22`, i%10, 800+i%100, i%20))
	}
	benchGET(b, s, paths)
}

// BenchmarkHTTPQueryNear is georel=near;maxDistance==2000 around points.
func BenchmarkHTTPQueryNear(b *testing.B) {
	s := loadedServer(b)
	rng := rand.New(rand.NewPCG(3, 4))
	centers := [2][2]float64{{10.7914, 45.1564}, {15.5540, 38.1938}}
	var paths []string
	for i := 0; i < 64; i++ {
		c := centers[i%2]
		paths = append(paths, fmt.Sprintf("/ngsi-ld/v1/entities?georel=near;maxDistance==2000&geometry=Point&coordinates=[%.5f,%.5f]",
			c[0]+(rng.Float64()-0.5)*0.2, c[1]+(rng.Float64()-0.5)*0.2))
	}
	benchGET(b, s, paths)
}

// BenchmarkHTTPTypes is GET /types (and details=true) over 100,000 entities.
func BenchmarkHTTPTypes(b *testing.B) {
	s := loadedServer(b)
	b.Run("list", func(b *testing.B) { benchGET(b, s, []string{"/ngsi-ld/v1/types"}) })
	b.Run("details", func(b *testing.B) { benchGET(b, s, []string{"/ngsi-ld/v1/types?details=true"}) })
	b.Run("attributes", func(b *testing.B) { benchGET(b, s, []string{"/ngsi-ld/v1/attributes?details=true"}) })
}
