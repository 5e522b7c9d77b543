package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/node"
)

// serveFlags are the flags of 'piazza serve'. Each has a PIAZZA_* variable;
// precedence is default < environment < flag.
type serveFlags struct {
	httpAddr, dataDir, natsAddr, natsURL string
	replicas                             int
	history                              int64
	logLevel, logFormat                  string
	contextFiles                         string
	contextsOffline                      bool
	shutdownGrace                        time.Duration
	accessLog                            bool
	schemasDir, validation, unknownTypes string
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	fs.StringVar(&f.httpAddr, "http-addr", ":1026", "listen address of the NGSI-LD HTTP API (PIAZZA_HTTP_ADDR)")
	fs.StringVar(&f.dataDir, "data-dir", "./data", "directory of the embedded NATS JetStream files (PIAZZA_DATA_DIR)")
	fs.StringVar(&f.natsAddr, "nats-addr", "127.0.0.1:4222", "client listener of the embedded NATS for apps; 'off' for none (PIAZZA_NATS_ADDR)")
	fs.StringVar(&f.natsURL, "nats-url", "", "use an existing NATS (cluster) at this URL instead of the embedded one (PIAZZA_NATS_URL)")
	fs.IntVar(&f.replicas, "replicas", 1, "replicas of each tenant's stream: 1 on one server, 3 on a cluster (PIAZZA_REPLICAS)")
	fs.Int64Var(&f.history, "history", 0, "states kept per entity in the log; 0 keeps all (PIAZZA_HISTORY)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (PIAZZA_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json (PIAZZA_LOG_FORMAT)")
	fs.StringVar(&f.contextFiles, "context-files", "", "serve @context URLs from files offline: URL=PATH,URL=PATH (PIAZZA_CONTEXT_FILES)")
	fs.StringVar(&f.schemasDir, "schemas-dir", "", "directory of the city's own Smart Data Models schemas, <Type>.json (PIAZZA_SCHEMAS_DIR)")
	fs.StringVar(&f.validation, "validation", "enforce", "policy for entities that fail their data model: enforce, warn, quarantine or off (PIAZZA_VALIDATION)")
	fs.StringVar(&f.unknownTypes, "unknown-types", "allow", "entity types without a data model: allow or reject (PIAZZA_UNKNOWN_TYPES)")
	fs.BoolVar(&f.accessLog, "access-log", false, "log every HTTP request at info level (PIAZZA_ACCESS_LOG)")
	fs.BoolVar(&f.contextsOffline, "contexts-offline", false, "never fetch a @context over the network: only built-in ones and --context-files (PIAZZA_CONTEXTS_OFFLINE)")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "time to drain in-flight requests on SIGTERM (PIAZZA_SHUTDOWN_GRACE)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: piazza serve [flags]\n\nRuns Piazza: an embedded NATS server with JetStream in --data-dir, the NGSI-LD API on --http-addr.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "piazza: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 2
	}
	files, err := parseContextFiles(f.contextFiles)
	if err != nil {
		fmt.Fprintf(stderr, "piazza: --context-files: %v\n", err)
		return 2
	}
	validation := broker.ValidationConfig{PolicySet: broker.PolicySet{Default: broker.Policy(f.validation), Unknown: f.unknownTypes}}
	if err := validation.Check(); err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, node.Config{
		HTTPAddr: f.httpAddr, DataDir: f.dataDir, NATSAddr: f.natsAddr, NATSURL: f.natsURL,
		Replicas: f.replicas, History: f.history, ContextFiles: files, ContextsOffline: f.contextsOffline,
		ShutdownGrace: f.shutdownGrace, Version: version, Logger: logger, AccessLog: f.accessLog,
		SchemasDir: f.schemasDir, Validation: validation,
	})
	if err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 1
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", f.shutdownGrace)
	case err := <-n.Done():
		if err != nil {
			logger.Error("HTTP server stopped", "err", err)
		}
	}
	if err := n.Shutdown(context.Background()); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// applyEnv sets flags from PIAZZA_* variables (the flag name upper-cased,
// dashes as underscores); flags given on the command line win.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(fl *flag.Flag) {
		name := "PIAZZA_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := lookup(name); ok && err == nil {
			if e := fl.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", name, v, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

func parseContextFiles(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		u, p, ok := strings.Cut(pair, "=")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("%q is not URL=PATH", pair)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %v", u, err)
		}
		out[u] = p
	}
	return out, nil
}
