package jsonld

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func benchContext(b *testing.B) *Context {
	sdm, err := os.ReadFile("testdata/sdm-environment-context.jsonld")
	if err != nil {
		b.Fatal(err)
	}
	const u = "https://smartdatamodels.org/dataModel.Environment/context.jsonld"
	l := NewLoader(LoaderOptions{Offline: true, Builtin: map[string][]byte{u: sdm}})
	c, err := l.Load(context.Background(), []any{u, CoreContextURL})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkExpand(b *testing.B) {
	c := benchContext(b)
	for _, bc := range []struct{ name, term string }{
		{"user term", "temperature"},
		{"core term", "observedAt"},
		{"absolute IRI", "https://example.org/attr"},
		{"compact IRI", "ngsi-ld:other"},
		{"default vocab", "notInAnyContext"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Expand(bc.term)
			}
		})
	}
}

func BenchmarkCompact(b *testing.B) {
	c := benchContext(b)
	for _, bc := range []struct{ name, iri string }{
		{"user term", sdmEnv + "temperature"},
		{"core term", ngsi + "observedAt"},
		{"default vocab", DefaultVocab + "notInAnyContext"},
		{"compact IRI", ngsi + "other"},
		{"unknown IRI", "https://example.org/attr"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Compact(bc.iri)
			}
		})
	}
}

// BenchmarkLoadCached is the per-entity cost in a batch whose entities all
// carry the same @context.
func BenchmarkLoadCached(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/sdm-environment-context.jsonld")
	}))
	b.Cleanup(srv.Close)
	u := srv.URL + "/context.jsonld"
	inputs := []struct {
		name string
		raw  any
	}{
		{"URL", u},
		{"array of URLs", []any{u, CoreContextURL}},
		{"inline object", map[string]any{
			"temperature": sdmEnv + "temperature", "humidity": sdmEnv + "relativeHumidity",
			"no2": sdmEnv + "no2", "pm10": sdmEnv + "pm10", "sdm": "https://smartdatamodels.org/",
		}},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			l := NewLoader(LoaderOptions{})
			ctx := context.Background()
			if _, err := l.Load(ctx, in.raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Load(ctx, in.raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "loads/s")
		})
	}
	b.Run("LoadLink", func(b *testing.B) {
		l := NewLoader(LoaderOptions{})
		h := "<" + u + `>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`
		if _, err := l.LoadLink(context.Background(), h); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.LoadLink(context.Background(), h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoadUncached is the cost of processing a remote context whose
// document is cached but whose combination is new (cache size 1, two
// alternating inputs).
func BenchmarkLoadUncached(b *testing.B) {
	sdm, err := os.ReadFile("testdata/sdm-environment-context.jsonld")
	if err != nil {
		b.Fatal(err)
	}
	const u = "https://smartdatamodels.org/dataModel.Environment/context.jsonld"
	l := NewLoader(LoaderOptions{Offline: true, CacheSize: 1, Builtin: map[string][]byte{u: sdm}})
	raws := []any{[]any{u}, []any{u, map[string]any{"x": "http://x.org/x"}}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Load(context.Background(), raws[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkParseLink(b *testing.B) {
	h := `<https://example.org/next>; rel="next", <https://smartdatamodels.org/context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLink(h); err != nil {
			b.Fatal(err)
		}
	}
}
