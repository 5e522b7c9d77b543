package broker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedNATS is a nats-server running inside the Piazza process, with
// JetStream on a local directory. It is the default: one binary, no other
// service to install.
type EmbeddedNATS struct {
	srv  *server.Server
	opts *server.Options // the server's own: it writes the ports it picked for -1
}

// EmbeddedOptions configure the embedded nats-server.
type EmbeddedOptions struct {
	// DataDir holds JetStream's files (in DataDir/jetstream).
	DataDir string
	// ClientAddr is the host:port of the NATS client listener for apps;
	// "off" (or "") listens on no port: only Piazza itself connects, in process.
	// Port -1 picks a random free port (tests).
	ClientAddr string
	// ServerName names the server in its logs and cluster (default "piazza").
	ServerName string
	// MQTTAddr is the host:port of nats-server's MQTT 3.1.1 listener, for
	// apps that speak MQTT (mosquitto_sub, IoT dashboards): the topic
	// piazza/<tenant>/<Type>/<id> is the subject piazza.<tenant>.<Type>.<id>.
	// "" or "off" listens on no port; port -1 picks a random free port. MQTT
	// keeps its sessions in JetStream, which the embedded server has.
	MQTTAddr string
	// WebSocketAddr is the host:port of nats-server's WebSocket listener
	// (ws://, no TLS: put a TLS proxy in front for wss://), for NATS clients
	// in browsers; same values as MQTTAddr.
	WebSocketAddr string
	Logger        *slog.Logger
}

// StartEmbeddedNATS starts the server and waits until it accepts connections.
// It fails with a clear error if the data directory is not writable or the
// client address cannot be listened on.
func StartEmbeddedNATS(o EmbeddedOptions) (*EmbeddedNATS, error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("broker: embedded NATS needs a data directory")
	}
	// nats-server keeps its files in <dir>/jetstream.
	dir := o.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("broker: data dir %s is not usable: %w", o.DataDir, err)
	}
	probe := filepath.Join(o.DataDir, ".piazza-write-test")
	if err := os.WriteFile(probe, []byte("ok"), 0o600); err != nil {
		return nil, fmt.Errorf("broker: data dir %s is not writable: %w", o.DataDir, err)
	}
	_ = os.Remove(probe)
	name := o.ServerName
	if name == "" {
		name = "piazza"
	}
	opts := &server.Options{
		ServerName:         name,
		JetStream:          true,
		StoreDir:           dir,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	}
	if o.ClientAddr == "" || o.ClientAddr == "off" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(o.ClientAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: NATS address %q: %w", o.ClientAddr, err)
		}
		opts.Host, opts.Port = host, port
	}
	if o.MQTTAddr != "" && o.MQTTAddr != "off" {
		host, port, err := listenerAddr("MQTT", o.MQTTAddr)
		if err != nil {
			return nil, err
		}
		opts.MQTT.Host, opts.MQTT.Port = host, port
	}
	if o.WebSocketAddr != "" && o.WebSocketAddr != "off" {
		host, port, err := listenerAddr("WebSocket", o.WebSocketAddr)
		if err != nil {
			return nil, err
		}
		opts.Websocket.Host, opts.Websocket.Port = host, port
		opts.Websocket.NoTLS = true
	}
	if opts.MQTT.Port != 0 || opts.Websocket.Port != 0 {
		appsReadOnly(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded NATS: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv.SetLoggerV2(&natsLogger{l: logger.With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		if !opts.DontListen {
			return nil, fmt.Errorf("broker: embedded NATS did not start: cannot listen on %s (in use?)", o.ClientAddr)
		}
		return nil, fmt.Errorf("broker: embedded NATS did not start within 30s")
	}
	return &EmbeddedNATS{srv: srv, opts: opts}, nil
}

// MQTTAddr is the host:port of the MQTT listener ("" when it is off), with
// the port the server picked when it was -1.
func (e *EmbeddedNATS) MQTTAddr() string {
	if e.opts.MQTT.Port == 0 {
		return ""
	}
	return net.JoinHostPort(e.opts.MQTT.Host, strconv.Itoa(e.opts.MQTT.Port))
}

// WebSocketURL is the ws:// URL of the WebSocket listener ("" when it is
// off), for nats.Connect.
func (e *EmbeddedNATS) WebSocketURL() string {
	if e.opts.Websocket.Port == 0 {
		return ""
	}
	return e.srv.WebsocketURL()
}

// Users of the embedded server once the MQTT or WebSocket listener is on.
// Clients of the NATS client listener and Piazza's in-process connection
// present no credentials and are piazzaUser, as before; MQTT and WebSocket
// clients are appUser, who may subscribe to anything and publish anywhere
// but into Piazza's log and KV buckets or to the JetStream API calls that
// change or delete streams, consumers and accounts: an app on these
// listeners reads and replays the log but cannot write or destroy it (see
// README, "Who may publish").
const (
	piazzaUser = "piazza"
	appUser    = "piazza-app"
)

// appPublishDeny are the subjects appUser may not publish to.
var appPublishDeny = []string{
	SubjectPrefix + ".>",
	"$KV.>", "$O.>",
	"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
	"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.SNAPSHOT.>",
	"$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>",
	"$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.PAUSE.>", "$JS.API.CONSUMER.UNPIN.>",
	"$JS.API.CONSUMER.LEADER.>", "$JS.API.ACCOUNT.PURGE.>", "$JS.API.META.>", "$JS.API.SERVER.>",
}

// appsReadOnly gives MQTT and WebSocket clients appUser's permissions.
func appsReadOnly(opts *server.Options) {
	secret := func() string {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) // nobody logs in as these users: they are assigned
	}
	opts.Users = []*server.User{
		{Username: piazzaUser, Password: secret()},
		{Username: appUser, Password: secret(), Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: appPublishDeny},
		}},
	}
	opts.NoAuthUser = piazzaUser
	opts.MQTT.NoAuthUser = appUser
	opts.Websocket.NoAuthUser = appUser
}

// listenerAddr parses the address of the MQTT or WebSocket listener and
// checks it can be listened on now: nats-server would only log the failure
// and leave the start waiting.
func listenerAddr(what, addr string) (string, int, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker: %s address %q: %w", what, addr, err)
	}
	if port > 0 {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", 0, fmt.Errorf("broker: cannot listen for %s on %s: %w", what, addr, err)
		}
		_ = l.Close()
	}
	return host, port, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// ClientURL is the nats:// URL apps use, or "" when there is no listener.
func (e *EmbeddedNATS) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Server returns the nats-server, for in-process connections.
func (e *EmbeddedNATS) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it to finish.
func (e *EmbeddedNATS) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// natsLogger sends nats-server's log lines to slog.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(f string, v ...any) {
	n.l.Info("nats-server", "text", fmt.Sprintf(f, v...))
}
func (n *natsLogger) Warnf(f string, v ...any) { n.l.Warn("nats-server", "text", fmt.Sprintf(f, v...)) }
func (n *natsLogger) Fatalf(f string, v ...any) {
	n.l.Error("nats-server", "text", fmt.Sprintf(f, v...))
}
func (n *natsLogger) Errorf(f string, v ...any) {
	n.l.Error("nats-server", "text", fmt.Sprintf(f, v...))
}
func (n *natsLogger) Debugf(f string, v ...any) {
	n.l.Debug("nats-server", "text", fmt.Sprintf(f, v...))
}
func (n *natsLogger) Tracef(f string, v ...any) {}
