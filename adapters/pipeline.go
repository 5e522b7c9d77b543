package adapters

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// PipelineConfig is one pipeline: where records come from, how they become
// entities and where the entities go. LoadPipelines and PresetPipeline build
// it; a PipelineConfig is not modified by Run.
type PipelineConfig struct {
	// Name labels the pipeline in logs and summaries.
	Name string
	// Source is the source kind and its settings.
	Source SourceConfig
	// Mapping turns records into entities.
	Mapping *Mapping
	// MappingName says where the mapping came from: a preset name, a file,
	// or "inline".
	MappingName string
	// Sink says where and how entities are delivered.
	Sink SinkConfig
	// Rejects, when not empty, is the file rejected records are written to,
	// as they came (CSV rows verbatim under the header line, JSON records as
	// JSON Lines). It is created only when a record is rejected.
	Rejects string
	// AllowRejects makes Run return no error when records were rejected.
	AllowRejects bool
	// Tables replaces the sources of the mapping's data tables, by name.
	Tables map[string]SourceConfig
	// Every is the pipeline's schedule when piazza serve runs it: it runs
	// at start and again every interval. 0 runs it once (a polled source
	// keeps running on its own interval). piazza ingest runs it once.
	Every time.Duration
}

type pipelinesFile struct {
	Sink      *SinkConfig     `yaml:"sink"`
	Pipelines []*pipelineSpec `yaml:"pipelines"`
}

func (f *pipelinesFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a pipeline file is a mapping with sink and pipelines", n.Line)
	}
	if err := checkKeys(n, f); err != nil {
		return err
	}
	type plain pipelinesFile
	return n.Decode((*plain)(f))
}

type pipelineSpec struct {
	Name         string                   `yaml:"name"`
	Source       *SourceConfig            `yaml:"source"`
	Mapping      yaml.Node                `yaml:"mapping"`
	Sink         *SinkConfig              `yaml:"sink"`
	Rejects      string                   `yaml:"rejects"`
	AllowRejects bool                     `yaml:"allowRejects"`
	Tables       map[string]*SourceConfig `yaml:"tables"`
	Every        Duration                 `yaml:"every"`
	line         int
}

func (p *pipelineSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, p); err != nil {
		return err
	}
	type plain pipelineSpec
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.line = n.Line
	return nil
}

// LoadPipelines reads a pipeline config file:
//
//	sink:                      # defaults for every pipeline (optional)
//	  url: http://localhost:1026
//	pipelines:
//	  - name: popolazione
//	    source: {kind: csv, path: popolazione.csv}
//	    mapping: anpr_popolazione_residente   # a preset, a mapping file, or inline
//	    sink: {tenant: mantova}               # laid over the defaults
//	    rejects: rejects/popolazione.csv
//
// Relative paths are resolved against the file's directory. Every source is
// constructed once (without side effects) so that configuration errors are
// reported here, naming the pipeline and the key.
func LoadPipelines(file string) ([]PipelineConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	var f pipelinesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s is empty", ErrInvalidConfig, file)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, file, err)
	}
	if len(f.Pipelines) == 0 {
		return nil, fmt.Errorf("%w: %s: no pipelines", ErrInvalidConfig, file)
	}
	dir := filepath.Dir(file)
	seen := map[string]bool{}
	var out []PipelineConfig
	for i, ps := range f.Pipelines {
		if ps == nil {
			return nil, fmt.Errorf("%w: %s: pipelines[%d] is empty", ErrInvalidConfig, file, i)
		}
		name := ps.Name
		if name == "" {
			name = fmt.Sprintf("pipeline-%d", i+1)
		}
		where := fmt.Sprintf("%s:%d: pipeline %q", file, ps.line, name)
		if seen[name] {
			return nil, fmt.Errorf("%w: %s: duplicate name", ErrInvalidConfig, where)
		}
		seen[name] = true
		cfg := PipelineConfig{Name: name, Rejects: ps.Rejects, AllowRejects: ps.AllowRejects, Every: time.Duration(ps.Every)}
		if cfg.Rejects != "" && !filepath.IsAbs(cfg.Rejects) {
			cfg.Rejects = filepath.Join(dir, cfg.Rejects)
		}
		var src SourceConfig
		if ps.Source != nil {
			src = *ps.Source
		}
		src.Dir = dir
		preset, err := resolveMapping(&ps.Mapping, dir)
		if err != nil {
			return nil, fmt.Errorf("%s: mapping: %w", where, err)
		}
		cfg.Mapping, cfg.MappingName = preset.Mapping, preset.Name
		for name, tc := range ps.Tables {
			if tc == nil {
				return nil, fmt.Errorf("%w: %s: tables: %s is empty", ErrInvalidConfig, where, name)
			}
			if !slices.Contains(cfg.Mapping.TableNames(), name) {
				return nil, fmt.Errorf("%w: %s: tables: the mapping has no table %q (tables: %s)", ErrInvalidConfig, where, name, strings.Join(cfg.Mapping.TableNames(), ", "))
			}
			t := *tc
			t.Dir = dir
			if cfg.Tables == nil {
				cfg.Tables = map[string]SourceConfig{}
			}
			cfg.Tables[name] = t
		}
		cfg.Source = preset.Source.merged(src)
		if cfg.Source.Kind == "" {
			return nil, fmt.Errorf("%w: %s: source: kind is required (%s)", ErrInvalidConfig, where, strings.Join(Kinds(), ", "))
		}
		sink := SinkConfig{}
		if f.Sink != nil {
			sink = *f.Sink
		}
		if ps.Sink != nil {
			sink = overlaySink(sink, *ps.Sink)
		}
		if cfg.Sink, err = sink.withDefaults(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		src2, err := NewSource(cfg.Source)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		_ = src2.Close()
		out = append(out, cfg)
	}
	return out, nil
}

func overlaySink(base, over SinkConfig) SinkConfig {
	if over.URL != "" {
		base.URL = over.URL
	}
	if over.Tenant != "" {
		base.Tenant = over.Tenant
	}
	if over.BatchSize != 0 {
		base.BatchSize = over.BatchSize
	}
	if over.Timeout != 0 {
		base.Timeout = over.Timeout
	}
	if over.MaxRetries != 0 {
		base.MaxRetries = over.MaxRetries
	}
	if over.Backoff != 0 {
		base.Backoff = over.Backoff
	}
	if over.MaxBackoff != 0 {
		base.MaxBackoff = over.MaxBackoff
	}
	return base
}

// resolveMapping reads a pipeline's mapping key: a preset name, a file
// (relative to dir) or an inline mapping.
func resolveMapping(n *yaml.Node, dir string) (Preset, error) {
	switch n.Kind {
	case 0:
		return Preset{}, fmt.Errorf("%w: required (a preset name, a mapping file or an inline mapping)", ErrInvalidMapping)
	case yaml.ScalarNode:
		v := strings.TrimSpace(n.Value)
		if p, err := LookupPreset(v); err == nil {
			return p, nil
		}
		if strings.HasSuffix(v, ".yaml") || strings.HasSuffix(v, ".yml") || strings.ContainsAny(v, `/\`) {
			if !filepath.IsAbs(v) {
				v = filepath.Join(dir, v)
			}
			return LoadMappingFile(v)
		}
		_, err := LookupPreset(v)
		return Preset{}, err
	case yaml.MappingNode:
		var spec mappingSpec
		if err := n.Decode(&spec); err != nil {
			return Preset{}, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
		}
		m, err := compileMapping(&spec)
		if err != nil {
			return Preset{}, err
		}
		m.setTableDir(dir)
		return Preset{Name: "inline", Mapping: m, Types: m.Types()}, nil
	}
	return Preset{}, fmt.Errorf("%w: line %d: must be a preset name, a file or a mapping", ErrInvalidMapping, n.Line)
}

// PresetPipeline returns the pipeline that runs the named preset on one file
// (or URL, for source kinds that read URLs), delivering to sink.
func PresetPipeline(preset, file string, sink SinkConfig) (PipelineConfig, error) {
	p, err := LookupPreset(preset)
	if err != nil {
		return PipelineConfig{}, err
	}
	src, err := p.Source.With("path", file)
	if err != nil {
		return PipelineConfig{}, err
	}
	src.Dir = ""
	if sink, err = sink.withDefaults(); err != nil {
		return PipelineConfig{}, err
	}
	return PipelineConfig{Name: preset, Source: src, Mapping: p.Mapping, MappingName: p.Name, Sink: sink}, nil
}

// PresetURLPipeline returns the pipeline that runs the named preset on what
// a URL serves. When the preset reads a file format (csv, json...) the
// source becomes kind "http" with that format and the preset's settings, and
// fetches the URL once; a preset whose source kind reads URLs itself (ckan,
// ngsiv2) gets the URL as its url setting.
func PresetURLPipeline(preset, url string, sink SinkConfig) (PipelineConfig, error) {
	p, err := LookupPreset(preset)
	if err != nil {
		return PipelineConfig{}, err
	}
	if !strings.Contains(url, "://") {
		return PipelineConfig{}, fmt.Errorf("%w: %q is not a URL (use --file for files)", ErrInvalidConfig, url)
	}
	src := p.Source
	if IsFormat(src.Kind) {
		if src, err = src.With("format", src.Kind); err != nil {
			return PipelineConfig{}, err
		}
		src.Kind = "http"
	}
	if src, err = src.With("url", url); err != nil {
		return PipelineConfig{}, err
	}
	src.Dir = ""
	if sink, err = sink.withDefaults(); err != nil {
		return PipelineConfig{}, err
	}
	s, err := NewSource(src)
	if err != nil {
		return PipelineConfig{}, err
	}
	_ = s.Close()
	return PipelineConfig{Name: preset, Source: src, Mapping: p.Mapping, MappingName: p.Name, Sink: sink}, nil
}

// Options tune one Run. The zero value delivers over HTTP, logs nothing and
// reports no progress.
type Options struct {
	// Logger receives warnings about rejected records and retries.
	Logger *slog.Logger
	// Sink replaces the HTTP sink built from the config (tests, or a broker
	// in the same process). Run does not close it.
	Sink Sink
	// HTTPClient is used by the HTTP sink; nil means a default client.
	HTTPClient *http.Client
	// DryRun maps and validates but delivers nothing; Summary.Sample keeps
	// the first entities.
	DryRun bool
	// SampleSize is the number of entities kept in Summary.Sample in a dry
	// run (default 3).
	SampleSize int
	// Validate, if set, checks each entity (against its Smart Data Models
	// schema, typically); an error rejects the record.
	Validate func(Entity) error
	// Progress, if set, is called every ProgressEvery records and once at
	// the end with Done set. It runs on the pipeline goroutine: keep it fast.
	Progress func(Progress)
	// ProgressEvery defaults to 1000 records.
	ProgressEvery int
	// Synced, if set, is called each time everything read so far has been
	// delivered (or rejected): after each poll of a polled source and at
	// the end of a run. A long-running pipeline's "last success" is the
	// time of its last call. It runs on the pipeline goroutine.
	Synced func(Progress)
	// MaxErrors caps Summary.Errors and the warnings logged (default 100).
	MaxErrors int
}

// Progress is a snapshot of a running pipeline.
type Progress struct {
	Pipeline  string
	Read      int64
	Mapped    int64
	Written   int64
	Unchanged int64
	Rejected  int64
	// Bytes is how far the source has read; TotalBytes is the input size
	// when the source knows it (0 otherwise): a progress bar is Bytes/TotalBytes.
	Bytes      int64
	TotalBytes int64
	Elapsed    time.Duration
	Done       bool
}

// Summary is the outcome of a Run, ready for encoding/json.
type Summary struct {
	Pipeline string `json:"pipeline"`
	Mapping  string `json:"mapping"`
	DryRun   bool   `json:"dryRun"`
	// Read counts records read; Skipped those a skip rule dropped;
	// Rejected those refused (by the source, the mapping, the validator or
	// the broker).
	Read     int64 `json:"read"`
	Skipped  int64 `json:"skipped"`
	Rejected int64 `json:"rejected"`
	// Mapped counts entities produced; Written those the broker stored;
	// Unchanged those identical to the stored state; RejectedEntities those
	// the validator or the broker refused.
	Mapped           int64 `json:"mapped"`
	Written          int64 `json:"written"`
	Unchanged        int64 `json:"unchanged"`
	RejectedEntities int64 `json:"rejectedEntities"`
	// Errors lists the first rejected records with their position and
	// reason; MoreErrors counts the others.
	Errors     []RowError `json:"errors,omitempty"`
	MoreErrors int64      `json:"moreErrors,omitempty"`
	RejectFile string     `json:"rejectFile,omitempty"`
	// Sample holds the first entities of a dry run.
	Sample        []Entity `json:"sample,omitempty"`
	Seconds       float64  `json:"seconds"`
	RowsPerSecond float64  `json:"rowsPerSecond"`
}

// RowError is one rejected record: where it is and why.
type RowError struct {
	Input  string `json:"input"`
	Line   int    `json:"line,omitempty"`
	Record int    `json:"record,omitempty"`
	Column int    `json:"column,omitempty"`
	Field  string `json:"field,omitempty"`
	Entity string `json:"entity,omitempty"`
	Reason string `json:"reason"`
}

// String renders the error as "file:line: column C (FIELD): reason".
func (e RowError) String() string {
	re := &RecordError{Input: e.Input, Line: e.Line, Index: e.Record, Column: e.Column, Field: e.Field, Err: errors.New(e.Reason)}
	if e.Entity != "" {
		re.Err = fmt.Errorf("entity %s: %s", e.Entity, e.Reason)
	}
	return re.Error()
}

// Run reads cfg's source to its end (or until ctx is done), maps each
// record and delivers the entities in batches. Bad records are rejected one
// by one and the rest goes on. Run returns the summary and an error when
// the pipeline could not complete (a missing column, an unreachable broker,
// ctx cancelled) or, wrapping ErrRecordsRejected, when records were
// rejected and cfg.AllowRejects is false.
func Run(ctx context.Context, cfg PipelineConfig, opts Options) (Summary, error) {
	start := time.Now()
	r := &runner{ctx: ctx, cfg: cfg, opts: opts, start: start, inBatch: map[string]struct{}{},
		sum: Summary{Pipeline: cfg.Name, Mapping: cfg.MappingName, DryRun: opts.DryRun}}
	if r.opts.SampleSize == 0 {
		r.opts.SampleSize = 3
	}
	if r.opts.ProgressEvery <= 0 {
		r.opts.ProgressEvery = 1000
	}
	if r.opts.MaxErrors <= 0 {
		r.opts.MaxErrors = 100
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r.log = logger.With("component", "adapters.pipeline", "pipeline", cfg.Name)
	if cfg.Mapping == nil {
		return r.sum, fmt.Errorf("%w: pipeline %q has no mapping", ErrInvalidConfig, cfg.Name)
	}
	batchSize := cfg.Sink.BatchSize
	if !opts.DryRun {
		r.sink = opts.Sink
		if r.sink == nil {
			hs, err := NewHTTPSink(cfg.Sink, opts.HTTPClient, logger)
			if err != nil {
				return r.sum, err
			}
			r.sink = hs
			defer hs.Close()
			batchSize = hs.Config().BatchSize
		}
	}
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	r.batchSize = batchSize
	if len(cfg.Mapping.TableNames()) > 0 {
		m, err := cfg.Mapping.WithTables(ctx, cfg.Tables, logger.With("component", "adapters.tables", "pipeline", cfg.Name))
		if err != nil {
			return r.sum, err
		}
		r.cfg.Mapping = m
	}
	srcCfg := cfg.Source
	if srcCfg.Logger == nil {
		srcCfg.Logger = logger.With("component", "adapters.source", "pipeline", cfg.Name, "kind", srcCfg.Kind)
	}
	src, err := NewSource(srcCfg)
	if err != nil {
		return r.sum, err
	}
	r.src = src
	runErr := src.Run(ctx, r)
	if runErr == nil {
		runErr = r.Sync()
	}
	if err := r.wait(); err != nil && runErr == nil { // never leave a delivery running
		runErr = err
	}
	if cerr := src.Close(); cerr != nil && runErr == nil {
		runErr = fmt.Errorf("source %s: close: %w", cfg.Source.Kind, cerr)
	}
	if cerr := r.closeRejects(); cerr != nil && runErr == nil {
		runErr = cerr
	}
	elapsed := time.Since(start)
	r.sum.Seconds = elapsed.Seconds()
	if elapsed > 0 {
		r.sum.RowsPerSecond = float64(r.sum.Read) / elapsed.Seconds()
	}
	r.report(true)
	if runErr != nil {
		r.log.Error("pipeline stopped", "error", runErr, "read", r.sum.Read)
		return r.sum, runErr
	}
	r.log.Info("pipeline done", "read", r.sum.Read, "mapped", r.sum.Mapped, "written", r.sum.Written,
		"unchanged", r.sum.Unchanged, "rejected", r.sum.Rejected, "skipped", r.sum.Skipped, "seconds", r.sum.Seconds)
	if r.sum.Rejected > 0 && !cfg.AllowRejects {
		return r.sum, fmt.Errorf("%w: %d of %d records (pipeline %q)", ErrRecordsRejected, r.sum.Rejected, r.sum.Read, cfg.Name)
	}
	return r.sum, nil
}

// runner is the Emitter of one Run; it lives on the Run goroutine.
type runner struct {
	ctx       context.Context
	cfg       PipelineConfig
	opts      Options
	log       *slog.Logger
	src       Source
	sink      Sink
	sum       Summary
	start     time.Time
	batchSize int

	batch       []Entity
	owners      []*recRef
	spareBatch  []Entity
	spareOwners []*recRef
	inflight    *inflight
	inBatch     map[string]struct{} // ids in batch
	header      *Header
	offset      int64
	rejectF     *os.File
	rejectW     *bufio.Writer
	rejHead     *Header
}

// recRef remembers the record an entity in the batch came from.
type recRef struct {
	rec      Record
	rejected bool
}

// Emit implements Emitter.
func (r *runner) Emit(rec Record) error {
	r.cfg.Mapping.Redact(&rec)
	r.sum.Read++
	r.offset = rec.Offset
	if r.sum.Read%int64(r.opts.ProgressEvery) == 0 {
		r.report(false)
	}
	if rec.Header != r.header && rec.Header != nil {
		r.header = rec.Header
		if rec.Header.Tabular() {
			if err := r.cfg.Mapping.CheckHeader(rec.Header); err != nil {
				return fmt.Errorf("%s: %w", rec.Input, err)
			}
		}
	}
	skip, err := r.cfg.Mapping.Skip(&rec)
	if err != nil {
		return r.reject(&rec, err, "")
	}
	if skip {
		r.sum.Skipped++
		return nil
	}
	entities, err := r.cfg.Mapping.Map(&rec)
	if err != nil {
		return r.reject(&rec, err, "")
	}
	if r.opts.Validate != nil {
		for _, e := range entities {
			if err := r.opts.Validate(e); err != nil {
				r.sum.RejectedEntities++
				return r.reject(&rec, recordError(&rec, -1, fmt.Errorf("%w: %v", ErrInvalidEntity, err)), e.ID())
			}
		}
	}
	r.sum.Mapped += int64(len(entities))
	if r.opts.DryRun {
		for _, e := range entities {
			if len(r.sum.Sample) < r.opts.SampleSize {
				r.sum.Sample = append(r.sum.Sample, e)
			}
		}
		return nil
	}
	if len(entities) == 0 {
		return nil
	}
	ref := &recRef{rec: rec}
	ref.rec.Values = nil // only the position and the raw text are needed later
	for _, e := range entities {
		if _, dup := r.inBatch[e.ID()]; dup {
			// The same entity twice in one batch: deliver what came before,
			// so that the broker sees the writes in the input's order.
			if err := r.flush(); err != nil {
				return err
			}
		}
		r.inBatch[e.ID()] = struct{}{}
		r.batch = append(r.batch, e)
		r.owners = append(r.owners, ref)
		if len(r.batch) >= r.batchSize {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reject implements Emitter.
func (r *runner) Reject(rec Record, err error) error {
	r.cfg.Mapping.Redact(&rec)
	r.sum.Read++
	r.offset = rec.Offset
	return r.reject(&rec, err, "")
}

// Sync implements Emitter: everything emitted so far is delivered.
func (r *runner) Sync() error {
	if err := r.flush(); err != nil {
		return err
	}
	if err := r.wait(); err != nil {
		return err
	}
	if r.opts.Synced != nil {
		r.opts.Synced(r.progress(false))
	}
	return nil
}

// flush hands the current batch to the sink, in a goroutine, so that the
// next batch is mapped while this one is on the wire. At most one batch is
// in flight: flush first waits for the previous one.
func (r *runner) flush() error {
	if err := r.wait(); err != nil {
		return err
	}
	if len(r.batch) == 0 || r.sink == nil {
		return nil
	}
	clear(r.inBatch)
	fl := &inflight{batch: r.batch, owners: r.owners, done: make(chan delivered, 1)}
	go func() {
		res, err := r.sink.Deliver(r.ctx, fl.batch)
		fl.done <- delivered{res, err}
	}()
	r.inflight = fl
	r.batch, r.owners = r.spareBatch, r.spareOwners
	r.spareBatch, r.spareOwners = nil, nil
	return nil
}

// inflight is a batch being delivered.
type inflight struct {
	batch  []Entity
	owners []*recRef
	done   chan delivered
}

type delivered struct {
	res DeliveryResult
	err error
}

// wait waits for the batch in flight, if any, and accounts for its result.
func (r *runner) wait() error {
	fl := r.inflight
	if fl == nil {
		return nil
	}
	r.inflight = nil
	d := <-fl.done
	defer func() {
		clear(fl.batch)
		clear(fl.owners)
		r.spareBatch, r.spareOwners = fl.batch[:0], fl.owners[:0]
	}()
	if d.err != nil {
		return d.err
	}
	res := d.res
	r.sum.Written += int64(res.Written)
	r.sum.Unchanged += int64(res.Unchanged)
	if len(res.Rejected) > 0 {
		byID := make(map[string]*recRef, len(fl.batch))
		for i, e := range fl.batch {
			byID[e.ID()] = fl.owners[i]
		}
		for _, rj := range res.Rejected {
			r.sum.RejectedEntities++
			ref := byID[rj.ID]
			if ref == nil {
				r.log.Warn("broker rejected an entity not in the batch", "id", rj.ID, "problem", rj.Problem.String())
				continue
			}
			if ref.rejected {
				continue
			}
			ref.rejected = true
			err := recordError(&ref.rec, -1, fmt.Errorf("%w: %s", ErrEntityRejected, rj.Problem))
			if err := r.reject(&ref.rec, err, rj.ID); err != nil {
				return err
			}
		}
	}
	r.report(false)
	return nil
}

// reject counts, reports and keeps one rejected record.
func (r *runner) reject(rec *Record, err error, entity string) error {
	r.sum.Rejected++
	re := RowError{Input: rec.Input, Line: rec.Line, Record: rec.Index, Entity: entity, Reason: err.Error()}
	var rerr *RecordError
	if errors.As(err, &rerr) {
		re.Column, re.Field, re.Reason = rerr.Column, rerr.Field, rerr.Err.Error()
		if rerr.Line > 0 {
			re.Line = rerr.Line
		}
	}
	if len(r.sum.Errors) < r.opts.MaxErrors {
		r.sum.Errors = append(r.sum.Errors, re)
		r.log.Warn("record rejected", "at", re.String())
	} else {
		if r.sum.MoreErrors == 0 {
			r.log.Warn("more records rejected; further warnings suppressed", "max", r.opts.MaxErrors)
		}
		r.sum.MoreErrors++
	}
	if r.cfg.Rejects == "" {
		return nil
	}
	if r.rejectW == nil {
		if dir := filepath.Dir(r.cfg.Rejects); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("reject file: %w", err)
			}
		}
		f, err := os.Create(r.cfg.Rejects)
		if err != nil {
			return fmt.Errorf("reject file: %w", err)
		}
		r.rejectF, r.rejectW = f, bufio.NewWriter(f)
		r.sum.RejectFile = r.cfg.Rejects
	}
	if h := rec.Header; h != nil && h.Raw() != "" && h != r.rejHead {
		r.rejHead = h
		r.rejectW.WriteString(h.Raw())
		r.rejectW.WriteByte('\n')
	}
	r.rejectW.WriteString(rec.Raw)
	if err := r.rejectW.WriteByte('\n'); err != nil {
		return fmt.Errorf("reject file: %w", err)
	}
	return nil
}

func (r *runner) closeRejects() error {
	if r.rejectF == nil {
		return nil
	}
	err := r.rejectW.Flush()
	if cerr := r.rejectF.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reject file: %w", err)
	}
	return nil
}

func (r *runner) report(done bool) {
	if r.opts.Progress == nil {
		return
	}
	r.opts.Progress(r.progress(done))
}

func (r *runner) progress(done bool) Progress {
	p := Progress{Pipeline: r.cfg.Name, Read: r.sum.Read, Mapped: r.sum.Mapped, Written: r.sum.Written,
		Unchanged: r.sum.Unchanged, Rejected: r.sum.Rejected, Bytes: r.offset, Elapsed: time.Since(r.start), Done: done}
	if sz, ok := r.src.(Sizer); ok {
		p.TotalBytes = sz.Size()
	}
	return p
}
