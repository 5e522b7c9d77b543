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
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
)

// Config configures a node. The zero value of each field means its default.
type Config struct {
	// HTTPAddr is the NGSI-LD API's listen address. Default ":1026".
	HTTPAddr string
	// DataDir holds the embedded NATS JetStream files. Default "./data".
	DataDir string
	// NATSAddr is the embedded nats-server's client listener for apps.
	// Default "127.0.0.1:4222"; "off" listens on no port.
	NATSAddr string
	// NATSURL connects to an existing NATS (cluster) instead of embedding one.
	NATSURL string
	// Replicas of each tenant's stream. Default 1 (3 on a cluster is usual).
	Replicas int
	// History is how many states per entity the log keeps; 0 keeps all.
	History int64
	// MaxBodyBytes caps request bodies. Default 8 MiB.
	MaxBodyBytes int64
	// ContextFiles serves @context URLs from local files (offline sites).
	ContextFiles map[string]string
	// ContextTimeout bounds the fetch of a remote @context. Default 5s.
	ContextTimeout time.Duration
	// ContextsOffline never fetches a @context over the network: only the
	// built-in ones and ContextFiles resolve (air-gapped sites).
	ContextsOffline bool
	// ShutdownGrace bounds the drain of in-flight requests. Default 10s.
	ShutdownGrace time.Duration
	// AccessLog logs every HTTP request at Info.
	AccessLog bool
	// SchemasDir holds the operator's own Smart Data Models schemas.
	SchemasDir string
	// Validation is the validation policy; the zero value enforces every
	// model on every type that has one and allows other types.
	Validation broker.ValidationConfig
	// Version is reported by /version.
	Version string
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":1026"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.NATSAddr == "" {
		c.NATSAddr = "127.0.0.1:4222"
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

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
}

// Start starts a node and returns when it serves. A failure at start (data
// dir not writable, port in use, NATS unreachable) is returned as one clear
// error, with everything started so far stopped again.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.defaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "node"), done: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if cfg.NATSURL != "" {
		n.nc, err = nats.Connect(cfg.NATSURL,
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
		)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to NATS at %s: %w", cfg.NATSURL, err)
		}
		n.log.Info("connected to NATS", "url", n.nc.ConnectedUrlRedacted())
	} else {
		n.ns, err = broker.StartEmbeddedNATS(broker.EmbeddedOptions{
			DataDir: cfg.DataDir, ClientAddr: cfg.NATSAddr, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		n.nc, err = nats.Connect("", nats.InProcessServer(n.ns.Server()), nats.Name("piazza"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connecting to the embedded NATS: %w", err)
		}
		n.log.Info("embedded NATS started", "data_dir", cfg.DataDir, "client_url", n.ns.ClientURL())
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
	n.handler = api.New(n.b, api.Options{
		MaxBodyBytes: cfg.MaxBodyBytes, Contexts: loader, Version: cfg.Version, Logger: cfg.Logger,
		AccessLog: cfg.AccessLog, Schemas: reg,
	})
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	n.srv = &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	go func() {
		err := n.srv.Serve(n.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		n.done <- err
	}()
	n.log.Info("serving the NGSI-LD API", "addr", n.ln.Addr().String())
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

// Handler is the node's HTTP handler.
func (n *Node) Handler() http.Handler { return n.handler }

// Broker is the node's broker.
func (n *Node) Broker() *broker.Broker { return n.b }

// Done delivers the HTTP server's error if it stops on its own.
func (n *Node) Done() <-chan error { return n.done }

// Shutdown stops accepting requests, drains those in flight within the
// grace period, then stops the broker and NATS.
func (n *Node) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownGrace)
	defer cancel()
	var err error
	if n.srv != nil {
		err = n.srv.Shutdown(ctx)
	}
	n.close()
	return err
}

func (n *Node) close() {
	if n.srv == nil && n.ln != nil {
		_ = n.ln.Close()
	}
	if n.b != nil {
		n.b.Close()
	}
	if n.nc != nil {
		_ = n.nc.Drain()
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
	}
}
