package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/adapters"
	"github.com/piazza-city/piazza/broker/node"
)

// These tests run 'piazza ingest' in process (the ingest function, flags and
// all) against a real Piazza started in the same process with node.Start:
// embedded NATS JetStream on disk in a temp dir, the real HTTP API on a
// random port. Entities are read back through the NGSI-LD API.

const anprData = "../../adapters/testdata/anpr/"

// startNodeInProcess starts a whole node and returns its base URL.
func startNodeInProcess(t testing.TB) string {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return "http://" + n.HTTPAddr()
}

// runIngest runs 'piazza ingest args...' and returns the exit code and
// what it printed.
func runIngest(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"ingest"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// ingestJSON is the --json output.
type ingestJSON struct {
	OK        bool `json:"ok"`
	ExitCode  int  `json:"exitCode"`
	Pipelines []struct {
		Pipeline   string `json:"pipeline"`
		Read       int64  `json:"read"`
		Skipped    int64  `json:"skipped"`
		Rejected   int64  `json:"rejected"`
		Mapped     int64  `json:"mapped"`
		Written    int64  `json:"written"`
		Unchanged  int64  `json:"unchanged"`
		RejectFile string `json:"rejectFile"`
		Error      string `json:"error"`
		Errors     []struct {
			Input  string `json:"input"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"pipelines"`
}

func runIngestJSON(t testing.TB, args ...string) (int, ingestJSON, string) {
	t.Helper()
	code, out, errs := runIngest(t, append(args, "--json")...)
	var res ingestJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s\nstderr: %s", err, out, errs)
	}
	if res.ExitCode != code {
		t.Errorf("exitCode %d in JSON, process exit %d", res.ExitCode, code)
	}
	if len(res.Pipelines) == 0 {
		t.Fatalf("no pipeline in the summary: %s", out)
	}
	return code, res, errs
}

// getEntity reads one entity back through the NGSI-LD API, in keyValues
// form.
func getEntity(t testing.TB, base, tenant, id string) (map[string]any, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/ngsi-ld/v1/entities/"+url.PathEscape(id)+"?options=keyValues", nil)
	req.Header.Set("Accept", "application/json")
	if tenant != "" {
		req.Header.Set("NGSILD-Tenant", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var kv map[string]any
	if err := json.Unmarshal(body, &kv); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return kv, resp.StatusCode
}

// countEntities asks the broker how many entities of a type it holds.
func countEntities(t testing.TB, base, tenant, typ string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/ngsi-ld/v1/entities?type="+url.QueryEscape(typ)+"&count=true&limit=1", nil)
	req.Header.Set("Accept", "application/json")
	if tenant != "" {
		req.Header.Set("NGSILD-Tenant", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("count %s: status %d", typ, resp.StatusCode)
	}
	n, err := strconv.Atoi(resp.Header.Get("NGSILD-Results-Count"))
	if err != nil {
		t.Fatalf("NGSILD-Results-Count %q: %v", resp.Header.Get("NGSILD-Results-Count"), err)
	}
	return n
}

func TestIngestANPRPresetsIntoPiazza(t *testing.T) {
	tests := []struct {
		preset, file, typ string
		rows, entities    int64
		spot              map[string]map[string]any // id -> keyValues members
	}{
		{
			preset: "anpr_popolazione_residente", file: "anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv",
			typ: "Observation", rows: 172, entities: 172,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:Observation:anpr:popolazione-residente:020030:2024-01-10": {
					"obsValue": 49787.0, "refArea": "020030", "name": "MANTOVA", "timePeriod": "2024-01-10"},
				"urn:ngsi-ld:Observation:anpr:popolazione-residente:083048:2024-01-10": {"obsValue": 222171.0, "name": "MESSINA"},
			},
		},
		{
			preset: "anpr_attivita_residenti", file: "anpr_attivita_residenti_2024_export_excerpt_2024-01_MN_ME.csv",
			typ: "KeyPerformanceIndicator", rows: 103, entities: 103 * 6,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:KeyPerformanceIndicator:anpr:attivita-residenti:020030:certificati:2024-01": {
					"kpiValue": 782.0, "calculationFrequency": "monthly"},
				"urn:ngsi-ld:KeyPerformanceIndicator:anpr:attivita-residenti:083048:totale:2024-01": {"kpiValue": 5110.0},
			},
		},
		{
			preset: "anpr_certificati", file: "anpr_certificati_export_excerpt_2021-11_2021-12.csv",
			typ: "Observation", rows: 63, entities: 63 * 3,
			spot: map[string]map[string]any{
				"urn:ngsi-ld:Observation:anpr:certificati:2021-12:aire:stato-famiglia-aire:bollo": {
					"obsValue": 223.0, "timePeriod": "2021-12", "refArea": "IT"},
				"urn:ngsi-ld:Observation:anpr:certificati:2021-12:aire:stato-famiglia-aire:totale": {"obsValue": 432.0},
			},
		},
	}
	base := startNodeInProcess(t)
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			tenant := strings.ReplaceAll(tt.preset, "_", "-")
			args := []string{"--preset", tt.preset, "--file", anprData + tt.file, "--url", base, "--tenant", tenant, "--batch-size", "50"}
			code, res, errs := runIngestJSON(t, args...)
			p := res.Pipelines[0]
			if code != 0 || !res.OK {
				t.Fatalf("exit %d: %+v\nstderr: %s", code, p, errs)
			}
			if p.Read != tt.rows || p.Mapped != tt.entities || p.Written != tt.entities || p.Unchanged != 0 || p.Rejected != 0 {
				t.Errorf("first run: %+v, want %d rows, %d entities written", p, tt.rows, tt.entities)
			}
			if n := countEntities(t, base, tenant, tt.typ); n != int(tt.entities) {
				t.Errorf("the broker holds %d %s, want %d", n, tt.typ, tt.entities)
			}
			for id, want := range tt.spot {
				kv, status := getEntity(t, base, tenant, id)
				if status != http.StatusOK {
					t.Errorf("GET %s: %d", id, status)
					continue
				}
				for k, w := range want {
					if fmt.Sprint(kv[k]) != fmt.Sprint(w) {
						t.Errorf("%s: %s = %#v, want %#v", id, k, kv[k], w)
					}
				}
			}
			// The same input again: the broker finds every entity identical,
			// writes nothing and says so in Piazza-Unchanged-Count.
			code, res, errs = runIngestJSON(t, args...)
			p = res.Pipelines[0]
			if code != 0 || p.Written != 0 || p.Unchanged != tt.entities || p.Mapped != tt.entities {
				t.Errorf("second run: exit %d, %+v, want all %d unchanged\nstderr: %s", code, p, tt.entities, errs)
			}
		})
	}
}

// badPopulation is the real population extract with four rows broken: a
// malformed number, an impossible date, a row with a field missing and an
// empty required value. It returns the file and the broken lines by number.
func badPopulation(t *testing.T) (path string, bad map[int]string) {
	t.Helper()
	data, err := os.ReadFile(anprData + "anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	// Header: DATA ELABORAZIONE,REGIONE,PROVINCIA,COD_ISTAT_COMUNE,COMUNE,RESIDENTI
	bad = map[int]string{}
	breakLine := func(n int, f func([]string) []string) {
		fields := strings.Split(lines[n-1], ",")
		lines[n-1] = strings.Join(f(fields), ",")
		bad[n] = lines[n-1]
	}
	breakLine(3, func(f []string) []string { f[5] = "99x2"; return f })
	breakLine(5, func(f []string) []string { f[0] = "32-01-2024"; return f })
	breakLine(8, func(f []string) []string { return f[:5] })
	breakLine(13, func(f []string) []string { f[5] = ""; return f })
	path = filepath.Join(t.TempDir(), "popolazione.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, bad
}

func TestIngestBadRowsReportedAndKept(t *testing.T) {
	base := startNodeInProcess(t)
	path, bad := badPopulation(t)
	rejects := filepath.Join(t.TempDir(), "scarti", "popolazione.csv")
	code, res, errs := runIngestJSON(t, "--preset", "anpr_popolazione_residente", "--file", path, "--url", base, "--reject-file", rejects)
	p := res.Pipelines[0]
	if code != exitRejected || res.OK {
		t.Errorf("exit %d, want %d (records rejected)\nstderr: %s", code, exitRejected, errs)
	}
	if p.Read != 172 || p.Rejected != 4 || p.Written != 168 {
		t.Errorf("summary %+v, want 172 read, 4 rejected, 168 written", p)
	}
	if n := countEntities(t, base, "", "Observation"); n != 168 {
		t.Errorf("the broker holds %d entities, want the 168 good rows", n)
	}
	// Each bad row is reported with its line, its column and the reason.
	want := map[int]struct {
		column int
		reason string
	}{
		3:  {6, "invalid number"},
		5:  {1, "invalid date"},
		8:  {0, "malformed record"},
		13: {6, "required value is empty"},
	}
	if len(p.Errors) != len(want) {
		t.Fatalf("errors %+v, want %d", p.Errors, len(want))
	}
	for _, e := range p.Errors {
		w, ok := want[e.Line]
		if !ok {
			t.Errorf("unexpected error at line %d: %+v", e.Line, e)
			continue
		}
		if e.Column != w.column || !strings.Contains(e.Reason, w.reason) || e.Input != path {
			t.Errorf("line %d: %+v, want column %d and %q", e.Line, e, w.column, w.reason)
		}
	}
	// The reject file keeps the header and the bad rows, byte for byte.
	got, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	wantFile := "DATA ELABORAZIONE,REGIONE,PROVINCIA,COD_ISTAT_COMUNE,COMUNE,RESIDENTI\n" +
		bad[3] + "\n" + bad[5] + "\n" + bad[8] + "\n" + bad[13] + "\n"
	if string(got) != wantFile {
		t.Errorf("reject file:\n%s\nwant:\n%s", got, wantFile)
	}
	if p.RejectFile != rejects {
		t.Errorf("rejectFile %q, want %q", p.RejectFile, rejects)
	}
	// The text summary names the positions too, and --allow-rejects makes
	// the same run succeed; the good rows are unchanged by now.
	code, out, _ := runIngest(t, "--preset", "anpr_popolazione_residente", "--file", path, "--url", base, "--allow-rejects")
	if code != 0 {
		t.Errorf("--allow-rejects: exit %d\n%s", code, out)
	}
	for _, s := range []string{path + ":3: column 6 (RESIDENTI)", path + ":5: column 1 (DATA ELABORAZIONE)", "unchanged 168", "rejected 4"} {
		if !strings.Contains(out, s) {
			t.Errorf("text summary lacks %q:\n%s", s, out)
		}
	}
}

func TestIngestDryRunWritesNothing(t *testing.T) {
	base := startNodeInProcess(t)
	code, out, errs := runIngest(t, "--preset", "anpr_certificati", "--file", anprData+"anpr_certificati_export_excerpt_2021-11_2021-12.csv",
		"--url", base, "--dry-run", "--sample", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if n := countEntities(t, base, "", "Observation"); n != 0 {
		t.Errorf("a dry run wrote %d entities", n)
	}
	for _, s := range []string{"mapped 189", "written 0", "dry run", "sample (2 of 189 entities)", `"id": "urn:ngsi-ld:Observation:anpr:certificati:`} {
		if !strings.Contains(out, s) {
			t.Errorf("dry-run output lacks %q:\n%s", s, out)
		}
	}
}

// TestIngestConfigFile runs two pipelines from a config file, one per
// tenant, and lets flags override the file's sink.
func TestIngestConfigFile(t *testing.T) {
	base := startNodeInProcess(t)
	dir := t.TempDir()
	abs, err := filepath.Abs(anprData)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`sink:
  url: http://127.0.0.1:1   # overridden by --url
  tenant: mantova
  maxRetries: -1
pipelines:
  - name: popolazione
    source: {path: %s/anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv}
    mapping: anpr_popolazione_residente
  - name: certificati
    source: {path: %s/anpr_certificati_export_excerpt_2021-11_2021-12.csv}
    mapping: anpr_certificati
    sink: {tenant: italia}
`, abs, abs)
	file := filepath.Join(dir, "pipelines.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, res, errs := runIngestJSON(t, "--config", file, "--url", base)
	if code != 0 || len(res.Pipelines) != 2 {
		t.Fatalf("exit %d: %+v\n%s", code, res, errs)
	}
	if res.Pipelines[0].Written != 172 || res.Pipelines[1].Written != 189 {
		t.Errorf("written %d and %d, want 172 and 189", res.Pipelines[0].Written, res.Pipelines[1].Written)
	}
	if n := countEntities(t, base, "mantova", "Observation"); n != 172 {
		t.Errorf("tenant mantova holds %d, want 172", n)
	}
	if n := countEntities(t, base, "italia", "Observation"); n != 189 {
		t.Errorf("tenant italia holds %d, want 189", n)
	}
	// Without --url the file's unreachable URL is used: the pipeline fails
	// (no retries: maxRetries -1) with exit 1, and the summary says why.
	code, res, _ = runIngestJSON(t, "--config", file)
	if code != exitFailed || !strings.Contains(res.Pipelines[0].Error, "broker unavailable") {
		t.Errorf("unreachable broker: exit %d, %+v", code, res.Pipelines[0])
	}
}

func TestIngestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{"help", []string{"--help"}, 0, "Examples:"},
		{"list presets", []string{"--list-presets"}, 0, "anpr_popolazione_residente"},
		{"nothing to do", nil, exitUsage, "nothing to ingest"},
		{"unknown preset", []string{"--preset", "nope", "--file", "x.csv"}, exitUsage, "anpr_certificati"},
		{"preset without input", []string{"--preset", "anpr_certificati"}, exitUsage, "needs --file PATH or --source URL"},
		{"both inputs", []string{"--preset", "anpr_certificati", "--file", "a", "--source", "http://x/a.csv"}, exitUsage, "not both"},
		{"config and preset", []string{"--config", "p.yaml", "--preset", "anpr_certificati"}, exitUsage, "not both"},
		{"missing config", []string{"--config", "/nonexistent/p.yaml"}, exitUsage, "no such file"},
		{"stray argument", []string{"file.csv"}, exitUsage, "unexpected argument"},
		{"bad progress", []string{"--preset", "anpr_certificati", "--file", "x.csv", "--progress", "fancy"}, exitUsage, "--progress"},
		{"source is no URL", []string{"--preset", "anpr_certificati", "--source", "certificati.csv"}, exitUsage, "not a URL"},
		{"missing file", []string{"--preset", "anpr_certificati", "--file", "/nonexistent.csv", "--url", "http://127.0.0.1:1"}, exitFailed, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runIngest(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.out) {
				t.Errorf("exit %d, want %d; output lacks %q?\nstdout: %s\nstderr: %s", code, tt.code, tt.out, out, errs)
			}
		})
	}
}

// TestIngestProgress checks both progress reports: a bar that redraws one
// line, and log lines for non-terminals.
func TestIngestProgress(t *testing.T) {
	base := startNodeInProcess(t)
	_, _, errs := runIngest(t, "--preset", "anpr_attivita_residenti", "--file", anprData+"anpr_attivita_residenti_2024_export_excerpt_2024-01_MN_ME.csv",
		"--url", base, "--progress", "bar")
	if !strings.Contains(errs, "\r\033[K") || !strings.Contains(errs, "103 read") || !strings.Contains(errs, "[==============================] 100%") {
		t.Errorf("no progress bar on stderr: %q", errs)
	}
	var buf bytes.Buffer
	report := logProgress(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	report(adapters.Progress{Pipeline: "p", Read: 10, Bytes: 10, TotalBytes: 100, Elapsed: time.Second})
	report(adapters.Progress{Pipeline: "p", Read: 20, Bytes: 20, TotalBytes: 100, Elapsed: time.Second}) // within the interval
	report(adapters.Progress{Pipeline: "p", Read: 100, Bytes: 100, TotalBytes: 100, Elapsed: 2 * time.Second, Done: true})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "read=10") || !strings.Contains(lines[1], "percent=100.0") || !strings.Contains(lines[1], "rows_per_s=50") {
		t.Errorf("log progress lines: %q", lines)
	}
}

// TestIngestFromURL reads the real extract over HTTP (--source) into
// Piazza.
func TestIngestFromURL(t *testing.T) {
	base := startNodeInProcess(t)
	data, err := os.ReadFile(anprData + "anpr_certificati_export_excerpt_2021-11_2021-12.csv")
	if err != nil {
		t.Fatal(err)
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		http.ServeContent(w, r, "certificati_export.csv", time.Time{}, bytes.NewReader(data))
	}))
	defer site.Close()
	code, res, errs := runIngestJSON(t, "--preset", "anpr_certificati", "--source", site.URL+"/data/certificati_export.csv", "--url", base)
	if p := res.Pipelines[0]; code != 0 || p.Written != 189 {
		t.Fatalf("exit %d: %+v\n%s", code, p, errs)
	}
	if n := countEntities(t, base, "", "Observation"); n != 189 {
		t.Errorf("the broker holds %d, want 189", n)
	}
}

// TestIngestFromOrion moves the entities of an NGSI-v2 broker (a test
// server answering /v2/entities as Orion does, with the fixture of the
// ngsiv2 source) into Piazza with the ngsiv2 preset.
func TestIngestFromOrion(t *testing.T) {
	base := startNodeInProcess(t)
	data, err := os.ReadFile("../../adapters/ngsiv2source/testdata/orion_entities.json")
	if err != nil {
		t.Fatal(err)
	}
	var all []json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	orion := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/entities" || r.Header.Get("Fiware-Service") != "mantova" {
			http.Error(w, `{"error":"NotFound","description":"The requested entity has not been found. Check type and id"}`, http.StatusNotFound)
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		w.Header().Set("Fiware-Total-Count", strconv.Itoa(len(all)))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(all[min(offset, len(all)):min(offset+limit, len(all))])
	}))
	defer orion.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("pipelines:\n  - name: orion\n    source: {url: %s, service: mantova, servicePath: /ambiente, pageSize: 4}\n    mapping: ngsiv2\n    rejects: scarti.jsonl\n", orion.URL)
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, res, errs := runIngestJSON(t, "--config", file, "--url", base, "--tenant", "mantova")
	p := res.Pipelines[0]
	if code != exitRejected || p.Read != 6 || p.Written != 4 || p.Rejected != 2 {
		t.Fatalf("exit %d: %+v\n%s", code, p, errs)
	}
	kv, status := getEntity(t, base, "mantova", "urn:ngsi-ld:AirQualityObserved:AirQualityObserved-Mantova-SantAgnese")
	if status != http.StatusOK || fmt.Sprint(kv["NO2"]) != "42.5" || kv["refPointOfInterest"] != "urn:ngsi-ld:PointOfInterest:PointOfInterest-Mantova-PiazzaSordello" {
		t.Errorf("AirQualityObserved read back: %d %v", status, kv)
	}
	kv, status = getEntity(t, base, "mantova", "urn:ngsi-ld:Device:Device-Mantova-0042")
	if status != http.StatusOK || fmt.Sprint(kv["batteryLevel"]) != "0.75" {
		t.Errorf("Device read back: %d %v", status, kv)
	}
	rej, err := os.ReadFile(filepath.Join(dir, "scarti.jsonl"))
	if err != nil || strings.Count(string(rej), "\n") != 2 || !strings.Contains(string(rej), `"id":"PointOfInterest-Mantova-PiazzaSordello"`) {
		t.Errorf("reject file: %v\n%s", err, rej)
	}
	// Moving again changes nothing.
	_, res, _ = runIngestJSON(t, "--config", file, "--url", base, "--tenant", "mantova")
	if p := res.Pipelines[0]; p.Written != 0 || p.Unchanged != 4 {
		t.Errorf("second run: %+v", p)
	}
}

// TestIngestOpen311KeepsPersonalDataOut ingests Open311 service requests
// carrying names, e-mail addresses, phone numbers and device ids into a
// real Piazza: none of them reaches the broker (entities read back, with
// their history) nor the reject file.
func TestIngestOpen311KeepsPersonalDataOut(t *testing.T) {
	base := startNodeInProcess(t)
	file := "../../adapters/testdata/open311/requests.json"
	rejects := filepath.Join(t.TempDir(), "scarti.jsonl")
	code, res, errs := runIngestJSON(t, "--preset", "open311_service_requests", "--file", file, "--url", base, "--reject-file", rejects)
	if p := res.Pipelines[0]; code != exitRejected || p.Written != 3 || p.Rejected != 1 {
		t.Fatalf("exit %d: %+v\n%s", code, p, errs)
	}
	var stored bytes.Buffer
	for _, path := range []string{
		"/ngsi-ld/v1/entities?type=service_requests&limit=100",
		"/ngsi-ld/v1/temporal/entities?type=service_requests&limit=100",
	} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			stored.Write(body)
		} else if strings.HasPrefix(path, "/ngsi-ld/v1/entities") { // temporal may not exist yet
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	if !strings.Contains(stored.String(), "Marciapiede sconnesso") {
		t.Fatalf("the requests did not land: %s", stored.String())
	}
	rej, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file)
	var reqs []map[string]any
	if err := json.Unmarshal(raw, &reqs); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, r := range reqs {
		for _, k := range []string{"first_name", "last_name", "email", "phone", "device_id", "account_id"} {
			v, ok := r[k]
			if !ok {
				continue
			}
			checked++
			s := fmt.Sprint(v)
			if strings.Contains(stored.String(), s) || strings.Contains(string(rej), s) {
				t.Errorf("personal data %s=%q reached the broker or the reject file", k, s)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d personal values checked", checked)
	}
}

// TestIngestAirQualityWithTable joins ARPA Lombardia measurements with the
// sensor registry (--table) and writes AirQualityObserved into Piazza.
func TestIngestAirQualityWithTable(t *testing.T) {
	base := startNodeInProcess(t)
	dir := "../../adapters/testdata/arpa_lombardia/"
	code, res, errs := runIngestJSON(t, "--preset", "arpa_lombardia_aria", "--file", dir+"sensori_aria.json",
		"--table", "sensori="+dir+"stazioni.json", "--url", base)
	if p := res.Pipelines[0]; code != 0 || p.Written != 5 || p.Skipped != 1 {
		t.Fatalf("exit %d: %+v\n%s", code, p, errs)
	}
	kv, status := getEntity(t, base, "", "urn:ngsi-ld:AirQualityObserved:arpa-lombardia:5507")
	if status != http.StatusOK || fmt.Sprint(kv["pm10"]) != "52" || !strings.Contains(fmt.Sprint(kv["location"]), "10.781") {
		t.Errorf("read back: %d %v", status, kv)
	}
	code, _, errs = runIngest(t, "--preset", "arpa_lombardia_aria", "--file", dir+"sensori_aria.json", "--table", "stazioni="+dir+"stazioni.json")
	if code != exitUsage || !strings.Contains(errs, `has no table "stazioni"`) {
		t.Errorf("unknown table: exit %d, %s", code, errs)
	}
}
