package broker

// The MQTT publisher: a small MQTT 3.1.1 client that only publishes. It sends
// NGSI-LD notifications to mqtt:// and mqtts:// endpoints: the embedded
// nats-server's MQTT listener or any external broker (Debian's mosquitto).
//
// Why our own client and not a library: publishing is five packet types
// (CONNECT/CONNACK, PUBLISH, PUBACK, PUBREC/PUBREL/PUBCOMP, PINGREQ/PINGRESP),
// and owning them gives what the notifier needs and the libraries make awkward:
// every step bounded by the caller's context, clear sentinel errors, no
// background retry queue that could hold a notification the notifier believes
// failed, and no goroutine left behind after Close. See DEPENDENCIES.md.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Errors of the MQTT publisher. They live here rather than in errors.go
// because they belong to this client alone; errors.go holds the errors the
// NGSI-LD API maps to problem types.
var (
	// ErrMQTTURL means the target is not a usable mqtt:// or mqtts:// URL:
	// another scheme, no host, a bad port, no topic, or a topic MQTT forbids
	// in a PUBLISH (wildcards '+' and '#', NUL, invalid UTF-8).
	ErrMQTTURL = errors.New("broker: bad MQTT URL")
	// ErrMQTTQoS means a QoS other than 0, 1 or 2.
	ErrMQTTQoS = errors.New("broker: MQTT QoS must be 0, 1 or 2")
	// ErrMQTTPayloadTooLarge means the payload does not fit in one MQTT packet.
	ErrMQTTPayloadTooLarge = errors.New("broker: MQTT payload too large")
	// ErrMQTTUnreachable means the TCP or TLS connection to the MQTT broker
	// could not be made.
	ErrMQTTUnreachable = errors.New("broker: MQTT broker unreachable")
	// ErrMQTTRefused means the MQTT broker answered CONNECT with a refusal
	// (bad user name or password, not authorised, unavailable...).
	ErrMQTTRefused = errors.New("broker: MQTT broker refused the connection")
	// ErrMQTTConnLost means the connection broke (or the broker broke the
	// protocol) before the publish was acknowledged; a QoS 1 or 2 message may
	// or may not have arrived.
	ErrMQTTConnLost = errors.New("broker: MQTT connection lost")
	// ErrMQTTClosed means the publisher was closed.
	ErrMQTTClosed = errors.New("broker: MQTT publisher closed")
)

// MQTT 3.1.1 packet types (the high nibble of the first byte).
const (
	mqttConnect  = 1
	mqttConnack  = 2
	mqttPublish  = 3
	mqttPuback   = 4
	mqttPubrec   = 5
	mqttPubrel   = 6
	mqttPubcomp  = 7
	mqttPingreq  = 12
	mqttPingresp = 13
	mqttDisconn  = 14

	mqttMaxRemaining = 268_435_455 // the largest remaining length MQTT can encode
)

// MQTTOption tunes an MQTTPublisher.
type MQTTOption func(*mqttOptions)

type mqttOptions struct {
	tls            *tls.Config
	connectTimeout time.Duration
	writeTimeout   time.Duration
	keepAlive      time.Duration
	idleTimeout    time.Duration
}

// MQTTTLSConfig sets the TLS configuration of mqtts:// connections (extra
// root CAs, client certificates). By default the system roots verify the
// broker, whose host name is taken from the URL.
func MQTTTLSConfig(c *tls.Config) MQTTOption { return func(o *mqttOptions) { o.tls = c } }

// MQTTConnectTimeout bounds the TCP, TLS and CONNECT handshakes of one
// connection (default 10s); a Publish with a shorter context gives up sooner.
func MQTTConnectTimeout(d time.Duration) MQTTOption {
	return func(o *mqttOptions) { o.connectTimeout = d }
}

// MQTTKeepAlive sets the MQTT keep-alive of connections (default 30s): a
// PINGREQ every half of it, and a broker silent for 1.5 times it is dropped.
func MQTTKeepAlive(d time.Duration) MQTTOption { return func(o *mqttOptions) { o.keepAlive = d } }

// MQTTIdleTimeout closes a pooled connection unused for this long (default 5m).
func MQTTIdleTimeout(d time.Duration) MQTTOption {
	return func(o *mqttOptions) { o.idleTimeout = d }
}

// MQTTPublisher publishes messages to MQTT 3.1.1 brokers named by URLs. It
// keeps one connection per broker (scheme, host, port and credentials),
// opened on first use, kept alive with pings, closed when idle, and opened
// again after a failure. It is safe for concurrent use; Close releases every
// connection and goroutine.
type MQTTPublisher struct {
	log    *slog.Logger
	opts   mqttOptions
	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[string]*mqttSlot
	wg     sync.WaitGroup
}

// mqttSlot is the pool's entry for one broker: a connection being made (ready
// open) or made (conn or err set, ready closed).
type mqttSlot struct {
	ready chan struct{}
	conn  *mqttConn
	err   error
}

// NewMQTTPublisher returns a publisher with no connection yet. The logger may
// be nil.
func NewMQTTPublisher(logger *slog.Logger, opts ...MQTTOption) *MQTTPublisher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := mqttOptions{
		connectTimeout: 10 * time.Second,
		writeTimeout:   10 * time.Second,
		keepAlive:      30 * time.Second,
		idleTimeout:    5 * time.Minute,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.keepAlive < time.Second {
		o.keepAlive = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &MQTTPublisher{
		log: logger.With("component", "mqtt"), opts: o, ctx: ctx, cancel: cancel,
		conns: map[string]*mqttSlot{},
	}
}

// mqttTarget is a parsed mqtt:// URL.
type mqttTarget struct {
	key      string // pool key: one connection per broker and credentials
	addr     string // host:port
	host     string
	tls      bool
	user     string
	pass     string
	hasUser  bool
	hasPass  bool
	topic    string
	redacted string // scheme://host:port, for errors and logs (never the password)
}

// ValidateMQTTURL checks that u is a target Publish accepts:
// mqtt://[user[:password]@]host[:port]/topic or mqtts://..., the topic being
// the path without its leading slash (percent-escapes decoded). The default
// ports are 1883 (mqtt) and 8883 (mqtts). The error wraps ErrMQTTURL and says
// what is wrong.
func ValidateMQTTURL(u *url.URL) error {
	_, err := parseMQTTTarget(u)
	return err
}

func parseMQTTTarget(u *url.URL) (mqttTarget, error) {
	var t mqttTarget
	if u == nil {
		return t, fmt.Errorf("%w: no URL", ErrMQTTURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtt":
	case "mqtts":
		t.tls = true
	default:
		return t, fmt.Errorf("%w: scheme %q is not mqtt or mqtts", ErrMQTTURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return t, fmt.Errorf("%w: no host (want %s://host:port/topic)", ErrMQTTURL, strings.ToLower(u.Scheme))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return t, fmt.Errorf("%w: a query or fragment is not supported (QoS goes in notifierInfo)", ErrMQTTURL)
	}
	t.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "1883"
		if t.tls {
			port = "8883"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return t, fmt.Errorf("%w: bad port %q", ErrMQTTURL, port)
	}
	t.addr = net.JoinHostPort(t.host, port)
	if u.User != nil {
		t.user, t.hasUser = u.User.Username(), true
		t.pass, t.hasPass = u.User.Password()
		if t.user == "" && t.hasPass {
			return t, fmt.Errorf("%w: a password needs a user name in MQTT 3.1.1", ErrMQTTURL)
		}
		if t.user == "" {
			t.hasUser = false
		}
	}
	t.topic = strings.TrimPrefix(u.Path, "/")
	if err := checkMQTTTopic(t.topic); err != nil {
		return t, err
	}
	scheme := "mqtt"
	if t.tls {
		scheme = "mqtts"
	}
	t.redacted = scheme + "://" + t.addr
	t.key = scheme + "\x00" + t.addr + "\x00" + t.user + "\x00" + t.pass
	return t, nil
}

func checkMQTTTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("%w: no topic (the URL path is the topic)", ErrMQTTURL)
	case len(topic) > 65535:
		return fmt.Errorf("%w: topic longer than 65535 bytes", ErrMQTTURL)
	case !utf8.ValidString(topic):
		return fmt.Errorf("%w: topic is not valid UTF-8", ErrMQTTURL)
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("%w: topic %q contains a wildcard or NUL", ErrMQTTURL, topic)
	}
	return nil
}

// Publish sends payload to the topic of target with the given QoS and returns
// when it is sent (QoS 0), acknowledged with PUBACK (QoS 1) or completed with
// PUBCOMP (QoS 2). ctx bounds everything, including the connection to the
// broker; a cancelled context returns at once with an error wrapping
// ctx.Err(). A connection that breaks is replaced once within the call, so a
// QoS 1 or 2 message may arrive twice; other failures return an error wrapping
// one of the ErrMQTT* sentinels. Publish copies payload: the caller keeps it.
func (p *MQTTPublisher) Publish(ctx context.Context, target *url.URL, qos byte, payload []byte) error {
	t, err := parseMQTTTarget(target)
	if err != nil {
		return err
	}
	if qos > 2 {
		return fmt.Errorf("%w: got %d", ErrMQTTQoS, qos)
	}
	// fixed header (5) + topic (2+n) + packet id (2)
	if len(payload) > mqttMaxRemaining-len(t.topic)-4 {
		return fmt.Errorf("%w: %d bytes", ErrMQTTPayloadTooLarge, len(payload))
	}
	pkt := encodeMQTTPublish(t.topic, qos, payload)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("broker: MQTT publish to %s: %w", t.redacted, err)
		}
		c, err := p.conn(ctx, t)
		if err != nil {
			return err
		}
		err = c.publish(ctx, pkt, qos)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("broker: MQTT publish to %s: %w", t.redacted, ctx.Err())
		}
		if errors.Is(err, ErrMQTTConnLost) && attempt == 0 {
			p.log.Debug("MQTT connection lost, reconnecting", "broker", t.redacted, "err", err)
			continue
		}
		return err // it names the broker already
	}
}

// Close closes every connection (with DISCONNECT when the broker is
// reachable) and waits for the publisher's goroutines. Publish calls in
// flight fail with ErrMQTTClosed; later ones too.
func (p *MQTTPublisher) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	slots := p.conns
	p.conns = map[string]*mqttSlot{}
	p.mu.Unlock()
	p.cancel()
	for _, s := range slots {
		select {
		case <-s.ready:
			if s.conn != nil {
				s.conn.disconnect(errMQTTClosing)
			}
		default: // the dial sees the cancelled context and closes its connection
		}
	}
	p.wg.Wait()
}

// conn returns the pooled connection of t's broker, making one if needed.
func (p *MQTTPublisher) conn(ctx context.Context, t mqttTarget) (*mqttConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrMQTTClosed
	}
	s := p.conns[t.key]
	if s != nil {
		select {
		case <-s.ready:
			if s.err != nil || s.conn.isDead() {
				s = nil
			}
		default:
		}
	}
	if s == nil {
		s = &mqttSlot{ready: make(chan struct{})}
		p.conns[t.key] = s
		p.wg.Add(1)
		go p.dial(s, t)
	}
	p.mu.Unlock()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("broker: MQTT connect to %s: %w", t.redacted, ctx.Err())
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.conn, nil
}

// dial makes the connection of a slot. It runs on the publisher's lifetime
// (bounded by the connect timeout), not on one caller's context, so that a
// caller that gives up does not fail the others waiting for the same broker.
func (p *MQTTPublisher) dial(s *mqttSlot, t mqttTarget) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.connectTimeout)
	defer cancel()
	c, err := p.connect(ctx, t)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && p.closed {
		_ = c.nc.Close()
		c, err = nil, ErrMQTTClosed
	}
	s.conn, s.err = c, err
	if err != nil {
		if p.conns[t.key] == s {
			delete(p.conns, t.key)
		}
		close(s.ready)
		return
	}
	c.release = func() {
		p.mu.Lock()
		if p.conns[t.key] == s {
			delete(p.conns, t.key)
		}
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go c.readLoop()
	go c.pingLoop()
	close(s.ready)
	p.log.Debug("MQTT connected", "broker", t.redacted)
}

func (p *MQTTPublisher) connect(ctx context.Context, t mqttTarget) (*mqttConn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		if p.ctx.Err() != nil {
			return nil, ErrMQTTClosed
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrMQTTUnreachable, t.redacted, err)
	}
	nc := raw
	if t.tls {
		cfg := &tls.Config{}
		if p.opts.tls != nil {
			cfg = p.opts.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = t.host
		}
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("%w: %s: TLS: %v", ErrMQTTUnreachable, t.redacted, err)
		}
		nc = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = nc.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	br := bufio.NewReaderSize(nc, 64)
	err = mqttHandshake(nc, br, t, p.opts.keepAlive)
	if !stop() {
		<-fired
		if err == nil {
			err = fmt.Errorf("%w: %s: %v", ErrMQTTUnreachable, t.redacted, ctx.Err())
		}
	}
	if err != nil {
		_ = nc.Close()
		if p.ctx.Err() != nil {
			return nil, ErrMQTTClosed
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c := &mqttConn{
		p: p, nc: nc, br: br, redacted: t.redacted,
		wlock:    make(chan struct{}, 1),
		dead:     make(chan struct{}),
		inflight: map[uint16]*mqttWaiter{},
		release:  func() {},
	}
	c.lastUse.Store(time.Now().UnixNano())
	return c, nil
}

// mqttHandshake sends CONNECT (clean session, a random client id) and reads
// the CONNACK.
func mqttHandshake(w io.Writer, r *bufio.Reader, t mqttTarget, keepAlive time.Duration) error {
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	clientID := "piazza" + hex.EncodeToString(idb[:]) // 22 characters of [0-9a-z], which every 3.1.1 broker accepts
	flags := byte(0x02)                               // clean session
	if t.hasUser {
		flags |= 0x80
	}
	if t.hasPass {
		flags |= 0x40
	}
	ka := int(keepAlive / time.Second)
	if ka > 65535 {
		ka = 65535
	}
	body := make([]byte, 0, 32+len(t.user)+len(t.pass))
	body = appendMQTTString(body, "MQTT")
	body = append(body, 4, flags, byte(ka>>8), byte(ka))
	body = appendMQTTString(body, clientID)
	if t.hasUser {
		body = appendMQTTString(body, t.user)
	}
	if t.hasPass {
		body = appendMQTTString(body, t.pass)
	}
	pkt := appendMQTTHeader(nil, mqttConnect<<4, len(body))
	pkt = append(pkt, body...)
	if _, err := w.Write(pkt); err != nil {
		return fmt.Errorf("%w: %s: sending CONNECT: %v", ErrMQTTUnreachable, t.redacted, err)
	}
	typ, ack, err := readMQTTPacket(r)
	if errors.Is(err, errMQTTMalformed) {
		return fmt.Errorf("%w: %s: expected CONNACK, got %v (is it an MQTT 3.1.1 broker?)", ErrMQTTConnLost, t.redacted, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: no CONNACK: %v", ErrMQTTUnreachable, t.redacted, err)
	}
	if typ>>4 != mqttConnack || len(ack) != 2 {
		return fmt.Errorf("%w: %s: expected CONNACK, got packet type %d (is it an MQTT 3.1.1 broker?)", ErrMQTTConnLost, t.redacted, typ>>4)
	}
	if rc := ack[1]; rc != 0 {
		reasons := map[byte]string{
			1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
			4: "bad user name or password", 5: "not authorised",
		}
		reason := reasons[rc]
		if reason == "" {
			reason = "return code " + strconv.Itoa(int(rc))
		}
		return fmt.Errorf("%w: %s: %s", ErrMQTTRefused, t.redacted, reason)
	}
	return nil
}

// mqttConn is one connection to a broker. Writers take wlock (a channel, so
// that waiting for it respects contexts); the read loop completes the waiters
// of QoS 1 and 2 publishes; the ping loop keeps it alive and closes it when
// idle.
type mqttConn struct {
	p        *MQTTPublisher
	nc       net.Conn
	br       *bufio.Reader
	redacted string
	wlock    chan struct{}
	dead     chan struct{} // closed by fail
	lastUse  atomic.Int64  // unix nanoseconds of the last publish
	release  func()        // removes the connection from the pool

	mu       sync.Mutex
	err      error // why the connection is dead
	nextID   uint16
	inflight map[uint16]*mqttWaiter
}

// mqttWaiter waits for the acknowledgement of one QoS 1 or 2 publish. Its id
// stays reserved until the broker acknowledges, even if the caller gave up,
// so that a late acknowledgement never completes another message.
type mqttWaiter struct {
	qos  byte
	done chan error // buffered: the read loop or fail sends once
}

func (c *mqttConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// publish writes a PUBLISH packet (built without a packet id) and waits for
// its acknowledgement.
func (c *mqttConn) publish(ctx context.Context, pkt []byte, qos byte) error {
	c.lastUse.Store(time.Now().UnixNano())
	if qos == 0 {
		return c.write(ctx, pkt)
	}
	w := &mqttWaiter{qos: qos, done: make(chan error, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	id, ok := c.allocID()
	if !ok {
		c.mu.Unlock()
		c.fail(fmt.Errorf("%w: %s: 65535 publishes unacknowledged", ErrMQTTConnLost, c.redacted))
		return ErrMQTTConnLost
	}
	c.inflight[id] = w
	c.mu.Unlock()
	// The packet id sits right after the topic, in the two bytes left for it.
	pkt = setMQTTPacketID(pkt, id)
	if err := c.write(ctx, pkt); err != nil {
		c.mu.Lock()
		if c.inflight != nil && c.inflight[id] == w {
			delete(c.inflight, id)
		}
		c.mu.Unlock()
		return err
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allocID returns a packet id not in flight. c.mu is held.
func (c *mqttConn) allocID() (uint16, bool) {
	for range 65535 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.inflight[c.nextID]; !busy {
			return c.nextID, true
		}
	}
	return 0, false
}

// write sends one packet whole, or fails the connection: a packet cut in the
// middle would corrupt the stream.
func (c *mqttConn) write(ctx context.Context, pkt []byte) error {
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.dead:
		return c.deadErr()
	}
	defer func() { <-c.wlock }()
	if c.isDead() {
		return c.deadErr()
	}
	dl := time.Now().Add(c.p.opts.writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.nc.SetWriteDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.nc.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	_, err := c.nc.Write(pkt)
	if !stop() {
		<-fired // the next writer must not see this deadline
	}
	if err != nil {
		err = fmt.Errorf("%w: %s: write: %v", ErrMQTTConnLost, c.redacted, err)
		c.fail(err)
		return err
	}
	return nil
}

func (c *mqttConn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail marks the connection dead, closes it, fails every waiter with err and
// removes the connection from the pool. Only the first call counts.
func (c *mqttConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	waiters := c.inflight
	c.inflight = nil
	close(c.dead)
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, w := range waiters {
		w.done <- err
	}
	c.release()
}

// The reasons a connection is closed on our side. They wrap ErrMQTTConnLost
// so that a publish caught by them retries (and meets ErrMQTTClosed if the
// publisher is closing).
var (
	errMQTTClosing = fmt.Errorf("%w: publisher closing", ErrMQTTConnLost)
	errMQTTIdle    = fmt.Errorf("%w: closed after idling", ErrMQTTConnLost)
)

// disconnect says goodbye (DISCONNECT) if the connection can still write
// within a second, then closes it, failing what is in flight with reason.
func (c *mqttConn) disconnect(reason error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	select {
	case c.wlock <- struct{}{}:
		if !c.isDead() {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write([]byte{mqttDisconn << 4, 0})
		}
		<-c.wlock
	case <-ctx.Done():
	case <-c.dead:
	}
	c.fail(reason)
}

// readLoop reads the broker's acknowledgements until the connection dies.
// A broker silent for 1.5 keep-alive periods (it answers our pings) is dead.
func (c *mqttConn) readLoop() {
	defer c.p.wg.Done()
	ka := c.p.opts.keepAlive
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(ka + ka/2))
		typ, body, err := readMQTTPacket(c.br)
		if err != nil {
			c.fail(fmt.Errorf("%w: %s: %v", ErrMQTTConnLost, c.redacted, err))
			return
		}
		kind := typ >> 4
		switch kind {
		case mqttPingresp:
			continue
		case mqttPuback, mqttPubrec, mqttPubcomp:
		default:
			c.fail(fmt.Errorf("%w: %s: unexpected packet type %d", ErrMQTTConnLost, c.redacted, kind))
			return
		}
		if len(body) != 2 {
			c.fail(fmt.Errorf("%w: %s: acknowledgement of %d bytes", ErrMQTTConnLost, c.redacted, len(body)))
			return
		}
		id := uint16(body[0])<<8 | uint16(body[1])
		c.mu.Lock()
		w := c.inflight[id]
		switch {
		case w == nil:
			// An acknowledgement for no message (a duplicate): ignore it, but
			// answer a PUBREC so that the broker can forget the id.
		case kind == mqttPuback && w.qos == 1, kind == mqttPubcomp && w.qos == 2:
			delete(c.inflight, id)
			w.done <- nil
		case kind == mqttPubrec && w.qos == 2:
		default:
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: %s: acknowledgement type %d for a QoS %d message", ErrMQTTConnLost, c.redacted, kind, w.qos))
			return
		}
		c.mu.Unlock()
		if kind == mqttPubrec {
			// Answer from another goroutine: the read loop must never wait
			// for the write lock (a writer may be blocked on a full socket
			// until the broker, blocked on us, reads again).
			c.p.wg.Add(1)
			go func() {
				defer c.p.wg.Done()
				ctx, cancel := context.WithTimeout(c.p.ctx, c.p.opts.writeTimeout)
				defer cancel()
				_ = c.write(ctx, []byte{mqttPubrel<<4 | 0x02, 2, byte(id >> 8), byte(id)})
			}()
		}
	}
}

// pingLoop sends PINGREQ every half keep-alive and closes the connection
// once it has been idle (no publish, nothing in flight) for the idle timeout.
func (c *mqttConn) pingLoop() {
	defer c.p.wg.Done()
	t := time.NewTicker(c.p.opts.keepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		c.mu.Lock()
		busy := len(c.inflight) > 0
		c.mu.Unlock()
		if !busy && time.Since(time.Unix(0, c.lastUse.Load())) > c.p.opts.idleTimeout {
			c.release() // first, so that no new publish picks it
			c.disconnect(errMQTTIdle)
			c.p.log.Debug("MQTT connection idle, closed", "broker", c.redacted)
			return
		}
		ctx, cancel := context.WithTimeout(c.p.ctx, c.p.opts.writeTimeout)
		_ = c.write(ctx, []byte{mqttPingreq << 4, 0})
		cancel()
	}
}

// encodeMQTTPublish builds a PUBLISH packet; for QoS 1 and 2 it leaves two
// zero bytes for the packet id, which setMQTTPacketID fills in.
func encodeMQTTPublish(topic string, qos byte, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	pkt := make([]byte, 0, 5+n)
	pkt = appendMQTTHeader(pkt, mqttPublish<<4|qos<<1, n)
	pkt = appendMQTTString(pkt, topic)
	if qos > 0 {
		pkt = append(pkt, 0, 0)
	}
	return append(pkt, payload...)
}

// setMQTTPacketID returns a copy of a PUBLISH packet with its packet id set
// (a copy: a retry on a new connection must not share bytes with a write
// that may still be in progress on the old one).
func setMQTTPacketID(pkt []byte, id uint16) []byte {
	out := append([]byte(nil), pkt...)
	i := 1
	for out[i]&0x80 != 0 { // skip the remaining length
		i++
	}
	i++
	tl := int(out[i])<<8 | int(out[i+1])
	i += 2 + tl
	out[i], out[i+1] = byte(id>>8), byte(id)
	return out
}

func appendMQTTHeader(b []byte, first byte, remaining int) []byte {
	b = append(b, first)
	for {
		d := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if remaining == 0 {
			return b
		}
	}
}

func appendMQTTString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// errMQTTMalformed is a packet no MQTT broker sends a publisher.
var errMQTTMalformed = errors.New("unexpected packet")

// readMQTTPacket reads one packet of at most 64 bytes of body: all a
// publisher ever receives (CONNACK, PUBACK, PUBREC, PUBCOMP, PINGRESP).
func readMQTTPacket(r *bufio.Reader) (typ byte, body []byte, err error) {
	typ, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, fmt.Errorf("%w: remaining length", errMQTTMalformed)
		}
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if n > 64 {
		return 0, nil, fmt.Errorf("%w: packet type %d of %d bytes", errMQTTMalformed, typ>>4, n)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}
