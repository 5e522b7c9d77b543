package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all" // every built-in source kind
	"github.com/piazza-city/piazza/schemas"
)

// Exit codes of 'piazza ingest'.
const (
	exitOK       = 0
	exitFailed   = 1 // a pipeline could not complete (broker down, missing column...)
	exitUsage    = 2 // bad flags or config
	exitRejected = 3 // every pipeline completed, but records were rejected
)

const ingestUsage = `Usage:
  piazza ingest --preset NAME --file PATH [flags]     one file through a ready-made preset
  piazza ingest --preset NAME --source URL [flags]    the same, read over HTTP(S) (or from a portal or broker)
  piazza ingest --config pipelines.yaml [flags]       every pipeline of a config file
  piazza ingest --list-presets                        what the presets read and make

Reads municipal datasets (CSV, JSON, GeoJSON, CKAN portals, NGSI-v2 brokers), turns each record into
NGSI-LD entities, checks them against their Smart Data Models schema and writes them into a running
Piazza through the NGSI-LD batch API (POST /ngsi-ld/v1/entityOperations/upsert). Entities identical to
what the broker holds are counted as unchanged and publish nothing, so running the same input twice is
harmless. A bad record is reported with its line, column and reason, kept in the reject file, and the
rest goes on.

Examples:
  piazza ingest --list-presets
  piazza ingest --preset anpr_popolazione_residente --file popolazione_residente_export.csv
  piazza ingest --preset anpr_attivita_residenti --file attivita_residenti_2024_export.csv --dry-run
  piazza ingest --preset anpr_certificati --source https://raw.githubusercontent.com/italia/anpr-opendata/main/data/certificati_export.csv
  piazza ingest --preset ngsiv2 --source http://orion:1026 --tenant mantova
  piazza ingest --config pipelines.yaml --url http://piazza:1026 --json > summary.json
  piazza ingest --preset anpr_certificati --file certificati.csv --reject-file scarti.csv --allow-rejects
  piazza ingest --preset arpa_lombardia_aria --file sensori_aria.json --table sensori=stazioni.json

Exit status: 0 all records written or unchanged; 1 a pipeline could not complete; 2 bad usage or
config; 3 records were rejected (0 with --allow-rejects).

Flags:
`

// ingestFlags are the flags of 'piazza ingest'.
type ingestFlags struct {
	config, preset, file, source string
	url, tenant                  string
	listPresets, dryRun, asJSON  bool
	rejectFile                   string
	batchSize                    int
	allowRejects, validate       bool
	progress, logLevel           string
	sample                       int
	tables                       tableFlags
}

// tableFlags collects --table NAME=PATH|URL.
type tableFlags map[string]string

func (t *tableFlags) String() string { return fmt.Sprint(map[string]string(*t)) }

func (t *tableFlags) Set(v string) error {
	name, src, ok := strings.Cut(v, "=")
	if !ok || name == "" || src == "" {
		return fmt.Errorf("want NAME=PATH or NAME=URL")
	}
	if *t == nil {
		*t = tableFlags{}
	}
	(*t)[name] = src
	return nil
}

func ingest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f ingestFlags
	fs.StringVar(&f.config, "config", "", "pipeline config file (YAML: sink and pipelines)")
	fs.StringVar(&f.preset, "preset", "", "a preset name (see --list-presets)")
	fs.StringVar(&f.file, "file", "", "input file for --preset ('-' for standard input)")
	fs.StringVar(&f.source, "source", "", "input URL for --preset (http(s) file, CKAN portal or NGSI-v2 broker, as the preset reads)")
	fs.StringVar(&f.url, "url", adapters.DefaultURL, "the Piazza broker's base URL")
	fs.StringVar(&f.tenant, "tenant", "", "NGSILD-Tenant to write to (default: the broker's default tenant)")
	fs.BoolVar(&f.listPresets, "list-presets", false, "list the presets and exit")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read, map and validate, write nothing, print a sample of the entities")
	fs.BoolVar(&f.asJSON, "json", false, "print the summary as JSON on standard output")
	fs.StringVar(&f.rejectFile, "reject-file", "", "write rejected records here, as they came (one pipeline only)")
	fs.IntVar(&f.batchSize, "batch-size", 0, fmt.Sprintf("entities per upsert request (default %d)", adapters.DefaultBatchSize))
	fs.BoolVar(&f.allowRejects, "allow-rejects", false, "exit 0 even when records were rejected")
	fs.BoolVar(&f.validate, "validate", true, "check entities against the embedded Smart Data Models schemas of their type")
	fs.StringVar(&f.progress, "progress", "auto", "auto (a bar on a terminal, log lines otherwise), bar, log or none")
	fs.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error (rejected records are logged at warn)")
	fs.IntVar(&f.sample, "sample", 3, "entities shown by --dry-run")
	fs.Var(&f.tables, "table", "NAME=PATH|URL: read the mapping's data table NAME from this file or URL (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), ingestUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "piazza ingest: "+format+"\nRun 'piazza ingest --help' for the flags and examples.\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if f.listPresets {
		return listPresets(stdout, stderr, f.asJSON)
	}
	pipelines, err := f.pipelines(set)
	if err != nil {
		return usageErr("%v", err)
	}
	stderrMu := &lockedWriter{w: stderr}
	var bar *progressBar
	mode := f.progress
	if mode == "auto" {
		mode = "log"
		if isTerminal(stderr) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar", "log", "none":
	default:
		return usageErr("--progress %q: use auto, bar, log or none", f.progress)
	}
	if mode == "bar" {
		bar = &progressBar{w: stderrMu}
		stderrMu.bar = bar
	}
	logger, err := newLogger(stderrMu, f.logLevel, "text")
	if err != nil {
		return usageErr("%v", err)
	}
	opts := adapters.Options{Logger: logger, DryRun: f.dryRun, SampleSize: f.sample}
	if f.validate {
		reg, err := schemas.NewRegistry(schemas.Options{})
		if err != nil {
			fmt.Fprintf(stderr, "piazza ingest: loading the data models: %v\n", err)
			return exitFailed
		}
		opts.Validate = schemaValidator(reg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := exitOK
	var results []pipelineResult
	for _, p := range pipelines {
		o := opts
		switch mode {
		case "bar":
			o.Progress = bar.update
		case "log": // at info level whatever --log-level says: it was asked for
			o.Progress = logProgress(slog.New(slog.NewTextHandler(stderrMu, nil)), 2*time.Second)
		}
		sum, err := adapters.Run(ctx, p, o)
		if bar != nil {
			bar.finish()
		}
		res := pipelineResult{Summary: sum}
		switch {
		case err == nil:
		case errors.Is(err, adapters.ErrRecordsRejected):
			res.Error = err.Error()
			if code != exitFailed {
				code = exitRejected
			}
		default:
			res.Error, res.failed = err.Error(), true
			code = exitFailed
		}
		results = append(results, res)
		if !f.asJSON {
			printSummary(stdout, res, f.dryRun)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if f.asJSON {
		out := struct {
			OK        bool             `json:"ok"`
			ExitCode  int              `json:"exitCode"`
			Pipelines []pipelineResult `json:"pipelines"`
		}{code == exitOK, code, results}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "piazza ingest: %v\n", err)
			return exitFailed
		}
	}
	return code
}

// pipelines builds the pipelines the flags describe: those of --config, or
// one for --preset with --file or --source. Flags given explicitly are laid
// over the config file's settings.
func (f *ingestFlags) pipelines(set map[string]bool) ([]adapters.PipelineConfig, error) {
	if f.batchSize < 0 {
		return nil, fmt.Errorf("--batch-size must be positive")
	}
	sink := adapters.SinkConfig{URL: strings.TrimRight(f.url, "/"), Tenant: f.tenant, BatchSize: f.batchSize}
	var out []adapters.PipelineConfig
	switch {
	case f.config != "" && (f.preset != "" || f.file != "" || f.source != ""):
		return nil, fmt.Errorf("give either --config or --preset with --file/--source, not both")
	case f.config != "":
		ps, err := adapters.LoadPipelines(f.config)
		if err != nil {
			return nil, err
		}
		if set["reject-file"] && len(ps) > 1 {
			return nil, fmt.Errorf("--reject-file needs a single pipeline; %s has %d (set rejects: per pipeline)", f.config, len(ps))
		}
		for _, p := range ps {
			if set["url"] {
				p.Sink.URL = sink.URL
			}
			if set["tenant"] {
				p.Sink.Tenant = sink.Tenant
			}
			if set["batch-size"] {
				p.Sink.BatchSize = sink.BatchSize
			}
			if set["reject-file"] {
				p.Rejects = f.rejectFile
			}
			if set["allow-rejects"] {
				p.AllowRejects = f.allowRejects
			}
			out = append(out, p)
		}
	case f.preset == "":
		return nil, fmt.Errorf("nothing to ingest: give --preset NAME with --file PATH or --source URL, or --config FILE")
	case f.file != "" && f.source != "":
		return nil, fmt.Errorf("give either --file or --source, not both")
	case f.file == "" && f.source == "":
		return nil, fmt.Errorf("--preset %s needs --file PATH or --source URL", f.preset)
	default:
		var p adapters.PipelineConfig
		var err error
		if f.file != "" {
			p, err = adapters.PresetPipeline(f.preset, f.file, sink)
		} else {
			p, err = adapters.PresetURLPipeline(f.preset, f.source, sink)
		}
		if err != nil {
			return nil, err
		}
		p.Rejects, p.AllowRejects = f.rejectFile, f.allowRejects
		out = append(out, p)
	}
	for name, src := range f.tables {
		cfg, err := adapters.SourceFor(src)
		if err != nil {
			return nil, fmt.Errorf("--table %s: %w", name, err)
		}
		for i := range out {
			if !slices.Contains(out[i].Mapping.TableNames(), name) {
				return nil, fmt.Errorf("--table %s: pipeline %s has no table %q (tables: %s)", name, out[i].Name, name, strings.Join(out[i].Mapping.TableNames(), ", "))
			}
			if out[i].Tables == nil {
				out[i].Tables = map[string]adapters.SourceConfig{}
			}
			out[i].Tables[name] = cfg
		}
	}
	return out, nil
}

// pipelineResult is one pipeline's summary with the error that ended it.
type pipelineResult struct {
	adapters.Summary
	Error string `json:"error,omitempty"`
	// failed is set when the pipeline could not complete (not merely
	// rejected records).
	failed bool
}

func listPresets(stdout, stderr io.Writer, asJSON bool) int {
	ps, err := adapters.Presets()
	if err != nil {
		fmt.Fprintf(stderr, "piazza ingest: %v\n", err)
		return exitFailed
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(ps)
		return exitOK
	}
	width := 0
	for _, p := range ps {
		width = max(width, len(p.Name))
	}
	for _, p := range ps {
		types := strings.Join(p.Types, ", ")
		if types == "" {
			types = "the input's own types"
		}
		fmt.Fprintf(stdout, "%-*s  %s  [%s]\n", width, p.Name, p.Description, types)
	}
	return exitOK
}

// maxPrintedErrors bounds the rejected records listed in a text summary;
// --json lists up to 100, the reject file keeps them all.
const maxPrintedErrors = 20

func printSummary(w io.Writer, r pipelineResult, dryRun bool) {
	s := r.Summary
	verb := "written"
	if dryRun {
		verb = "dry run, nothing written"
	}
	fmt.Fprintf(w, "%s (%s): read %d, skipped %d, mapped %d, written %d, unchanged %d, rejected %d records",
		s.Pipeline, s.Mapping, s.Read, s.Skipped, s.Mapped, s.Written, s.Unchanged, s.Rejected)
	if s.RejectedEntities > 0 {
		fmt.Fprintf(w, " (%d entities)", s.RejectedEntities)
	}
	fmt.Fprintf(w, " in %.1fs, %.0f rows/s", s.Seconds, s.RowsPerSecond)
	if dryRun {
		fmt.Fprintf(w, " [%s]", verb)
	}
	fmt.Fprintln(w)
	for i, e := range s.Errors {
		if i == maxPrintedErrors {
			fmt.Fprintf(w, "  ... and %d more\n", int64(len(s.Errors)-i)+s.MoreErrors)
			break
		}
		fmt.Fprintf(w, "  %s\n", e.String())
	}
	if len(s.Errors) <= maxPrintedErrors && s.MoreErrors > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", s.MoreErrors)
	}
	if s.RejectFile != "" {
		fmt.Fprintf(w, "  rejected records kept in %s\n", s.RejectFile)
	}
	if r.failed {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if dryRun && len(s.Sample) > 0 {
		fmt.Fprintf(w, "  sample (%d of %d entities):\n", len(s.Sample), s.Mapped)
		for _, e := range s.Sample {
			b, err := json.MarshalIndent(e, "    ", "  ")
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "    %s\n", b)
		}
	}
}

// schemaValidator checks each entity's keyValues form against the model of
// its type, when the registry has one; types without a model pass.
func schemaValidator(reg *schemas.Registry) func(adapters.Entity) error {
	return func(e adapters.Entity) error {
		m, ok := reg.Get(e.Type())
		if !ok {
			return nil
		}
		vs, err := m.Validate(e.KeyValues())
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return nil
		}
		msgs := make([]string, 0, min(len(vs), 5))
		for i, v := range vs {
			if i == 5 {
				msgs = append(msgs, fmt.Sprintf("and %d more", len(vs)-i))
				break
			}
			msgs = append(msgs, v.String())
		}
		return fmt.Errorf("not a valid %s: %s", m.Name, strings.Join(msgs, "; "))
	}
}

// isTerminal reports whether w is a character device (a terminal), without
// a dependency: os.ModeCharDevice is set on terminals, not on pipes or files.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// logProgress returns a Progress callback that logs one line at most every
// interval (and the last one): the progress report of a non-terminal.
func logProgress(log *slog.Logger, interval time.Duration) func(adapters.Progress) {
	var last time.Time
	return func(p adapters.Progress) {
		now := time.Now()
		if !p.Done && now.Sub(last) < interval {
			return
		}
		if p.Done && last.IsZero() {
			return // a short run: the summary says it all
		}
		last = now
		args := []any{"pipeline", p.Pipeline, "read", p.Read, "mapped", p.Mapped, "written", p.Written,
			"unchanged", p.Unchanged, "rejected", p.Rejected, "rows_per_s", rate(p.Read, p.Elapsed)}
		if p.TotalBytes > 0 {
			args = append(args, "percent", fmt.Sprintf("%.1f", 100*float64(p.Bytes)/float64(p.TotalBytes)))
		}
		log.Info("ingest progress", args...)
	}
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// progressBar draws one self-overwriting line on a terminal. update runs on
// the pipeline goroutine; log lines from other goroutines go through the
// lockedWriter, which clears the bar before writing and redraws it after.
type progressBar struct {
	w    *lockedWriter
	line string
	last time.Time
}

func (b *progressBar) update(p adapters.Progress) {
	now := time.Now()
	if !p.Done && now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last = now
	var s strings.Builder
	if p.TotalBytes > 0 {
		frac := min(float64(p.Bytes)/float64(p.TotalBytes), 1)
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(&s, "[%s%s] %3.0f%% ", strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*frac)
	}
	fmt.Fprintf(&s, "%s: %d read, %d written, %d unchanged, %d rejected, %d rows/s",
		p.Pipeline, p.Read, p.Written, p.Unchanged, p.Rejected, rate(p.Read, p.Elapsed))
	b.w.setBar(s.String())
}

func (b *progressBar) finish() { b.w.endBar() }

// lockedWriter serialises writes to stderr and keeps a progress bar on the
// last line.
type lockedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressBar
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar != nil && l.bar.line != "" {
		fmt.Fprint(l.w, "\r\033[K")
		defer fmt.Fprint(l.w, l.bar.line)
	}
	return l.w.Write(p)
}

func (l *lockedWriter) setBar(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bar.line = line
	fmt.Fprint(l.w, "\r\033[K"+line)
}

func (l *lockedWriter) endBar() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar.line != "" {
		fmt.Fprintln(l.w)
		l.bar.line = ""
	}
}
