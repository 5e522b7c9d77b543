package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkIngestMillion is the end-to-end figure of issue 5: a CSV file of
// PIAZZA_BENCH_ROWS rows (default 1,000,000) in the ANPR population layout,
// one distinct Observation per row, through 'piazza ingest' (run in
// process: flags, preset, batches of 1000 over HTTP) into a local Piazza.
//
//	go test -run '^$' -bench IngestMillion -benchtime 1x -timeout 60m ./cmd/piazza
//
// Two sub-benchmarks:
//   - node: the broker started in the same process with node.Start, as the
//     issue asks. The heap figures then include the broker, whose read model
//     keeps every entity: heap-end-MB (after a GC, the broker's state) grows
//     with the file by design; peak-heap-MB minus heap-end-MB is what the
//     run held on top of it.
//   - process: the broker as a separate 'piazza serve' process, so that the
//     heap of this process is the ingest alone: its peak-heap-MB must not
//     grow with the file. broker-rss-MiB is the broker's resident memory.
//
// Validation against the Smart Data Models schemas is off (--validate=false):
// the broker checks every entity at the door anyway.
// A second iteration would find every entity unchanged: run it -benchtime 1x.
func BenchmarkIngestMillion(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("PIAZZA_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PIAZZA_BENCH_ROWS=%q", v)
		}
		rows = n
	}
	file := filepath.Join(b.TempDir(), "popolazione_residente_export.csv")
	writePopulation(b, file, rows)
	b.Run("node", func(b *testing.B) {
		base := startNodeInProcess(b)
		benchIngest(b, base, file, rows)
	})
	b.Run("process", func(b *testing.B) {
		bin := piazzaBinaryFor(b)
		p := startPiazzaBin(b, bin, "--data-dir", b.TempDir(), "--nats-addr", "off")
		benchIngest(b, p.url, file, rows)
		b.ReportMetric(float64(vmRSS(b, p.cmd.Process.Pid))/(1<<20), "broker-rss-MiB")
	})
}

// writePopulation streams a population export of n rows, each a distinct
// comune code.
func writePopulation(tb testing.TB, path string, n int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString("DATA ELABORAZIONE,REGIONE,PROVINCIA,COD_ISTAT_COMUNE,COMUNE,RESIDENTI\n")
	for i := range n {
		fmt.Fprintf(w, "10-01-2024,LOMBARDIA,MANTOVA,%07d,COMUNE NUMERO %d,%d\n", i, i, 1000+i%50000)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func benchIngest(b *testing.B, base, file string, rows int) {
	runtime.GC()
	var peak uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // sample the heap while the ingest runs
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				mu.Lock()
				peak = max(peak, ms.HeapInuse)
				mu.Unlock()
			}
		}
	}()
	total := 0
	for b.Loop() {
		var out, errb bytes.Buffer
		code := run([]string{"ingest", "--preset", "anpr_popolazione_residente", "--file", file, "--url", base,
			"--validate=false", "--progress", "none", "--json"}, &out, &errb)
		var res ingestJSON
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != 0 || len(res.Pipelines) != 1 {
			b.Fatalf("exit %d: %v\n%s\n%s", code, err, out.String(), errb.String())
		}
		if p := res.Pipelines[0]; p.Read != int64(rows) || p.Written+p.Unchanged != int64(rows) {
			b.Fatalf("summary %+v, want %d rows delivered", p, rows)
		}
		total += rows
	}
	close(stop)
	<-done
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-end-MB")
}
