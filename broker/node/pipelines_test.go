package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// syncBuffer is a log destination safe for the pipelines' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPipelinesInServe runs two pipelines as piazza serve does: an ANPR
// export through its preset into tenant mantova, and one whose file is
// missing. The good one lands entirely, in process, runs again on its
// schedule (changing nothing), and its metrics move; the broken one is
// retried and logged without holding the other back.
func TestPipelinesInServe(t *testing.T) {
	data, err := filepath.Abs("../../adapters/testdata/anpr")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`sink:
  url: http://ignored.example:1   # serve writes in process
  tenant: mantova
pipelines:
  - name: popolazione
    source: {path: %s/anpr_popolazione_residente_export_2024-01-10_excerpt_MN_ME.csv}
    mapping: anpr_popolazione_residente
    every: 200ms
  - name: missing
    source: {path: %s/no-such-file.csv}
    mapping: anpr_certificati
`, data, dir)
	file := filepath.Join(dir, "pipelines.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadPipelineFiles([]string{file})
	if err != nil {
		t.Fatal(err)
	}

	n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	set, err := startPipelines(context.Background(), ps, n.Handler(), reg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer set.stop(context.Background())

	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(set.m.lastSuccess.WithLabelValues("popolazione")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not finish in 30s; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	written := testutil.ToFloat64(set.m.records.WithLabelValues("popolazione", "written"))
	read := testutil.ToFloat64(set.m.records.WithLabelValues("popolazione", "read"))
	if written != 172 || read < 172 {
		t.Errorf("metrics: read %v written %v, want written 172", read, written)
	}
	res, err := n.Broker().Query(context.Background(), "mantova", broker.Query{Limit: 1})
	if err != nil || res.Total != 172 {
		t.Fatalf("tenant mantova holds %d Observations (%v), want 172", res.Total, err)
	}
	// Its schedule runs it again: the same rows change nothing.
	for testutil.ToFloat64(set.m.records.WithLabelValues("popolazione", "unchanged")) < 172 {
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled second run did not happen; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := testutil.ToFloat64(set.m.records.WithLabelValues("popolazione", "written")); w != 172 {
		t.Errorf("the second run wrote %v entities again", w-172)
	}
	for !strings.Contains(logs.String(), "pipeline failed; starting it again later") {
		if time.Now().After(deadline) {
			t.Fatalf("the missing file was not reported; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "no-such-file.csv") {
		t.Errorf("the failure does not name the file:\n%s", logs)
	}
	if p, err := testutil.GatherAndLint(reg); err != nil || len(p) > 0 {
		t.Errorf("lint: %v %v", p, err)
	}
}

func TestLoadPipelineFilesRefusesDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	body := "pipelines:\n  - name: same\n    source: {path: x.csv}\n    mapping: anpr_certificati\n"
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadPipelineFiles([]string{a, b})
	if err == nil || !strings.Contains(err.Error(), `"same"`) || !strings.Contains(err.Error(), "a.yaml") {
		t.Fatalf("duplicate names: %v", err)
	}
	if _, err := LoadPipelineFiles([]string{filepath.Join(dir, "none.yaml")}); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestNodeRunsConfiguredPipelines starts a node the way piazza serve does,
// with a pipelines file in its config; a broken file stops the start with
// its name.
func TestNodeRunsConfiguredPipelines(t *testing.T) {
	data, err := filepath.Abs("../../adapters/testdata/anpr")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "pipelines.yaml")
	cfg := fmt.Sprintf("pipelines:\n  - name: certificati\n    source: {path: %s/anpr_certificati_export_excerpt_2021-11_2021-12.csv}\n    mapping: anpr_certificati\n", data)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(), Pipelines: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := n.Broker().Query(context.Background(), "", broker.Query{Limit: 1})
		if err == nil && res.Total == 189 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the default tenant holds %d entities (%v), want 189", res.Total, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("pipelines:\n  - name: x\n    sorce: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(), Pipelines: []string{bad}})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), `"sorce"`) {
		t.Fatalf("start with a broken pipelines file: %v", err)
	}
}
