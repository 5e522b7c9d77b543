package ckansource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all"
	"github.com/piazza-city/piazza/adapters/ckansource"
)

const (
	dataset   = "qualita-aria-giornaliera-per-stazione"
	dsID      = "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d"
	dsRecords = 2300
)

// portal is a CKAN portal in a test server: package_show from the fixture,
// datastore_search over generated records, resource downloads.
type portal struct {
	*httptest.Server
	mu           sync.Mutex
	lastModified string
	searches     []string // query strings of datastore_search calls
	auth         []string
	records      []map[string]any
}

func newPortal(t *testing.T) *portal {
	t.Helper()
	pkg, err := os.ReadFile("testdata/package_show.json")
	if err != nil {
		t.Fatal(err)
	}
	stations, err := os.ReadFile("testdata/qaria_stazioni.csv")
	if err != nil {
		t.Fatal(err)
	}
	p := &portal{lastModified: "2024-03-01T06:00:10.000000"}
	pollutants := []string{"NO2", "PM10", "PM25", "O3", "CO_8h"}
	for i := 0; i < dsRecords; i++ {
		p.records = append(p.records, map[string]any{
			"_id": i + 1, "stazione_id": strconv.Itoa(1 + i%3),
			"data":       fmt.Sprintf("2024-%02d-%02dT00:00:00", 1+(i/150)%12, 1+(i/5)%28),
			"inquinante": pollutants[i%5], "valore": float64(10+i%60) + 0.5,
		})
	}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"help": "%s/api/3/action/help_show", "success": false, "error": {"__type": %q, "message": %q}}`, p.URL, typ, msg)
	}
	mux.HandleFunc("/api/3/action/package_show", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		lm := p.lastModified
		p.mu.Unlock()
		if id := r.URL.Query().Get("id"); id != dataset && id != "6c1f0a3e-2d4b-4e8a-9b7c-1a2b3c4d5e6f" {
			fail(w, http.StatusNotFound, "Not Found Error", "Not found")
			return
		}
		body := strings.ReplaceAll(string(pkg), "{{SERVER}}", p.URL)
		body = strings.Replace(body, `"last_modified": "2024-03-01T06:00:10.000000"`, `"last_modified": "`+lm+`"`, 1)
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		_, _ = w.Write([]byte(body))
	})
	mux.HandleFunc("/api/3/action/datastore_search", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		p.searches = append(p.searches, r.URL.RawQuery)
		p.mu.Unlock()
		if q.Get("resource_id") != dsID {
			fail(w, http.StatusNotFound, "Not Found Error", "Resource \""+q.Get("resource_id")+"\" was not found.")
			return
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		offset, _ := strconv.Atoi(q.Get("offset"))
		if limit == 0 {
			limit = 100
		}
		var filters map[string]any
		if f := q.Get("filters"); f != "" {
			if err := json.Unmarshal([]byte(f), &filters); err != nil {
				fail(w, http.StatusConflict, "Validation Error", "filters: Cannot parse JSON")
				return
			}
		}
		var all []map[string]any
		for _, rec := range p.records {
			ok := true
			for k, v := range filters {
				ok = ok && fmt.Sprint(rec[k]) == fmt.Sprint(v)
			}
			if ok {
				all = append(all, rec)
			}
		}
		page := all[min(offset, len(all)):min(offset+limit, len(all))]
		res := map[string]any{
			"include_total": true, "limit": limit, "records_format": "objects", "resource_id": dsID,
			"total_estimation_threshold": nil,
			"fields": []map[string]any{{"id": "_id", "type": "int"}, {"id": "stazione_id", "type": "text"},
				{"id": "data", "type": "timestamp"}, {"id": "inquinante", "type": "text"}, {"id": "valore", "type": "numeric"}},
			"records": page,
			"_links": map[string]any{"start": "/api/3/action/datastore_search?resource_id=" + dsID,
				"next": fmt.Sprintf("/api/3/action/datastore_search?offset=%d&resource_id=%s", offset+limit, dsID)},
			"total": len(all),
		}
		if offset > 0 {
			res["offset"] = offset
		}
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		_ = json.NewEncoder(w).Encode(map[string]any{"help": p.URL + "/api/3/action/help_show?name=datastore_search", "success": true, "result": res})
	})
	mux.HandleFunc("/dataset/6c1f0a3e/resource/1d2e3f4a/download/qaria_stazioni.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write(stations)
	})
	mux.HandleFunc("/broken/api/3/action/package_show", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

type collector struct {
	records []adapters.Record
	perSync []int
	onSync  func(n int)
}

func (c *collector) Emit(r adapters.Record) error { c.records = append(c.records, r); return nil }
func (c *collector) Reject(r adapters.Record, err error) error {
	return fmt.Errorf("unexpected reject: %v", err)
}
func (c *collector) Sync() error {
	c.perSync = append(c.perSync, len(c.records))
	if c.onSync != nil {
		c.onSync(len(c.perSync))
	}
	return nil
}

func source(t *testing.T, settings map[string]any) adapters.Source {
	t.Helper()
	cfg, err := adapters.NewSourceConfig("ckan", settings)
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

// TestDatastorePaging reads the DataStore resource the dataset points to,
// 1000 records a page, in _id order.
func TestDatastorePaging(t *testing.T) {
	p := newPortal(t)
	c := &collector{}
	src := source(t, map[string]any{"url": p.URL, "dataset": dataset, "apiKey": "chiave-segreta"})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != dsRecords {
		t.Fatalf("%d records, want %d", len(c.records), dsRecords)
	}
	if len(p.searches) != 3 {
		t.Errorf("%d datastore_search calls, want 3 pages: %v", len(p.searches), p.searches)
	}
	for i, q := range p.searches {
		if !strings.Contains(q, "limit=1000") || !strings.Contains(q, fmt.Sprintf("offset=%d", i*1000)) || !strings.Contains(q, "sort=_id") {
			t.Errorf("call %d: %s", i, q)
		}
	}
	if p.auth[0] != "chiave-segreta" {
		t.Errorf("Authorization %q", p.auth[0])
	}
	r := c.records[1500]
	if r.Index != 1501 || r.Header.Names()[1] != "stazione_id" || !r.Header.Tabular() {
		t.Errorf("record 1501: index %d, header %v", r.Index, r.Header.Names())
	}
	if v, _ := r.Get("_id"); fmt.Sprint(v) != "1501" {
		t.Errorf("_id = %v", v)
	}
	if v, _ := r.Get("valore"); v != json.Number("10.5") {
		t.Errorf("valore = %#v, want json.Number 10.5", v)
	}
	if !strings.Contains(r.Raw, `"inquinante":"NO2"`) || !strings.HasPrefix(r.Input, p.URL+"/api/3/action/datastore_search?resource_id=") {
		t.Errorf("raw %q, input %q", r.Raw, r.Input)
	}
}

func TestDatastoreFilters(t *testing.T) {
	p := newPortal(t)
	c := &collector{}
	src := source(t, map[string]any{"url": p.URL + "/", "resource": dsID, "filters": map[string]any{"inquinante": "PM10"}, "pageSize": 200})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != dsRecords/5 {
		t.Fatalf("%d records, want %d", len(c.records), dsRecords/5)
	}
	for _, r := range c.records {
		if v, _ := r.Get("inquinante"); v != "PM10" {
			t.Fatalf("record %d: %v", r.Index, v)
		}
	}
	if !strings.Contains(p.searches[0], "filters=%7B%22inquinante%22%3A%22PM10%22%7D") {
		t.Errorf("filters not sent: %s", p.searches[0])
	}
}

// TestDownloadResource reads a resource that is not in the DataStore from
// its url, in its format, with the format's settings.
func TestDownloadResource(t *testing.T) {
	p := newPortal(t)
	c := &collector{}
	src := source(t, map[string]any{"url": p.URL, "dataset": dataset, "resource": "anagrafica stazioni", "separator": ";"})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != 3 {
		t.Fatalf("%d records", len(c.records))
	}
	if v, _ := c.records[2].Get("LONG_X_4326"); v != "9.2311" {
		t.Errorf("LONG_X_4326 = %v", v)
	}
	if c.records[0].Line != 2 || !strings.HasSuffix(c.records[0].Input, "qaria_stazioni.csv") {
		t.Errorf("position %s:%d", c.records[0].Input, c.records[0].Line)
	}
}

// TestPollingSkipsUnmodified: a second poll of an unchanged resource calls
// package_show only; after last_modified moves, the resource is read again.
func TestPollingSkipsUnmodified(t *testing.T) {
	p := newPortal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &collector{onSync: func(n int) {
		switch n {
		case 2:
			p.mu.Lock()
			p.lastModified = "2024-03-02T06:00:10.000000"
			p.mu.Unlock()
		case 3:
			cancel()
		}
	}}
	src := source(t, map[string]any{"url": p.URL, "dataset": dataset, "interval": "1ms", "pageSize": 5000})
	if err := src.Run(ctx, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if want := []int{dsRecords, dsRecords, 2 * dsRecords}; fmt.Sprint(c.perSync[:3]) != fmt.Sprint(want) {
		t.Errorf("records after each poll %v, want %v", c.perSync, want)
	}
	if len(p.searches) != 2 {
		t.Errorf("%d datastore_search calls, want 2 (none for the unmodified poll)", len(p.searches))
	}
}

func TestPortalErrors(t *testing.T) {
	p := newPortal(t)
	tests := []struct {
		name     string
		settings map[string]any
		err      error
		want     string
	}{
		{"unknown dataset", map[string]any{"url": p.URL, "dataset": "non-esiste"}, ckansource.ErrPortal, "404 Not Found: Not Found Error: Not found"},
		{"unknown resource", map[string]any{"url": p.URL, "dataset": dataset, "resource": "Medie 2023"}, ckansource.ErrNoResource, `"Anagrafica stazioni" (CSV, id 1d2e3f4a`},
		{"pdf only", map[string]any{"url": p.URL, "dataset": dataset, "resource": "4f2a1b3c-9d8e-4a7b-b6c5-d4e3f2a1b0c9"}, ckansource.ErrNoResource, `format "PDF"`},
		{"unknown datastore id", map[string]any{"url": p.URL, "resource": "00000000-dead-beef-0000-000000000000"}, ckansource.ErrPortal, "was not found"},
		{"not a CKAN answer", map[string]any{"url": p.URL + "/broken", "dataset": dataset}, ckansource.ErrPortal, "502 Bad Gateway"},
		{"unreachable", map[string]any{"url": "http://127.0.0.1:1", "dataset": dataset}, ckansource.ErrPortal, "package_show"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := source(t, tt.settings).Run(context.Background(), &collector{})
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %v containing %q", err, tt.err, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		want     string
	}{
		{"no url", map[string]any{"dataset": "x"}, "url is required"},
		{"bad url", map[string]any{"url": "dati.comune.it", "dataset": "x"}, "want http(s)"},
		{"no dataset", map[string]any{"url": "https://dati.example.it"}, "dataset"},
		{"page too big", map[string]any{"url": "https://dati.example.it", "dataset": "x", "pageSize": 50000}, "pageSize"},
		{"typo", map[string]any{"url": "https://dati.example.it", "datset": "x"}, `unknown key "datset"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := adapters.NewSourceConfig("ckan", tt.settings)
			_, err := adapters.NewSource(cfg)
			if !errors.Is(err, adapters.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}
