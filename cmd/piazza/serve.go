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

	"github.com/piazza-city/piazza/broker/node"
)

// serve runs 'piazza serve': it loads the configuration (config.go), starts
// a node, and on SIGTERM or SIGINT stops it within the grace period. A
// second signal during the stop kills the process at once.
func serve(args []string, stdout, stderr io.Writer) int {
	cfg, opts, err := loadConfig(args, os.LookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 2
	}
	if opts.checkConfig {
		if err := printConfig(stdout, cfg); err != nil {
			fmt.Fprintf(stderr, "piazza: %v\n", err)
			return 1
		}
		return 0
	}
	logger, err := newLogger(stderr, cfg.Logging.Level, cfg.Logging.Format)
	if err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 2
	}
	if opts.configFile != "" {
		logger.Info("config loaded", "file", opts.configFile)
	}
	for _, name := range unknownEnv(os.Environ()) {
		logger.Warn("PIAZZA_ variable not known to piazza serve; ignored (a typo?)", "name", name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc := cfg.nodeConfig()
	nc.Version, nc.Logger = version, logger
	n, err := node.Start(ctx, nc)
	if err != nil && ctx.Err() != nil {
		// A stop asked for while starting (a rolling update) is a stop.
		logger.Info("stopped while starting", "err", err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "piazza: %v\n", err)
		return 1
	}
	select {
	case <-ctx.Done():
		stop() // a second signal now kills the process
		logger.Info("shutting down", "grace", cfg.Shutdown.Grace)
	case err := <-n.Done():
		if err != nil {
			logger.Error("HTTP server stopped", "err", err)
		}
	}
	start := time.Now()
	if err := n.Shutdown(context.Background()); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
		return 1
	}
	logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return 0
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
