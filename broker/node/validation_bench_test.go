//go:build unix

package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
)

// validAQ is a valid AirQualityObserved in the normalized form, as a city's
// sensor platform sends it: 15 attributes besides id and type, dateObserved
// with a UTC offset, a GeoJSON location, an address. The values change with
// round, so that each upsert of a new round changes (and commits) the entity.
func validAQ(i, round int) string {
	return fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:val-%07d","type":"AirQualityObserved",`+
		`"dateObserved":{"type":"Property","value":"2025-11-20T%02d:00:00+01:00"},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.7%03d,45.1%03d]}},`+
		`"address":{"type":"Property","value":{"addressCountry":"IT","addressLocality":"Mantova","streetAddress":"Via Ariosto %d"}},`+
		`"areaServed":{"type":"Property","value":"Mantova centro"},`+
		`"airQualityIndex":{"type":"Property","value":%d},`+
		`"airQualityLevel":{"type":"Property","value":"moderate"},`+
		`"reliability":{"type":"Property","value":0.9},`+
		`"temperature":{"type":"Property","value":%d.4,"unitCode":"CEL"},`+
		`"relativeHumidity":{"type":"Property","value":0.%02d},`+
		`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ"},`+
		`"pm10":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"pm25":{"type":"Property","value":%d.2,"unitCode":"GQ"},`+
		`"o3":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"so2":{"type":"Property","value":%d,"unitCode":"GQ"},`+
		`"source":{"type":"Property","value":"https://www.arpalombardia.it"}}`,
		i, round%24, i%1000, i%997, i%200, 20+round%60, round%30, 10+i%89, 30+round%50, 20+i%30, 10+round%20, 60+i%40, i%15)
}

func validBatch(start, n, round int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(validAQ(start+i, round))
	}
	b.WriteByte(']')
	return b.Bytes()
}

// BenchmarkBatchUpsertValidation posts batches of 1,000 valid
// AirQualityObserved entities (normalized, 15 attributes, about 1.1 KB each)
// to /entityOperations/upsert over loopback, with GOMAXPROCS clients (two on
// the 2-core target machine), to a node with embedded NATS on disk: "on"
// validates every entity against the Smart Data Model (policy enforce),
// "off" does not (policy off). Every batch changes every entity, so each is
// validated, committed and published. Before timing, an invalid entity
// proves the policy: rejected with validation on, accepted with it off.
func BenchmarkBatchUpsertValidation(b *testing.B) {
	const perBatch = 1000
	const entities = 20000 // distinct ids, cycled through
	bodies := make([][]byte, 0, 2*entities/perBatch)
	for r := 0; r < 2; r++ {
		for s := 0; s < entities; s += perBatch {
			bodies = append(bodies, validBatch(s, perBatch, r))
		}
	}
	for _, v := range []struct {
		name   string
		policy broker.Policy
	}{{"on", broker.PolicyEnforce}, {"off", broker.PolicyOff}} {
		n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: b.TempDir(),
			Validation: broker.ValidationConfig{PolicySet: broker.PolicySet{Default: v.policy}}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		url := "http://" + n.HTTPAddr() + "/ngsi-ld/v1/entityOperations/upsert"
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

		// The policy is in force: one invalid entity (tsp 73.3).
		bad := strings.Replace(validAQ(9999999, 0), `"so2"`, `"tsp":{"type":"Property","value":73.3},"so2"`, 1)
		resp, err := client.Post(url, "application/json", strings.NewReader("["+bad+"]"))
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rejected := resp.StatusCode == http.StatusMultiStatus && bytes.Contains(body, []byte(`"/tsp"`))
		if rejected != (v.policy == broker.PolicyEnforce) {
			b.Fatalf("validation %s: an invalid entity answered %d %s", v.name, resp.StatusCode, body)
		}

		// next runs on across the runs of the sub-benchmark, so that no run
		// starts on batches whose entities already hold their values.
		var next atomic.Int64
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(1) // GOMAXPROCS clients
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			batches := postBatches(b, client, url, "application/json", bodies, &next)
			el, cpu := time.Since(start), cpuTime()-cpu0
			ents := float64(batches * perBatch)
			b.ReportMetric(ents/el.Seconds(), "entities/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/ents, "cpu-ns/entity")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "clients")
		})
	}
}
