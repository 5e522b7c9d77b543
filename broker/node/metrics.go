package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/promnames"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The node owns the one Prometheus registry of the process: no component
// uses the global one. It holds the Go runtime and process collectors,
// piazza_build_info, and what each component registers through the
// prometheus.Registerer in its options.

// newRegistry builds the node's registry with its own collectors.
func newRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	registerNode(reg, version)
	return reg
}

func registerNode(reg prometheus.Registerer, version string) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(version),
	)
}

// buildInfo is piazza_build_info{version,revision,goversion} 1.
func buildInfo(version string) prometheus.Collector {
	if version == "" {
		version = "dev"
	}
	revision := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "piazza_build_info",
		Help:        "Always 1; its labels name the running build of Piazza.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// MetricNames lists every metric name a Piazza node can export, sorted:
// the node's own (build info, Go runtime, process, pipelines), the
// broker's and its notifier's, and the HTTP API's, including vectors that
// have no series yet.
// Dashboards and alert rules are checked against it.
func MetricNames() []string {
	r := promnames.NewRecorder()
	registerNode(r, "")
	_, _ = newPipelineMetrics(r)
	names := r.Names()
	names = append(names, broker.MetricNames()...)
	names = append(names, api.MetricNames()...)
	slices.Sort(names)
	return slices.Compact(names)
}

// Registry is the node's Prometheus registry; embedders may add their own
// collectors to it.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// MetricsHandler serves the node's metrics in the Prometheus text and
// OpenMetrics formats.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{
		ErrorLog:          promLogger{n},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})
}

type promLogger struct{ n *Node }

func (l promLogger) Println(v ...any) { l.n.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// Node states, for /readyz.
const (
	stateStarting int32 = iota
	stateServing
	stateDraining
)

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// ready is the node's readiness: not while starting or draining, then the
// broker's (NATS connected, streams answering, read models caught up).
func (n *Node) ready() error {
	switch n.state.Load() {
	case stateStarting:
		return errStarting
	case stateDraining:
		return errDraining
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return n.b.CheckReady(ctx)
}

// Errors of readiness.
var (
	errStarting = errors.New("node: starting")
	errDraining = errors.New("node: draining")
)

// startMetrics opens the metrics listener: /metrics, /healthz and /readyz.
// It answers from the start, so that probes see the node starting.
func (n *Node) startMetrics() error {
	if n.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics on %s: %w", n.cfg.MetricsAddr, err)
	}
	n.metricsLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.MetricsHandler())
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { readyz(w, n.ready()) })
	n.metricsSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 16,
		ErrorLog:          n.httpErrorLog("metrics"),
	}
	go func() { _ = n.metricsSrv.Serve(ln) }()
	n.log.Info("serving metrics and probes", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr is the address of the metrics listener ("" if none).
func (n *Node) MetricsAddr() string {
	if n.metricsLn == nil {
		return ""
	}
	return n.metricsLn.Addr().String()
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func readyz(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}
