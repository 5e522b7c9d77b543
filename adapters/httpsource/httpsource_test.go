package httpsource_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all"
	"github.com/piazza-city/piazza/adapters/httpsource"
)

// The real ANPR population extract, served as a municipal site would.
const popFile = "../testdata/anpr/anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv"

// collector is an Emitter that keeps what it gets; onSync runs after each
// Sync with the number of syncs so far.
type collector struct {
	mu       sync.Mutex
	records  []adapters.Record
	rejected []error
	syncs    int
	perSync  []int
	onSync   func(n int) error
	onEmit   func(adapters.Record) error
}

func (c *collector) Emit(r adapters.Record) error {
	if c.onEmit != nil {
		if err := c.onEmit(r); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r)
	return nil
}

func (c *collector) Reject(r adapters.Record, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejected = append(c.rejected, err)
	return nil
}

func (c *collector) Sync() error {
	c.mu.Lock()
	c.syncs++
	n := c.syncs
	c.perSync = append(c.perSync, len(c.records))
	c.mu.Unlock()
	if c.onSync != nil {
		return c.onSync(n)
	}
	return nil
}

// sinkCollector is a Sink that keeps every entity delivered.
type sinkCollector struct{ entities []adapters.Entity }

func (s *sinkCollector) Deliver(_ context.Context, b []adapters.Entity) (adapters.DeliveryResult, error) {
	s.entities = append(s.entities, b...)
	return adapters.DeliveryResult{Written: len(b)}, nil
}
func (s *sinkCollector) Close() error { return nil }

func newSource(t *testing.T, settings map[string]any) adapters.Source {
	t.Helper()
	cfg, err := adapters.NewSourceConfig("http", settings)
	if err != nil {
		t.Fatal(err)
	}
	src, err := adapters.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// TestPresetOverHTTP runs the ANPR population preset on the real extract
// served over HTTP, as 'piazza ingest --preset ... --source URL' does.
func TestPresetOverHTTP(t *testing.T) {
	data, err := os.ReadFile(popFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		http.ServeContent(w, r, "popolazione_residente_export.csv", time.Date(2024, 1, 10, 6, 0, 0, 0, time.UTC), bytes.NewReader(data))
	}))
	defer srv.Close()
	cfg, err := adapters.PresetURLPipeline("anpr_popolazione_residente", srv.URL+"/data/popolazione_residente_export.csv", adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Kind != "http" {
		t.Fatalf("source kind %q, want http", cfg.Source.Kind)
	}
	sink := &sinkCollector{}
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Sink: sink})
	if err != nil {
		t.Fatalf("%v %+v", err, sum.Errors)
	}
	if sum.Read != 172 || len(sink.entities) != 172 {
		t.Fatalf("read %d, delivered %d; want 172", sum.Read, len(sink.entities))
	}
	if id := sink.entities[0].ID(); id != "urn:ngsi-ld:Observation:anpr:popolazione-residente:020001:2024-01-10" {
		t.Errorf("first entity %s", id)
	}
}

// TestConditionalPolling polls a file three times: the first poll reads it,
// the second is answered 304 (If-None-Match / If-Modified-Since) and emits
// nothing, the third reads the changed file.
func TestConditionalPolling(t *testing.T) {
	for _, validator := range []string{"etag", "last-modified"} {
		t.Run(validator, func(t *testing.T) {
			var mu sync.Mutex
			body := "codice;pm10\nMN01;31,5\nMN02;28\n"
			mod := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
			version := 1
			var statuses []int
			var conditional []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				b, m, v := body, mod, version
				conditional = append(conditional, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
				mu.Unlock()
				rec := httptest.NewRecorder() // to see the status ServeContent chose
				if validator == "etag" {
					rec.Header().Set("ETag", `"v`+strings.Repeat("1", v)+`"`)
					m = time.Time{} // no Last-Modified
				}
				http.ServeContent(rec, r, "misure.csv", m, strings.NewReader(b))
				mu.Lock()
				statuses = append(statuses, rec.Code)
				mu.Unlock()
				for k, vs := range rec.Header() {
					w.Header()[k] = vs
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
			}))
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := &collector{onSync: func(n int) error {
				switch n {
				case 2: // the file changes after the 304
					mu.Lock()
					body += "MN03;40\n"
					mod = mod.Add(time.Hour)
					version++
					mu.Unlock()
				case 3:
					cancel()
				}
				return nil
			}}
			src := newSource(t, map[string]any{"url": srv.URL + "/misure.csv", "interval": "1ms", "separator": ";"})
			err := src.Run(ctx, c)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want context.Canceled", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(statuses) < 3 || statuses[0] != 200 || statuses[1] != 304 || statuses[2] != 200 {
				t.Fatalf("statuses %v, want 200, 304, 200", statuses)
			}
			if conditional[0] != "|" || conditional[1] == "|" {
				t.Errorf("conditional headers %q: none on the first poll, some on the second", conditional)
			}
			if want := []int{2, 2, 5}; len(c.perSync) < 3 || c.perSync[0] != want[0] || c.perSync[1] != want[1] || c.perSync[2] != want[2] {
				t.Errorf("records after each poll %v, want %v", c.perSync, want)
			}
			if v, _ := c.records[4].Get("pm10"); v != "40" {
				t.Errorf("last record pm10 = %v", v)
			}
			if c.records[0].Input != srv.URL+"/misure.csv" || c.records[0].Line != 2 {
				t.Errorf("record position %s:%d", c.records[0].Input, c.records[0].Line)
			}
		})
	}
}

// TestFailedPollRetried: with a schedule a failing server is logged and
// polled again; without one the error ends the run.
func TestFailedPollRetried(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			http.Error(w, "manutenzione in corso", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":{"records":[{"id":"a","v":1},{"id":"b","v":2}]}}`))
	}))
	defer srv.Close()

	once := newSource(t, map[string]any{"url": srv.URL + "/api", "records": "result.records"})
	err := once.Run(context.Background(), &collector{})
	if !errors.Is(err, httpsource.ErrFetch) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "manutenzione") {
		t.Fatalf("one-shot on a 503: %v", err)
	}

	var logs bytes.Buffer
	cfg, _ := adapters.NewSourceConfig("http", map[string]any{"url": srv.URL + "/api", "records": "result.records", "interval": "1ms"})
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	mu.Lock()
	calls = 0
	mu.Unlock()
	src, err := adapters.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{onSync: func(int) error { cancel(); return nil }}
	if err := src.Run(ctx, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if len(c.records) != 2 || !strings.Contains(logs.String(), "poll failed") {
		t.Errorf("records %d, logs %q", len(c.records), logs.String())
	}
}

// TestEmitterErrorStopsPolling: an error from the pipeline stops a polled
// source at once and comes back unchanged.
func TestEmitterErrorStopsPolling(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write([]byte("a,b\n1,2\n3,4\n"))
	}))
	defer srv.Close()
	stop := errors.New("pipeline stopped")
	src := newSource(t, map[string]any{"url": srv.URL + "/x", "interval": "1ms"})
	c := &collector{onEmit: func(adapters.Record) error { return stop }}
	if err := src.Run(context.Background(), c); err != stop {
		t.Fatalf("Run: %v, want the emitter's error unchanged", err)
	}
}

func TestFormatFromContentType(t *testing.T) {
	tests := []struct {
		ct, body string
		records  int
		err      error
	}{
		{"application/geo+json", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"n":"Piazza Sordello"},"geometry":{"type":"Point","coordinates":[10.7972,45.1602]}}]}`, 1, nil},
		{"application/x-ndjson", "{\"a\":1}\n{\"a\":2}\n", 2, nil},
		{"text/csv; charset=utf-8", "a\n1\n2\n3\n", 3, nil},
		{"application/json", `[{"a":1}]`, 1, nil},
		{"text/html", "<html></html>", 0, httpsource.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ct)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &collector{}
			err := newSource(t, map[string]any{"url": srv.URL + "/feed"}).Run(context.Background(), c)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if len(c.records) != tt.records {
				t.Errorf("%d records, want %d", len(c.records), tt.records)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer segreto" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("a,b\n1,2\n"))
	}))
	defer srv.Close()
	src, err := httpsource.New(httpsource.Config{URL: srv.URL + "/x.csv", Client: srv.Client(), Headers: map[string]string{"Authorization": "Bearer segreto"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if err := src.Run(context.Background(), c); err != nil || len(c.records) != 1 {
		t.Fatalf("%v, %d records", err, len(c.records))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		want     string
	}{
		{"no url", map[string]any{"format": "csv"}, "url is required"},
		{"not http", map[string]any{"url": "ftp://example.org/x.csv"}, "want http(s)"},
		{"unknown format", map[string]any{"url": "http://example.org/x", "format": "xml"}, `format "xml"`},
		{"format key typo", map[string]any{"url": "http://example.org/x.csv", "separatr": ";"}, `unknown key "separatr"`},
		{"bad separator", map[string]any{"url": "http://example.org/x.csv", "separator": "#"}, "separator"},
		{"bad interval", map[string]any{"url": "http://example.org/x.csv", "interval": "often"}, "not a duration"},
		{"bad header", map[string]any{"url": "http://example.org/x.csv", "headers": map[string]any{"X Bad": "1"}}, "header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := adapters.NewSourceConfig("http", tt.settings)
			if err != nil {
				t.Fatal(err)
			}
			_, err = adapters.NewSource(cfg)
			if err == nil || !errors.Is(err, adapters.ErrInvalidConfig) && !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}
