package node

import (
	"log/slog"
	"time"

	"github.com/piazza-city/piazza/broker"
)

// Config configures a node. The zero value of each field means its
// default; piazza serve fills it from its config file, PIAZZA_* variables
// and flags (cmd/piazza/config.go), whose keys name these fields.
type Config struct {
	// HTTPAddr is the NGSI-LD API's listen address. Default ":1026".
	HTTPAddr string
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// the API's connections (http.Server). Defaults 10s, 60s, 60s, 120s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers. Default 1 MiB.
	MaxHeaderBytes int
	// MetricsAddr is the listen address of /metrics, /healthz and /readyz
	// for Prometheus and probes; "" or "off" opens no listener (piazza
	// serve defaults to ":9126"). The listener answers from the start of
	// Start, so that probes see "starting" while the read models load.
	MetricsAddr string
	// DataDir holds the embedded NATS JetStream files. Default "./data".
	DataDir string
	// NATSAddr is the embedded nats-server's client listener for apps.
	// Default "127.0.0.1:4222"; "off" listens on no port.
	NATSAddr string
	// MQTTAddr is the embedded nats-server's MQTT 3.1.1 listener for apps
	// (topic piazza/<tenant>/<Type>/<id>, see the README). Default off ("" or
	// "off"): Debian's mosquitto often holds 1883 already; 127.0.0.1:1883 is
	// the usual choice. Only with the embedded server.
	MQTTAddr string
	// WebSocketAddr is the embedded nats-server's WebSocket listener (ws://)
	// for NATS clients in browsers. Default off; 127.0.0.1:8080 is usual.
	// Only with the embedded server.
	WebSocketAddr string
	// NATSURL connects to an existing NATS (cluster) instead of embedding one.
	NATSURL string
	// NATSCredentials is a NATS credentials file (JWT and NKey seed) for NATSURL.
	NATSCredentials string
	// NATSToken is a NATS authentication token for NATSURL.
	NATSToken string
	// NATSUser and NATSPassword authenticate to NATSURL by user and password.
	NATSUser, NATSPassword string
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
	// ShutdownGrace bounds the whole shutdown: the delay, the drain of
	// in-flight requests, and the stop of every component. Default 10s.
	ShutdownGrace time.Duration
	// ShutdownDelay is how long /readyz answers 503 before the API stops
	// accepting connections, so that load balancers take the node out
	// first. Default 0; part of ShutdownGrace.
	ShutdownDelay time.Duration
	// AccessLog logs every HTTP request at Info.
	AccessLog bool
	// SchemasDir holds the operator's own Smart Data Models schemas.
	SchemasDir string
	// Pipelines are pipeline files (the format of piazza ingest --config)
	// whose pipelines the node runs in process, on their schedules
	// (pipelines.go). They are loaded and checked before anything starts.
	Pipelines []string
	// Validation is the validation policy; the zero value enforces every
	// model on every type that has one and allows other types.
	Validation broker.ValidationConfig
	// NotificationHosts, if not empty, are the only hosts NGSI-LD
	// subscriptions may send notifications to: host names, "*.domain"
	// wildcards, IP addresses or CIDR networks ("10.0.0.0/8"). A
	// subscription aimed elsewhere is refused with 400. Empty allows every host.
	NotificationHosts []string
	// NotificationMaxAttempts is how many times a notification is tried
	// before it goes to the dead letters. Default 5.
	NotificationMaxAttempts int
	// NotificationTimeout bounds one delivery attempt when the
	// subscription's endpoint names no timeout. Default 10s.
	NotificationTimeout time.Duration
	// NotificationRetryBackoff is the first wait after a failed attempt,
	// doubled at each further failure up to a minute. Default 1s.
	NotificationRetryBackoff time.Duration
	// Version is reported by /version and piazza_build_info.
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
	if c.MetricsAddr == "off" {
		c.MetricsAddr = ""
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{{&c.ReadHeaderTimeout, 10 * time.Second}, {&c.ReadTimeout, 60 * time.Second}, {&c.WriteTimeout, 60 * time.Second}, {&c.IdleTimeout, 120 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.def
		}
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
