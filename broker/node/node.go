// Package node assembles a Piazza node: the NATS connection (an embedded
// nats-server by default, or an existing NATS cluster), the broker and its
// read models, and the HTTP API server. They start together and stop
// together; cmd/piazza is a thin shell around it, and tests start whole
// nodes in process.
package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
	"github.com/prometheus/client_golang/prometheus"
)

// Node is a running Piazza node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	ns      *broker.EmbeddedNATS
	nc      *nats.Conn
	b       *broker.Broker
	ln      net.Listener
	srv     *http.Server
	handler http.Handler
	done    chan error

	reg        *prometheus.Registry
	state      atomic.Int32 // stateStarting, stateServing, stateDraining
	metricsLn  net.Listener
	metricsSrv *http.Server
	stopOnce   sync.Once
	stopErr    error

	notifier     *broker.Notifier
	notifierStop context.CancelFunc
	notifierDone chan struct{}

	pipes *pipelineSet // nil: none configured
}

// Start starts a node and returns when it serves. A failure at start (data
// dir not writable, port in use, NATS unreachable) is returned as one clear
// error, with everything started so far stopped again.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.defaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "node"), done: make(chan error, 1), reg: newRegistry(cfg.Version)}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	pipelines, err := LoadPipelineFiles(cfg.Pipelines)
	if err != nil {
		return nil, err
	}
	if err := n.startMetrics(); err != nil {
		return nil, err
	}
	if cfg.NATSURL != "" && (listenerOn(cfg.MQTTAddr) || listenerOn(cfg.WebSocketAddr)) {
		return nil, errors.New("the MQTT and WebSocket listeners belong to the embedded NATS: with --nats-url, enable them on the NATS cluster")
	}
	if cfg.NATSURL != "" {
		n.nc, err = nats.Connect(cfg.NATSURL, append(natsAuth(cfg),
			nats.Name("piazza"),
			nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(false),
			nats.Timeout(5*time.Second),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				n.log.Warn("NATS disconnected", "err", err)
			}),
			nats.ReconnectHandler(func(c *nats.Conn) {
				n.log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted())
			}),
		)...)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to NATS at %s: %w", cfg.NATSURL, err)
		}
		n.log.Info("connected to NATS", "url", n.nc.ConnectedUrlRedacted())
	} else {
		n.ns, err = broker.StartEmbeddedNATS(broker.EmbeddedOptions{
			DataDir: cfg.DataDir, ClientAddr: cfg.NATSAddr, Logger: cfg.Logger,
			MQTTAddr: cfg.MQTTAddr, WebSocketAddr: cfg.WebSocketAddr,
		})
		if err != nil {
			return nil, err
		}
		n.nc, err = nats.Connect("", nats.InProcessServer(n.ns.Server()), nats.Name("piazza"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connecting to the embedded NATS: %w", err)
		}
		n.log.Info("embedded NATS started", "data_dir", cfg.DataDir, "client_url", n.ns.ClientURL(),
			"mqtt_addr", n.ns.MQTTAddr(), "websocket_url", n.ns.WebSocketURL())
	}
	reg, err := schemas.NewRegistry(schemas.Options{Dir: cfg.SchemasDir, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	validator, err := broker.NewValidator(reg, cfg.Validation)
	if err != nil {
		return nil, err
	}
	n.b, err = broker.New(ctx, broker.Options{
		Conn: n.nc, Replicas: cfg.Replicas, History: cfg.History, Logger: cfg.Logger, Validator: validator,
		Metrics: n.reg,
	})
	if err != nil {
		return nil, err
	}
	// Smart Data Models contexts are built in, so that their types expand
	// to the models' IRIs without a network.
	loader := jsonld.NewLoader(jsonld.LoaderOptions{
		Files: cfg.ContextFiles, Timeout: cfg.ContextTimeout, Logger: cfg.Logger, Builtin: schemas.Contexts(),
		Offline: cfg.ContextsOffline,
	})
	subs := broker.NewSubscriptionStore(n.b, broker.SubscriptionStoreOptions{Logger: cfg.Logger})
	h := api.New(n.b, api.Options{
		MaxBodyBytes: cfg.MaxBodyBytes, Contexts: loader, Version: cfg.Version, Logger: cfg.Logger,
		AccessLog: cfg.AccessLog, Schemas: reg, Metrics: n.reg, Ready: n.ready,
		Subscriptions: subs, NotificationHosts: cfg.NotificationHosts,
	})
	n.handler = h
	if err := n.startNotifier(subs, h.NotificationRenderer()); err != nil {
		return nil, err
	}
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	n.srv = &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          n.httpErrorLog("http"),
	}
	go func() {
		err := n.srv.Serve(n.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		n.done <- err
	}()
	n.state.Store(stateServing)
	n.log.Info("serving the NGSI-LD API", "addr", n.ln.Addr().String())
	if n.pipes, err = startPipelines(context.Background(), pipelines, n.handler, n.reg, cfg.Logger); err != nil {
		return nil, err
	}
	return n, nil
}

// HTTPAddr is the address the API listens on (useful with port 0).
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// NATSURL is the URL apps use to reach the node's NATS ("" if none is listening).
func (n *Node) NATSURL() string {
	if n.ns != nil {
		return n.ns.ClientURL()
	}
	return n.cfg.NATSURL
}

// MQTTAddr is the host:port of the embedded NATS's MQTT listener ("" if off).
func (n *Node) MQTTAddr() string {
	if n.ns != nil {
		return n.ns.MQTTAddr()
	}
	return ""
}

// WebSocketURL is the ws:// URL of the embedded NATS's WebSocket listener
// ("" if off).
func (n *Node) WebSocketURL() string {
	if n.ns != nil {
		return n.ns.WebSocketURL()
	}
	return ""
}

func listenerOn(addr string) bool { return addr != "" && addr != "off" }

// Handler is the node's HTTP handler.
func (n *Node) Handler() http.Handler { return n.handler }

// Broker is the node's broker.
func (n *Node) Broker() *broker.Broker { return n.b }

// Done delivers the HTTP server's error if it stops on its own.
func (n *Node) Done() <-chan error { return n.done }

// Shutdown stops the node within the grace period (Config.ShutdownGrace),
// losing nothing acknowledged: /readyz turns 503 at once; after
// ShutdownDelay the API stops accepting connections and the requests in
// flight run to their end (their writes are committed and answered); then
// the broker's read models, the NATS connection and the embedded server
// stop, and the metrics listener last. Requests still running when the
// grace ends are cut, and Shutdown returns the context's error. Later
// calls return the first call's result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.shutdown(ctx) })
	return n.stopErr
}

func (n *Node) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownGrace)
	defer cancel()
	n.state.Store(stateDraining)
	start := time.Now()
	n.log.Info("draining", "delay", n.cfg.ShutdownDelay, "grace", n.cfg.ShutdownGrace)
	if d := n.cfg.ShutdownDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if n.pipes != nil {
		// Before the API closes: a batch on its way finishes or fails
		// whole, and the next start reads the sources again.
		n.pipes.stop(ctx)
	}
	var err error
	if n.srv != nil {
		if err = n.srv.Shutdown(ctx); err != nil {
			_ = n.srv.Close()
			err = fmt.Errorf("requests still in flight after the grace period of %v were cut: %w", n.cfg.ShutdownGrace, err)
		}
	}
	n.log.Info("requests drained", "took", time.Since(start).Round(time.Millisecond))
	n.close()
	return err
}

func (n *Node) close() {
	if n.pipes != nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownGrace)
		n.pipes.stop(ctx)
		cancel()
	}
	if n.srv == nil && n.ln != nil {
		_ = n.ln.Close()
	}
	n.stopNotifier()
	if n.b != nil {
		n.b.Close()
	}
	if n.nc != nil {
		// Writes were acknowledged before their requests ended; flush what
		// else is buffered (read-model consumer acks) and close.
		_ = n.nc.FlushTimeout(time.Second)
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
	}
	if n.metricsSrv != nil {
		_ = n.metricsSrv.Close()
	} else if n.metricsLn != nil {
		_ = n.metricsLn.Close()
	}
}

// natsAuth is the authentication options for an external NATS.
func natsAuth(cfg Config) []nats.Option {
	var o []nats.Option
	if cfg.NATSCredentials != "" {
		o = append(o, nats.UserCredentials(cfg.NATSCredentials))
	}
	if cfg.NATSToken != "" {
		o = append(o, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSUser != "" {
		o = append(o, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	return o
}

func (n *Node) httpErrorLog(component string) *log.Logger {
	return slog.NewLogLogger(n.cfg.Logger.With("component", component).Handler(), slog.LevelWarn)
}

// startNotifier runs the notifier of NGSI-LD subscriptions beside the API
// until the node stops; it takes the lead of the cluster's notifiers when
// none holds it.
func (n *Node) startNotifier(subs *broker.SubscriptionStore, r broker.NotificationRenderer) error {
	var err error
	n.notifier, err = broker.NewNotifier(n.b, broker.NotifierOptions{
		Store: subs, Renderer: r, Registerer: n.reg, Logger: n.cfg.Logger, AllowedHosts: n.cfg.NotificationHosts,
		MaxAttempts: n.cfg.NotificationMaxAttempts, Timeout: n.cfg.NotificationTimeout, RetryBackoff: n.cfg.NotificationRetryBackoff,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.notifierStop, n.notifierDone = cancel, make(chan struct{})
	go func() {
		defer close(n.notifierDone)
		if err := n.notifier.Run(ctx); err != nil {
			n.log.Error("notifier stopped: no notifications from this node", "err", err)
		}
	}()
	return nil
}

// stopNotifier stops the notifier (giving up the lead) before NATS closes.
func (n *Node) stopNotifier() {
	if n.notifierStop == nil {
		return
	}
	n.notifierStop()
	select {
	case <-n.notifierDone:
	case <-time.After(5 * time.Second):
		n.log.Warn("notifier did not stop within 5s")
	}
}
