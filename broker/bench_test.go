package broker

import (
	"context"
	"fmt"
	"testing"
)

func benchEntity(tb testing.TB, i, round int) *Entity {
	return mustParse(tb, fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:b-%07d","type":"AirQualityObserved",`+
		`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm10":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}},`+
		`"temperature":{"type":"Property","value":%d.1,"unitCode":"CEL"},`+
		`"refPointOfInterest":{"type":"Relationship","object":"urn:ngsi-ld:PointOfInterest:MN-%d"}}`,
		i, 30+round, i%30, i%35, i%10), ParseOptions{})
}

// BenchmarkBatchUpsert commits batches of 1,000 entities through the broker
// (no HTTP): create on the first pass over the ids, replace after.
func BenchmarkBatchUpsert(b *testing.B) {
	br, _ := startBroker(b, Options{})
	const per, ids = 1000, 10000
	var batches [][]*Entity
	for r := 0; r < 2; r++ {
		for s := 0; s < ids; s += per {
			var batch []*Entity
			for i := s; i < s+per; i++ {
				batch = append(batch, benchEntity(b, i, r))
			}
			batches = append(batches, batch)
		}
	}
	ctx := context.Background()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		outs, err := br.Batch(ctx, "", BatchUpsert, batches[n%len(batches)], BatchOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range outs {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
		}
		n++
	}
	b.ReportMetric(float64(n*per)/b.Elapsed().Seconds(), "entities/s")
}

// BenchmarkReadModelLoad measures how fast a broker loads the current state
// of 100,000 stored entities from the log at start.
func BenchmarkReadModelLoad(b *testing.B) {
	br, ns := startBroker(b, Options{})
	const total = 100_000
	ctx := context.Background()
	var batch []*Entity
	for i := 0; i < total; i++ {
		batch = append(batch, benchEntity(b, i, 0))
		if len(batch) == 1000 {
			if _, err := br.Batch(ctx, "", BatchUpsert, batch, BatchOptions{}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		nb := brokerOn(b, ns, Options{})
		if got := nb.tenants[""].rm.count(); got != total {
			b.Fatalf("loaded %d entities", got)
		}
		nb.Close()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "entities/s")
}
