package adapters_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piazza-city/piazza/adapters"
	"github.com/piazza-city/piazza/adapters/csvsource"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const popHeader = "DATA ELABORAZIONE,REGIONE,PROVINCIA,COD_ISTAT_COMUNE,COMUNE,RESIDENTI\n"

func TestRunBadRows(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "pop.csv", popHeader+
		"10-01-2024,LOMBARDIA,MANTOVA,020001,ACQUANEGRA SUL CHIESE,2702\n"+
		"10-01-2024,LOMBARDIA,MANTOVA,020002,ASOLA,99x2\n"+ // line 3: bad number in column 6
		"10-01-2024,LOMBARDIA,MANTOVA,020003,BAGNOLO SAN VITO,5963\n"+
		"32-01-2024,LOMBARDIA,MANTOVA,020004,BIGARELLO,2000\n"+ // line 5: bad date in column 1
		"10-01-2024,LOMBARDIA,MANTOVA,020005,\"BORGO\"X,1\n"+ // line 6: malformed CSV
		"10-01-2024,LOMBARDIA,MANTOVA,020006,BOZZOLO,4043\n")
	fb, srv := newFakeBroker(t)
	fb.script = func(_ int, ids []string) (int, string, map[string]bool) {
		return http.StatusMultiStatus, "", map[string]bool{"urn:ngsi-ld:Observation:anpr:popolazione-residente:020006:2024-01-10": true}
	}
	cfg, err := adapters.PresetPipeline("anpr_popolazione_residente", in, adapters.SinkConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rejects = filepath.Join(dir, "out", "rejects.csv")
	var progress []adapters.Progress
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{ProgressEvery: 2, Progress: func(p adapters.Progress) { progress = append(progress, p) }})
	if !errors.Is(err, adapters.ErrRecordsRejected) {
		t.Fatalf("err = %v, want ErrRecordsRejected", err)
	}
	if sum.Read != 6 || sum.Mapped != 3 || sum.Written != 2 || sum.Rejected != 4 || sum.RejectedEntities != 1 {
		t.Errorf("summary = %+v", sum)
	}
	want := []adapters.RowError{
		{Input: in, Line: 3, Record: 2, Column: 6, Field: "RESIDENTI"},
		{Input: in, Line: 5, Record: 4, Column: 1, Field: "DATA ELABORAZIONE"},
		{Input: in, Line: 6, Record: 5, Column: 5},
		{Input: in, Line: 7, Record: 6, Entity: "urn:ngsi-ld:Observation:anpr:popolazione-residente:020006:2024-01-10"},
	}
	if len(sum.Errors) != len(want) {
		t.Fatalf("errors = %v", sum.Errors)
	}
	for i, w := range want {
		g := sum.Errors[i]
		if g.Line != w.Line || g.Record != w.Record || g.Column != w.Column || g.Field != w.Field || g.Entity != w.Entity {
			t.Errorf("error %d = %+v, want %+v", i, g, w)
		}
	}
	for i, frag := range []string{`invalid number: "99x2"`, "invalid date", "after a closing quote", "BadRequestData"} {
		if !strings.Contains(sum.Errors[i].Reason, frag) {
			t.Errorf("error %d reason %q lacks %q", i, sum.Errors[i].Reason, frag)
		}
	}
	if s := sum.Errors[0].String(); !strings.Contains(s, `pop.csv:3: column 6 (RESIDENTI): attribute obsValue: adapters: invalid number: "99x2"`) {
		t.Errorf("message = %s", s)
	}
	got, err := os.ReadFile(cfg.Rejects)
	if err != nil {
		t.Fatal(err)
	}
	wantRejects := popHeader +
		"10-01-2024,LOMBARDIA,MANTOVA,020002,ASOLA,99x2\n" +
		"32-01-2024,LOMBARDIA,MANTOVA,020004,BIGARELLO,2000\n" +
		"10-01-2024,LOMBARDIA,MANTOVA,020005,\"BORGO\"X,1\n" +
		"10-01-2024,LOMBARDIA,MANTOVA,020006,BOZZOLO,4043\n"
	if string(got) != wantRejects {
		t.Errorf("reject file:\n%s\nwant:\n%s", got, wantRejects)
	}
	if sum.RejectFile != cfg.Rejects {
		t.Errorf("RejectFile = %q", sum.RejectFile)
	}
	last := progress[len(progress)-1]
	if !last.Done || last.Read != 6 || last.TotalBytes == 0 || last.Bytes != last.TotalBytes || len(progress) < 3 {
		t.Errorf("progress = %+v", progress)
	}
	if _, err := json.Marshal(sum); err != nil {
		t.Fatal(err)
	}

	cfg.AllowRejects = true
	if _, err := adapters.Run(context.Background(), cfg, adapters.Options{}); err != nil {
		t.Errorf("AllowRejects: %v", err)
	}
}

func TestRunMissingColumn(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "pop.csv", "DATA_ELABORAZIONE;REGIONE;PROVINCIA;COD ISTAT COMUNE;COMUNE;POPOLAZIONE\n10-01-2024;L;M;020001;X;1\n")
	cfg, err := adapters.PresetPipeline("anpr_popolazione_residente", in, adapters.SinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Source, _ = cfg.Source.With("separator", "auto")
	_, err = adapters.Run(context.Background(), cfg, adapters.Options{DryRun: true})
	if !errors.Is(err, adapters.ErrMissingColumn) || !strings.Contains(err.Error(), `"RESIDENTI"`) || !strings.Contains(err.Error(), "POPOLAZIONE") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunDryRun(t *testing.T) {
	cfg, err := adapters.PresetPipeline("anpr_certificati", "testdata/anpr/anpr_certificati_export_excerpt_2021-11_2021-12.csv",
		adapters.SinkConfig{URL: "http://127.0.0.1:1"}) // never contacted
	if err != nil {
		t.Fatal(err)
	}
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{DryRun: true, SampleSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.DryRun || sum.Mapped != 189 || sum.Written != 0 || len(sum.Sample) != 2 {
		t.Errorf("summary = %+v", sum)
	}
	b, err := json.Marshal(sum)
	if err != nil || !bytes.Contains(b, []byte(`"sample":[{`)) || !bytes.Contains(b, []byte(`"dryRun":true`)) {
		t.Errorf("json %s %v", b, err)
	}
}

func TestRunBrokerDown(t *testing.T) {
	fb, srv := newFakeBroker(t)
	fb.script = func(int, []string) (int, string, map[string]bool) { return 503, "", nil }
	cfg, _ := adapters.PresetPipeline("anpr_certificati", "testdata/anpr/anpr_certificati_export_excerpt_2021-11_2021-12.csv",
		adapters.SinkConfig{URL: srv.URL, MaxRetries: 2, Backoff: adapters.Duration(1e6)})
	_, err := adapters.Run(context.Background(), cfg, adapters.Options{})
	if !errors.Is(err, adapters.ErrBrokerUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadPipelines(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pop.csv", popHeader+"10-01-2024,LOMBARDIA,MANTOVA,020001,ACQUANEGRA,2702\n")
	writeFile(t, dir, "sensors.jsonl", `{"code":"S1","pm10":"12,5"}`+"\n"+`{"code":"S2","pm10":"n/a"}`+"\n")
	writeFile(t, dir, "mine.yaml", "type: Thing\nid: \"urn:ngsi-ld:Thing:{{COD_ISTAT_COMUNE}}\"\nattributes: {n: {from: RESIDENTI, as: integer}}\n")
	fb, srv := newFakeBroker(t)
	cfgFile := writeFile(t, dir, "pipelines.yaml", fmt.Sprintf(`
sink:
  url: %s
  batchSize: 10
pipelines:
  - name: popolazione
    source: {path: pop.csv}
    mapping: anpr_popolazione_residente
    sink: {tenant: mantova}
    every: 24h
  - name: things
    source: {kind: csv, path: pop.csv}
    mapping: mine.yaml
  - name: sensors
    source: {kind: jsonl, path: sensors.jsonl}
    rejects: rejects/sensors.jsonl
    allowRejects: true
    mapping:
      decimal: ","
      type: Device
      id: "urn:ngsi-ld:Device:{{code}}"
      attributes:
        pm10: {from: pm10, as: number, unitCode: GQ}
`, srv.URL))
	cfgs, err := adapters.LoadPipelines(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 3 || cfgs[0].Sink.Tenant != "mantova" || cfgs[0].Sink.BatchSize != 10 || cfgs[1].Sink.Tenant != "" ||
		cfgs[0].Source.Kind != "csv" || cfgs[1].MappingName != "mine" || cfgs[2].MappingName != "inline" ||
		cfgs[0].Every != 24*time.Hour || cfgs[1].Every != 0 {
		t.Fatalf("configs = %+v", cfgs)
	}
	for _, c := range cfgs {
		sum, err := adapters.Run(context.Background(), c, adapters.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if c.Name == "sensors" && (sum.Written != 1 || sum.Rejected != 1) {
			t.Errorf("sensors: %+v", sum)
		}
	}
	if b := fb.batches(); len(b) != 3 || b[0].tenant != "mantova" {
		t.Errorf("batches = %+v", b)
	}
	rej, err := os.ReadFile(filepath.Join(dir, "rejects", "sensors.jsonl"))
	if err != nil || string(rej) != `{"code":"S2","pm10":"n/a"}`+"\n" {
		t.Errorf("reject file %q %v", rej, err)
	}
}

func TestLoadPipelinesErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown top key", "pipeline: []\n", `line 1: unknown key "pipeline" (known keys: sink, pipelines)`},
		{"not a mapping", "- a\n", "a pipeline file is a mapping"},
		{"bad schedule", "pipelines:\n  - name: a\n    source: {kind: csv, path: x.csv}\n    mapping: anpr_certificati\n    every: daily\n", `"daily" is not a duration`},
		{"unknown pipeline key", "pipelines:\n  - name: a\n    sorce: {kind: csv}\n", `unknown key "sorce"`},
		{"unknown sink key", "pipelines:\n  - name: a\n    source: {kind: csv, path: x.csv}\n    mapping: anpr_certificati\n    sink: {tennant: x}\n", `unknown key "tennant"`},
		{"unknown source key", "pipelines:\n  - name: a\n    source: {kind: csv, path: x.csv, sep: \";\"}\n    mapping: anpr_certificati\n", `unknown key "sep"`},
		{"unknown kind", "pipelines:\n  - name: a\n    source: {kind: sftp, path: x}\n    mapping: anpr_certificati\n", `unknown source kind "sftp"`},
		{"no kind", "pipelines:\n  - name: a\n    source: {path: x}\n    mapping: {type: T, id: \"urn:x:{{A}}\", attributes: {a: A}}\n", "kind is required"},
		{"unknown preset", "pipelines:\n  - name: a\n    source: {kind: csv, path: x}\n    mapping: anpr_popolazione\n", `unknown preset "anpr_popolazione"`},
		{"missing mapping", "pipelines:\n  - name: a\n    source: {kind: csv, path: x}\n", "mapping: adapters: invalid mapping: required"},
		{"bad inline mapping", "pipelines:\n  - name: a\n    source: {kind: csv, path: x}\n    mapping: {type: T, id: \"urn:x:{{A}}\", attributes: {a: {from: A, as: nope}}}\n", `unknown conversion "nope"`},
		{"duplicate names", "pipelines:\n  - {name: a, source: {kind: csv, path: x}, mapping: anpr_certificati}\n  - {name: a, source: {kind: csv, path: x}, mapping: anpr_certificati}\n", "duplicate name"},
		{"bad duration", "sink: {timeout: soon}\npipelines:\n  - {name: a, source: {kind: csv, path: x}, mapping: anpr_certificati}\n", `"soon" is not a duration`},
		{"empty", "pipelines: []\n", "no pipelines"},
		{"empty file", "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "p.yaml", tt.yaml)
			_, err := adapters.LoadPipelines(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second registration of csv did not panic")
		}
	}()
	adapters.Register("csv", func(adapters.SourceConfig) (adapters.Source, error) { return nil, nil })
}

// collector is an Emitter that maps every record, for the fuzz test.
type mapEmitter struct {
	m       *adapters.Mapping
	checked *adapters.Header
	n       int
	encode  bool // check that every entity encodes as JSON
}

func (e *mapEmitter) Emit(r adapters.Record) error {
	if r.Header != e.checked {
		e.checked = r.Header
		if err := e.m.CheckHeader(r.Header); err != nil {
			return err
		}
	}
	if skip, err := e.m.Skip(&r); skip || err != nil {
		return nil
	}
	ents, err := e.m.Map(&r)
	if err != nil {
		var re *adapters.RecordError
		if !errors.As(err, &re) {
			return fmt.Errorf("Map returned %T, not a *RecordError: %v", err, err)
		}
		return nil
	}
	for _, en := range ents {
		if !e.encode {
			break
		}
		if _, err := json.Marshal(en); err != nil {
			return fmt.Errorf("entity does not encode: %v", err)
		}
	}
	e.n += len(ents)
	return nil
}
func (e *mapEmitter) Reject(adapters.Record, error) error { return nil }
func (e *mapEmitter) Sync() error                         { return nil }

// FuzzMapCSV feeds arbitrary bytes through the CSV source and the
// popolazione_residente preset: nothing may panic, every mapping failure is
// a *RecordError, every entity encodes as JSON.
func FuzzMapCSV(f *testing.F) {
	seed, _ := os.ReadFile("testdata/anpr/anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv")
	f.Add(seed[:min(len(seed), 600)])
	f.Add([]byte(popHeader + "10/01/2024,L,M,\"02,0\",X,1.234\n"))
	f.Add([]byte(popHeader + ",,,,,\n2024-01,L,M,1,X,-1e3\n"))
	p, err := adapters.LookupPreset("anpr_popolazione_residente")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := csvsource.FromReader("fuzz.csv", bytes.NewReader(data), csvsource.Config{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Run(context.Background(), &mapEmitter{m: p.Mapping, encode: true})
		if err != nil && !errors.Is(err, adapters.ErrMissingColumn) && !errors.Is(err, adapters.ErrMalformedRecord) {
			t.Fatal(err)
		}
	})
}

// BenchmarkCSVToEntities measures mapping only: CSV bytes in memory through
// the CSV source and the popolazione_residente preset to entities.
func BenchmarkCSVToEntities(b *testing.B) {
	const rows = 100_000
	var buf bytes.Buffer
	buf.WriteString(popHeader)
	for i := range rows {
		fmt.Fprintf(&buf, "10-01-2024,LOMBARDIA,MANTOVA,%06d,COMUNE NUMERO %d,%d\n", i, i, 1000+i%50000)
	}
	data := buf.Bytes()
	p, err := adapters.LookupPreset("anpr_popolazione_residente")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		src, _ := csvsource.FromReader("bench.csv", bytes.NewReader(data), csvsource.Config{Separator: ","})
		em := &mapEmitter{m: p.Mapping}
		if err := src.Run(context.Background(), em); err != nil {
			b.Fatal(err)
		}
		if em.n != rows {
			b.Fatalf("%d entities", em.n)
		}
		total += rows
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		// wall-clock rows/s understates a core's throughput when the machine
		// is busy; rows per CPU-second counts the work itself (GC included).
		b.ReportMetric(float64(total)/cpu.Seconds(), "rows/cpu-s")
	}
}

func TestRunGeoJSONAndLatin1(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "fermate.geojson", `{"type":"FeatureCollection","features":[
	 {"type":"Feature","properties":{"CODICE":"0042","NOME":"Piazza Sordello","QUOTA":"19,5"},"geometry":{"type":"Point","coordinates":[10.7925,45.1603]}},
	 {"type":"Feature","properties":{"CODICE":"0043","NOME":"Senza geometria"},"geometry":{"type":"Polygon"}}]}`)
	writeFile(t, dir, "pop.csv", "DATA ELABORAZIONE;REGIONE;PROVINCIA;COD_ISTAT_COMUNE;COMUNE;RESIDENTI\n"+
		"10/01/2024;SICILIA;MESSINA;083001;AL\xcc;772\n")
	fb, srv := newFakeBroker(t)
	cfgFile := writeFile(t, dir, "p.yaml", fmt.Sprintf(`
sink: {url: %s}
pipelines:
  - name: fermate
    source: {kind: geojson, path: fermate.geojson}
    allowRejects: true
    mapping:
      type: Stop
      id: "urn:ngsi-ld:Stop:{{CODICE}}"
      timezone: UTC
      attributes:
        name: NOME
        elevation: {from: QUOTA, as: number, unitCode: MTR}
        location: {kind: GeoProperty, from: $geometry}
  - name: latin1
    source: {path: pop.csv, encoding: latin-1, separator: ";"}
    mapping: anpr_popolazione_residente
`, srv.URL))
	cfgs, err := adapters.LoadPipelines(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := adapters.Run(context.Background(), cfgs[0], adapters.Options{})
	if err != nil || sum.Written != 1 || sum.Rejected != 1 || !strings.Contains(sum.Errors[0].Reason, "attribute location") {
		t.Fatalf("geojson: %+v %v", sum, err)
	}
	var stop map[string]map[string]any
	json.Unmarshal([]byte(fb.store["urn:ngsi-ld:Stop:0042"]), &stop)
	if stop["location"]["type"] != "GeoProperty" || stop["elevation"]["value"] != 19.5 {
		t.Errorf("stop = %v", stop)
	}
	if sum, err = adapters.Run(context.Background(), cfgs[1], adapters.Options{}); err != nil || sum.Written != 1 {
		t.Fatalf("latin-1: %+v %v", sum, err)
	}
	var obs map[string]map[string]any
	json.Unmarshal([]byte(fb.store["urn:ngsi-ld:Observation:anpr:popolazione-residente:083001:2024-01-10"]), &obs)
	if obs["name"]["value"] != "ALÌ" {
		t.Errorf("name = %v", obs["name"])
	}
}

func TestMappingTimeZone(t *testing.T) {
	for tz, want := range map[string]string{"": "2024-07-01T00:00:00+02:00", "UTC": "2024-07-01T00:00:00Z", "America/New_York": "2024-07-01T00:00:00-04:00"} {
		y := "type: T\nid: \"urn:x:{{D | date}}\"\nattributes: {t: {from: D, as: datetime}}\n"
		if tz != "" {
			y += "timezone: " + tz + "\n"
		}
		m := mustMapping(t, y)
		rec := csvRecord([]string{"D"}, 2, "01/07/2024")
		ents, err := m.Map(&rec)
		if err != nil || ents[0].KeyValues()["t"] != want {
			t.Errorf("timezone %q: %v %v, want %s", tz, ents, err, want)
		}
	}
}

// BenchmarkRunToHTTP runs a whole pipeline (CSV file, preset, batches of
// 1000 over HTTP to a broker double that reads and discards them) and
// reports rows/s and the peak heap, which must not grow with the file.
// PIAZZA_BENCH_ROWS sets the number of rows (default 200,000).
func BenchmarkRunToHTTP(b *testing.B) {
	rows := 200_000
	if v := os.Getenv("PIAZZA_BENCH_ROWS"); v != "" {
		if _, err := fmt.Sscan(v, &rows); err != nil || rows < 1 {
			b.Fatalf("PIAZZA_BENCH_ROWS=%q", v)
		}
	}
	in := filepath.Join(b.TempDir(), "pop.csv")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString(popHeader)
	for i := range rows {
		fmt.Fprintf(w, "10-01-2024,LOMBARDIA,MANTOVA,%07d,COMUNE NUMERO %d,%d\n", i, i, 1000+i%50000)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	runtime.GC()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Add(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg, err := adapters.PresetPipeline("anpr_popolazione_residente", in, adapters.SinkConfig{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	var peak uint64
	var ms runtime.MemStats
	sample := func(p adapters.Progress) {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	b.ReportAllocs()
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		sum, err := adapters.Run(context.Background(), cfg, adapters.Options{Progress: sample, ProgressEvery: 20_000})
		if err != nil || sum.Written != int64(rows) {
			b.Fatalf("%+v %v", sum, err)
		}
		total += rows
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(total)/cpu.Seconds(), "rows/cpu-s") // the broker double's share included
	}
}

func TestRunDuplicateIDsKeepOrder(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "pop.csv", popHeader+
		"10-01-2024,LOMBARDIA,MANTOVA,020001,A,1\n"+
		"10-01-2024,LOMBARDIA,MANTOVA,020002,B,2\n"+
		"10-01-2024,LOMBARDIA,MANTOVA,020001,A,3\n") // the same comune again: a correction
	fb, srv := newFakeBroker(t)
	cfg, _ := adapters.PresetPipeline("anpr_popolazione_residente", in, adapters.SinkConfig{URL: srv.URL})
	sum, err := adapters.Run(context.Background(), cfg, adapters.Options{})
	if err != nil || sum.Written != 3 {
		t.Fatalf("%+v %v", sum, err)
	}
	if b := fb.batches(); len(b) != 2 || len(b[0].ids) != 2 || len(b[1].ids) != 1 {
		t.Errorf("batches = %+v, want the repeated id in a second batch", b)
	}
	var e map[string]map[string]any
	json.Unmarshal([]byte(fb.store["urn:ngsi-ld:Observation:anpr:popolazione-residente:020001:2024-01-10"]), &e)
	if e["obsValue"]["value"] != 3.0 {
		t.Errorf("stored value %v, want the last row's 3", e["obsValue"]["value"])
	}
}

// pollSource is a test source kind that emits two "polls" of records and
// calls Sync after each, as an HTTP polling source will; it fails after the
// polls when told to, to check that Run closes it after a partial start.
type pollSource struct {
	cfg struct {
		Polls int  `yaml:"polls"`
		Fail  bool `yaml:"fail"`
	}
	closed int
}

var lastPoll *pollSource

func init() {
	adapters.Register("test-poll", func(c adapters.SourceConfig) (adapters.Source, error) {
		s := &pollSource{}
		if err := c.Decode(&s.cfg); err != nil {
			return nil, err
		}
		lastPoll = s
		return s, nil
	})
}

func (s *pollSource) Run(ctx context.Context, out adapters.Emitter) error {
	h := adapters.NewFieldsHeader([]string{"k"})
	n := 0
	for p := 0; p < s.cfg.Polls; p++ {
		for i := 0; i < 3; i++ {
			n++
			if err := out.Emit(adapters.Record{Input: "poll", Index: n, Header: h, Values: []any{fmt.Sprint(n)}, Raw: fmt.Sprint(n)}); err != nil {
				return err
			}
		}
		if err := out.Sync(); err != nil {
			return err
		}
	}
	if s.cfg.Fail {
		return errors.New("feed went away")
	}
	return nil
}

func (s *pollSource) Close() error { s.closed++; return nil }

// recordingSink is a Sink in the same process (as `piazza serve` will use).
type recordingSink struct{ batches [][]string }

func (r *recordingSink) Deliver(_ context.Context, batch []adapters.Entity) (adapters.DeliveryResult, error) {
	var ids []string
	for _, e := range batch {
		ids = append(ids, e.ID())
	}
	r.batches = append(r.batches, ids)
	return adapters.DeliveryResult{Written: len(batch)}, nil
}
func (r *recordingSink) Close() error { return nil }

func TestRunSyncAndPartialStart(t *testing.T) {
	m := mustMapping(t, "type: T\nid: \"urn:x:{{k}}\"\nattributes: {k: k}\n")
	src, _ := adapters.NewSourceConfig("test-poll", map[string]any{"polls": 2})
	sink := &recordingSink{}
	sum, err := adapters.Run(context.Background(), adapters.PipelineConfig{Name: "poll", Source: src, Mapping: m}, adapters.Options{Sink: sink})
	if err != nil || sum.Written != 6 {
		t.Fatalf("%+v %v", sum, err)
	}
	if len(sink.batches) != 2 || len(sink.batches[0]) != 3 {
		t.Errorf("batches %v, want one per poll", sink.batches)
	}
	if lastPoll.closed != 1 {
		t.Errorf("closed %d times", lastPoll.closed)
	}
	src, _ = adapters.NewSourceConfig("test-poll", map[string]any{"polls": 1, "fail": true})
	_, err = adapters.Run(context.Background(), adapters.PipelineConfig{Name: "poll", Source: src, Mapping: m}, adapters.Options{Sink: sink})
	if err == nil || !strings.Contains(err.Error(), "feed went away") || lastPoll.closed != 1 {
		t.Errorf("failing source: %v, closed %d times", err, lastPoll.closed)
	}
	src, _ = adapters.NewSourceConfig("test-poll", map[string]any{"polls": 1, "every": "5m"})
	if _, err := adapters.NewSource(src); !errors.Is(err, adapters.ErrInvalidConfig) || !strings.Contains(err.Error(), `"every"`) {
		t.Errorf("unknown key: %v", err)
	}
}
