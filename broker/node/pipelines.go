package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all" // every built-in source kind
	"github.com/prometheus/client_golang/prometheus"
)

// Pipelines run inside 'piazza serve' (the config's pipelines: files, in
// the format of 'piazza ingest --config'). They write through the node's
// own NGSI-LD handler, in process: the same @context handling, validation
// policy and per-entity report as any client, with no network hop and no
// address to configure. A pipeline's sink.url is therefore ignored; its
// tenant and batch size apply.
//
// A pipeline runs at start and, with every: set, again at that interval
// (measured from the start of each run); without it, once. A polled source
// (an HTTP URL or portal with an interval) keeps running until the node
// stops. A pipeline that fails (a portal down, a column missing) is logged
// and started again after a backoff (1 s doubling to 5 min, never later
// than its next scheduled run): one broken dataset never stops the broker
// or the other pipelines.

// pipelineMetrics are the pipelines' series (bounded: one label value per
// configured pipeline).
type pipelineMetrics struct {
	records     *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

func newPipelineMetrics(reg prometheus.Registerer) (*pipelineMetrics, error) {
	m := &pipelineMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "piazza_pipeline_records_total",
			Help: "Records and entities through each pipeline run by piazza serve, by stage: read (records), mapped, written, unchanged (entities), rejected (records).",
		}, []string{"pipeline", "stage"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "piazza_pipeline_last_success_timestamp_seconds",
			Help: "Unix time at which each pipeline last had everything it read delivered (end of a run, or of a poll).",
		}, []string{"pipeline"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.records, m.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering pipeline metrics: %w", err)
			}
		}
	}
	return m, nil
}

// pipelineStages are the values of the stage label.
var pipelineStages = []string{"read", "mapped", "written", "unchanged", "rejected"}

// counts returns a progress snapshot's counters in pipelineStages order.
func counts(p adapters.Progress) [5]int64 {
	return [5]int64{p.Read, p.Mapped, p.Written, p.Unchanged, p.Rejected}
}

// pipelineSet is the running pipelines of a node.
type pipelineSet struct {
	log    *slog.Logger
	m      *pipelineMetrics
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// LoadPipelineFiles reads the pipelines of every file, checking that each
// name appears once (names label logs and metrics).
func LoadPipelineFiles(files []string) ([]adapters.PipelineConfig, error) {
	var out []adapters.PipelineConfig
	where := map[string]string{}
	for _, f := range files {
		ps, err := adapters.LoadPipelines(f)
		if err != nil {
			return nil, fmt.Errorf("pipelines file %s: %w", f, err)
		}
		for _, p := range ps {
			if other, dup := where[p.Name]; dup {
				return nil, fmt.Errorf("pipelines file %s: pipeline name %q is also used in %s; names must be unique", f, p.Name, other)
			}
			where[p.Name] = f
			out = append(out, p)
		}
	}
	return out, nil
}

// startPipelines starts each pipeline on its own goroutine, writing through
// h. They stop when stop is called or ctx ends.
func startPipelines(ctx context.Context, ps []adapters.PipelineConfig, h http.Handler, reg prometheus.Registerer, log *slog.Logger) (*pipelineSet, error) {
	m, err := newPipelineMetrics(reg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &pipelineSet{log: log.With("component", "pipelines"), m: m, cancel: cancel}
	client := &http.Client{Transport: handlerTransport{h}}
	for _, p := range ps {
		p.Sink.URL = inProcessURL
		for _, st := range pipelineStages {
			m.records.WithLabelValues(p.Name, st) // every series exists from the start
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, p, client)
		}()
	}
	if len(ps) > 0 {
		s.log.Info("pipelines started", "count", len(ps))
	}
	return s, nil
}

// inProcessURL is the sink URL of in-process pipelines: handlerTransport
// never dials it.
const inProcessURL = "http://piazza.in-process"

// run runs one pipeline on its schedule, starting it again after a
// failure.
func (s *pipelineSet) run(ctx context.Context, p adapters.PipelineConfig, client *http.Client) {
	log := s.log.With("pipeline", p.Name)
	backoff := time.Second
	for {
		started := time.Now()
		var last [5]int64
		account := func(pr adapters.Progress) {
			now := counts(pr)
			for i, st := range pipelineStages {
				if d := now[i] - last[i]; d > 0 {
					s.m.records.WithLabelValues(p.Name, st).Add(float64(d))
				}
			}
			last = now
		}
		opts := adapters.Options{
			Logger: log, HTTPClient: client, Progress: account, ProgressEvery: 1000,
			Synced: func(pr adapters.Progress) {
				account(pr)
				s.m.lastSuccess.WithLabelValues(p.Name).SetToCurrentTime()
			},
		}
		log.Info("pipeline running", "source", p.Source.Kind, "mapping", p.MappingName, "tenant", p.Sink.Tenant)
		sum, err := adapters.Run(ctx, p, opts)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err == nil || errors.Is(err, adapters.ErrRecordsRejected):
			backoff = time.Second
			if err == nil {
				log.Info("pipeline finished", "read", sum.Read, "written", sum.Written, "unchanged", sum.Unchanged, "seconds", sum.Seconds)
			} else {
				log.Warn("pipeline finished with rejected records", "read", sum.Read, "written", sum.Written,
					"rejected", sum.Rejected, "first_errors", len(sum.Errors))
			}
			if p.Every <= 0 {
				return
			}
			wait = time.Until(started.Add(p.Every))
			log.Info("pipeline scheduled", "next_run", started.Add(p.Every).Format(time.RFC3339))
		default:
			wait = backoff
			if p.Every > 0 {
				wait = min(wait, max(time.Until(started.Add(p.Every)), time.Second))
			}
			log.Error("pipeline failed; starting it again later", "err", err, "retry_in", wait.Round(time.Millisecond).String())
			backoff = min(2*backoff, 5*time.Minute)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stop cancels every pipeline and waits for them, until ctx ends: a batch
// being written is either acknowledged or not, never half-reported.
func (s *pipelineSet) stop(ctx context.Context) {
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("pipelines still stopping at the end of the grace period")
	}
}

// handlerTransport is an http.RoundTripper that serves each request with an
// http.Handler in the same process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	w := &memResponse{header: http.Header{}}
	t.h.ServeHTTP(w, req)
	if req.Body != nil {
		_ = req.Body.Close()
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)), StatusCode: w.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// memResponse is an http.ResponseWriter that keeps the response in memory.
type memResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *memResponse) Header() http.Header { return w.header }

func (w *memResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *memResponse) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}
