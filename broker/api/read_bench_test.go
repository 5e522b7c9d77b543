package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// aqSensor is an AirQualityObserved-like entity of about 600 bytes, as the
// node benchmarks load.
func aqSensor(i int) string {
	return fmt.Sprintf(`{"id":"urn:ngsi-ld:AirQualityObserved:r-%04d","type":"AirQualityObserved",`+
		`"dateObserved":{"type":"Property","value":"2024-01-10T10:00:00Z"},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}},`+
		`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm10":{"type":"Property","value":22,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
		`"pm25":{"type":"Property","value":12,"unitCode":"GQ"},"o3":{"type":"Property","value":60,"unitCode":"GQ"},`+
		`"temperature":{"type":"Property","value":12.1,"unitCode":"CEL"},"relativeHumidity":{"type":"Property","value":0.5},`+
		`"airQualityLevel":{"type":"Property","value":"moderate"},`+
		`"refPointOfInterest":{"type":"Relationship","object":"urn:ngsi-ld:PointOfInterest:MN-1"}}`, i, 30+i%50)
}

// BenchmarkGetEntityViews measures GET /entities/{id} in the handler alone
// (no network) in several representations, over 1,000 entities read in
// turn: "hit" once every representation is kept with its revision, "miss"
// with the entity cache off (every read decodes and renders).
func BenchmarkGetEntityViews(b *testing.B) {
	loader := jsonld.NewLoader(jsonld.LoaderOptions{Offline: true, Files: map[string]string{readViewContext: "testdata/readview/context.jsonld"}})
	cases := []struct {
		name, query string
		hdr         []string
	}{
		{"normalized", "", nil},
		{"keyValues", "?options=keyValues", nil},
		{"concise-sysAttrs", "?options=concise,sysAttrs", nil},
		{"attrs", "?attrs=no2,pm10", nil},
		{"ld", "", []string{"Accept", "application/ld+json"}},
		{"geojson", "", []string{"Accept", "application/geo+json"}},
		{"user-context", "", linkUser},
	}
	for _, cache := range []struct {
		name string
		size int
	}{{"hit", 0}, {"miss", -1}} {
		b.Run(cache.name, func(b *testing.B) {
			bk := newBrokerWith(b, broker.Options{EntityCache: cache.size})
			h := api.New(bk, api.Options{Contexts: loader})
			const n = 1000
			for i := range n {
				req := httptest.NewRequest("POST", "/ngsi-ld/v1/entities", strings.NewReader(aqSensor(i)))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("create: %d %s", rec.Code, rec.Body)
				}
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					reqs := make([]*http.Request, n)
					for i := range reqs {
						reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:r-%04d%s", i, c.query), nil)
						for j := 0; j+1 < len(c.hdr); j += 2 {
							reqs[i].Header.Set(c.hdr[j], c.hdr[j+1])
						}
					}
					w := &nullWriter{h: http.Header{}}
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						clear(w.h)
						w.code = 0
						h.ServeHTTP(w, reqs[i%n])
						if w.code != http.StatusOK {
							b.Fatalf("status %d", w.code)
						}
						i++
					}
				})
			}
		})
	}
}

// nullWriter is a reusable ResponseWriter that keeps only the status.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(c int)           { w.code = c }
