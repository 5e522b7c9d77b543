package fastjson

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// entityArray builds a JSON array of n normalized AirQualityObserved
// entities, each with its own id, values and observation time.
func entityArray(tb testing.TB, n int) []byte {
	tb.Helper()
	one, err := os.ReadFile("testdata/airquality.normalized.json")
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := string(one)
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		s := strings.ReplaceAll(tmpl, "Madrid-28079004", "Madrid-"+strconv.Itoa(28079000+i))
		s = strings.ReplaceAll(s, "11:00:00Z", "11:"+strconv.Itoa(10+i%50)+":"+strconv.Itoa(10+i%47)+"Z")
		s = strings.ReplaceAll(s, `"value":22,`, `"value":`+strconv.Itoa(i%97)+`,`)
		s = strings.ReplaceAll(s, `"value":12.2,`, `"value":`+strconv.Itoa(i%30)+"."+strconv.Itoa(i%10)+`,`)
		s = strings.ReplaceAll(s, `"value":0.54,`, `"value":0.`+strconv.Itoa(10+i%89)+`,`)
		b.WriteString(s)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// benchmarkDecoders runs Decode and encoding/json on the same data. Besides
// ns/op, MB/s and allocations it reports unit (entities/s) and cpu-ns/op: the
// process CPU time per op (GC workers included), which a loaded machine
// disturbs less than wall time.
func benchmarkDecoders(b *testing.B, data []byte, entities int, unit string) {
	if _, err := stdDecode(data); err != nil {
		b.Fatal(err)
	}
	for _, dec := range []struct {
		name   string
		decode func([]byte) (any, error)
	}{{"fastjson", Decode}, {"encoding_json", stdDecode}} {
		b.Run(dec.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			cpu0, cpuOK := cpuTime()
			for b.Loop() {
				if _, err := dec.decode(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(entities)*float64(b.N)/b.Elapsed().Seconds(), unit)
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkDecodeEntity decodes one normalized NGSI-LD entity (1226 bytes:
// 10 Properties with unitCode and observedAt, a GeoProperty, a Relationship).
func BenchmarkDecodeEntity(b *testing.B) {
	data, err := os.ReadFile("testdata/airquality.normalized.json")
	if err != nil {
		b.Fatal(err)
	}
	benchmarkDecoders(b, data, 1, "entities/s")
}

// BenchmarkDecodeEntityArray decodes a batch of 1000 such entities.
func BenchmarkDecodeEntityArray(b *testing.B) {
	benchmarkDecoders(b, entityArray(b, 1000), 1000, "entities/s")
}

// BenchmarkDecodeSchema decodes the largest Smart Data Models file (a JSON
// Schema, 34 KB, mostly long description strings).
func BenchmarkDecodeSchema(b *testing.B) {
	data, err := os.ReadFile("testdata/smartdatamodels/common-schema.json")
	if err != nil {
		b.Fatal(err)
	}
	benchmarkDecoders(b, data, 1, "docs/s")
}
