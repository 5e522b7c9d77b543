package broker

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startMQTTNATS runs an embedded nats-server with its MQTT listener on a
// random port, and a NATS client connected to it.
func startMQTTNATS(t testing.TB) (*EmbeddedNATS, *nats.Conn) {
	t.Helper()
	ns, err := StartEmbeddedNATS(EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1", MQTTAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	if ns.MQTTAddr() == "" || strings.HasSuffix(ns.MQTTAddr(), ":-1") {
		t.Fatalf("MQTT address %q", ns.MQTTAddr())
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestMQTTPublishToEmbeddedNATS publishes with each QoS to nats-server's MQTT
// listener; a plain NATS subscriber gets each message on the mapped subject
// (MQTT level separator '/' is NATS's '.').
func TestMQTTPublishToEmbeddedNATS(t *testing.T) {
	ns, nc := startMQTTNATS(t)
	msgs := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("notify.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := NewMQTTPublisher(nil)
	defer p.Close()
	for _, qos := range []byte{0, 1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			topic := fmt.Sprintf("notify/sub%d/%%40tenant", qos)
			payload := fmt.Sprintf(`{"qos":%d}`, qos)
			if err := p.Publish(ctx, mustURL(t, "mqtt://"+ns.MQTTAddr()+"/"+topic), qos, []byte(payload)); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-msgs:
				if want := fmt.Sprintf("notify.sub%d.@tenant", qos); m.Subject != want || string(m.Data) != payload {
					t.Fatalf("got %q %q, want %q %q", m.Subject, m.Data, want, payload)
				}
			case <-ctx.Done():
				t.Fatal("no message on NATS")
			}
		})
	}
	// One connection serves them all.
	p.mu.Lock()
	n := len(p.conns)
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d pooled connections, want 1", n)
	}
}

// TestMQTTPublishConcurrent publishes from many goroutines at once over the
// shared connection and counts every message on NATS.
func TestMQTTPublishConcurrent(t *testing.T) {
	ns, nc := startMQTTNATS(t)
	const workers, each = 8, 50
	got := make(chan struct{}, workers*each)
	sub, err := nc.Subscribe("conc.>", func(*nats.Msg) { got <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := NewMQTTPublisher(nil)
	defer p.Close()
	target := mustURL(t, "mqtt://"+ns.MQTTAddr()+"/conc/x")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := p.Publish(ctx, target, byte(1+i%2), []byte(strconv.Itoa(w*each+i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range workers * each {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", i, workers*each)
		}
	}
}

// TestMQTTPublishErrors: bad targets are refused before any network, and an
// unreachable, silent or non-MQTT broker gives a clear error within the
// caller's deadline.
func TestMQTTPublishErrors(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	silent := silentServer(t, nil)
	http := silentServer(t, []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))

	cases := []struct {
		name    string
		target  string
		qos     byte
		ctx     func() (context.Context, context.CancelFunc)
		want    error
		wantMsg string
	}{
		{name: "http scheme", target: "http://localhost/t", want: ErrMQTTURL, wantMsg: `scheme "http"`},
		{name: "no host", target: "mqtt:///topic", want: ErrMQTTURL, wantMsg: "no host"},
		{name: "opaque", target: "mqtt:host/topic", want: ErrMQTTURL, wantMsg: "no host"},
		{name: "no topic", target: "mqtt://localhost:1883", want: ErrMQTTURL, wantMsg: "no topic"},
		{name: "slash only", target: "mqtt://localhost:1883/", want: ErrMQTTURL, wantMsg: "no topic"},
		{name: "wildcard", target: "mqtt://localhost/a/%23", want: ErrMQTTURL, wantMsg: "wildcard"},
		{name: "plus", target: "mqtt://localhost/a/+/b", want: ErrMQTTURL, wantMsg: "wildcard"},
		{name: "query", target: "mqtt://localhost/a?qos=1", want: ErrMQTTURL, wantMsg: "query"},
		{name: "port 0", target: "mqtt://localhost:0/a", want: ErrMQTTURL, wantMsg: "bad port"},
		{name: "password without user", target: "mqtt://:secret@localhost/a", want: ErrMQTTURL, wantMsg: "needs a user"},
		{name: "qos 3", target: "mqtt://localhost/a", qos: 3, want: ErrMQTTQoS},
		{name: "refused", target: "mqtt://" + closedAddr + "/a", want: ErrMQTTUnreachable, wantMsg: "refused"},
		{name: "cancelled", target: "mqtt://" + silent + "/a", want: context.Canceled,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			}},
		{name: "no CONNACK", target: "mqtt://" + silent + "/a", want: context.DeadlineExceeded,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			}},
		{name: "not MQTT", target: "mqtt://" + http + "/a", want: ErrMQTTConnLost, wantMsg: "expected CONNACK"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewMQTTPublisher(nil, MQTTConnectTimeout(5*time.Second))
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if c.ctx != nil {
				ctx, cancel = c.ctx()
			}
			defer cancel()
			start := time.Now()
			err := p.Publish(ctx, mustURL(t, c.target), c.qos, []byte("x"))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("error %v, want %v containing %q", err, c.want, c.wantMsg)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("took %s", el)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// silentServer accepts TCP connections and reads them; if reply is set it
// writes it once to each connection, and never says anything MQTT.
func silentServer(t testing.TB, reply []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 1024)
				if _, err := c.Read(buf); err == nil && reply != nil {
					_, _ = c.Write(reply)
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// TestMQTTPublishNoAck: a broker that accepts the connection but never
// acknowledges a QoS 1 publish holds the caller only until its deadline.
func TestMQTTPublishNoAck(t *testing.T) {
	connack := []byte{mqttConnack << 4, 2, 0, 0}
	addr := silentServer(t, connack)
	p := NewMQTTPublisher(nil)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Publish(ctx, mustURL(t, "mqtt://"+addr+"/a"), 1, []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want deadline exceeded", err)
	}
	// QoS 0 needs no acknowledgement.
	if err := p.Publish(context.Background(), mustURL(t, "mqtt://"+addr+"/a"), 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestMQTTPublisherClose: Close releases everything; Publish then fails.
func TestMQTTPublisherClose(t *testing.T) {
	ns, _ := startMQTTNATS(t)
	p := NewMQTTPublisher(nil)
	target := mustURL(t, "mqtt://"+ns.MQTTAddr()+"/closing")
	if err := p.Publish(context.Background(), target, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close() // twice is fine
	if err := p.Publish(context.Background(), target, 1, []byte("x")); !errors.Is(err, ErrMQTTClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestMQTTIdleReconnect: an idle connection is closed and the next publish
// opens a new one.
func TestMQTTIdleReconnect(t *testing.T) {
	ns, nc := startMQTTNATS(t)
	msgs := make(chan *nats.Msg, 4)
	if _, err := nc.ChanSubscribe("idle", msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := NewMQTTPublisher(nil, MQTTKeepAlive(time.Second), MQTTIdleTimeout(time.Millisecond))
	defer p.Close()
	target := mustURL(t, "mqtt://"+ns.MQTTAddr()+"/idle")
	for i := range 2 {
		if err := p.Publish(context.Background(), target, 1, []byte("x")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		select {
		case <-msgs:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d lost", i)
		}
		// Wait until the idle connection is gone from the pool.
		deadline := time.Now().Add(5 * time.Second)
		for {
			p.mu.Lock()
			n := len(p.conns)
			p.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("idle connection not closed")
			}
			time.Sleep(10 * time.Millisecond) // polling, with a deadline
		}
	}
}

// --- mosquitto, the real Debian broker, as a subprocess ---

// requireBinary finds a Debian mosquitto binary. Without it the test skips
// loudly, unless PIAZZA_REQUIRE_MOSQUITTO is set (CI installs mosquitto and
// sets it), in which case it fails.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		msg := fmt.Sprintf("!!! %s NOT INSTALLED: this test of the MQTT path is SKIPPED; install it with: apt-get install mosquitto mosquitto-clients", name)
		if os.Getenv("PIAZZA_REQUIRE_MOSQUITTO") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mosquitto is a broker process started by a test.
type mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
	// exited is closed when the process has exited.
	exited chan struct{}
}

// startMosquitto starts mosquitto on a free port of 127.0.0.1 with extra
// configuration lines, and stops it at the end of the test.
func startMosquitto(t testing.TB, extra string) *mosquitto {
	t.Helper()
	bin := requireBinary(t, "mosquitto")
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n", port)
	if os.Getuid() == 0 {
		text += "user root\n" // else it drops to user mosquitto, who cannot read the test's files
	}
	if extra == "" {
		extra = "allow_anonymous true\n"
	}
	if err := os.WriteFile(conf, []byte(text+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, conf: conf, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	var stderr strings.Builder
	m.cmd.Stderr = &stderr
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			c.Close()
			m.exited = exited
			return
		}
		select {
		case <-exited:
			m.t.Fatalf("mosquitto exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not listening on %s: %s", m.addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling, with a deadline
	}
}

// stop kills the broker process (this test's own, by its pid) and waits.
func (m *mosquitto) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// mqttSub is a running mosquitto_sub -v: lines are "<topic> <payload>".
type mqttSub struct {
	lines chan string
}

// startMosquittoSub runs mosquitto_sub on a topic filter and returns once it
// has its SUBACK (so that nothing published after is missed).
func startMosquittoSub(t testing.TB, addr, filter string, qos int, extraArgs ...string) *mqttSub {
	t.Helper()
	bin := requireBinary(t, "mosquitto_sub")
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-d", "-v", "-h", host, "-p", port, "-t", filter, "-q", strconv.Itoa(qos)}, extraArgs...)
	// Its stdout is a pipe, so libc would buffer it: stdbuf (coreutils)
	// makes it line-buffered, so that each line arrives when printed.
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil {
		args = append([]string{"-oL", bin}, args...)
		bin = stdbuf
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &mqttSub{lines: make(chan string, 1024)}
	subscribed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "Subscribed (mid:"):
				once.Do(func() { close(subscribed) })
			case strings.HasPrefix(line, "Client "): // -d protocol trace
			default:
				s.lines <- line
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	select {
	case <-subscribed:
	case <-done:
		t.Fatalf("mosquitto_sub ended before subscribing: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("mosquitto_sub did not subscribe within 10s: %s", stderr.String())
	}
	return s
}

// next returns the next message line, failing the test after the timeout.
func (s *mqttSub) next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l := <-s.lines:
		return l
	case <-time.After(timeout):
		t.Fatalf("mosquitto_sub received nothing within %s", timeout)
		return ""
	}
}

// TestMQTTPublishToMosquitto publishes with QoS 0, 1 and 2 to Debian's
// mosquitto broker, which mosquitto_sub receives; then the broker restarts
// on the same port and the publisher reconnects on its own.
func TestMQTTPublishToMosquitto(t *testing.T) {
	m := startMosquitto(t, "")
	sub := startMosquittoSub(t, m.addr, "piazza/#", 2)
	p := NewMQTTPublisher(nil)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, qos := range []byte{0, 1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			topic := fmt.Sprintf("piazza/@/Thing/urn:x:%d", qos)
			payload := fmt.Sprintf(`{"qos":%d}`, qos)
			if err := p.Publish(ctx, mustURL(t, "mqtt://"+m.addr+"/"+topic), qos, []byte(payload)); err != nil {
				t.Fatal(err)
			}
			if got, want := sub.next(t, 10*time.Second), topic+" "+payload; got != want {
				t.Fatalf("mosquitto_sub got %q, want %q", got, want)
			}
		})
	}
	t.Run("broker restart", func(t *testing.T) {
		m.stop()
		m.start()
		sub := startMosquittoSub(t, m.addr, "again", 1)
		// The pooled connection is dead; the publisher finds out and dials again.
		if err := p.Publish(ctx, mustURL(t, "mqtt://"+m.addr+"/again"), 1, []byte("back")); err != nil {
			t.Fatal(err)
		}
		if got := sub.next(t, 10*time.Second); got != "again back" {
			t.Fatalf("got %q", got)
		}
	})
}

// TestMQTTMosquittoCredentials: user and password from the URL; a wrong
// password is a clear refusal.
func TestMQTTMosquittoCredentials(t *testing.T) {
	passwd := requireBinary(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", file, "city", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	m := startMosquitto(t, "allow_anonymous false\npassword_file "+file+"\n")
	sub := startMosquittoSub(t, m.addr, "auth", 1, "-u", "city", "-P", "s3cret")
	p := NewMQTTPublisher(nil)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		userinfo string
		want     error
	}{
		{"", ErrMQTTRefused},
		{"city:wrong@", ErrMQTTRefused},
		{"city:s3cret@", nil},
	} {
		err := p.Publish(ctx, mustURL(t, "mqtt://"+c.userinfo+m.addr+"/auth"), 1, []byte("hello"))
		if !errors.Is(err, c.want) {
			t.Fatalf("%q: error %v, want %v", c.userinfo, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "wrong") || !strings.Contains(err.Error(), "not authorised") && !strings.Contains(err.Error(), "bad user name")) {
			t.Fatalf("%q: error %v", c.userinfo, err)
		}
	}
	if got := sub.next(t, 10*time.Second); got != "auth hello" {
		t.Fatalf("got %q", got)
	}
}

// FuzzValidateMQTTURL: any string either parses as a URL that is refused
// with ErrMQTTURL, or gives a target whose topic MQTT allows.
func FuzzValidateMQTTURL(f *testing.F) {
	for _, s := range []string{"mqtt://h:1883/a/b", "mqtts://u:p@h/t", "mqtt://h/a/%23", "mqtt://[::1]:1/x", "mqtt:///", "http://h/t", "mqtt://h/%FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		tg, err := parseMQTTTarget(u)
		if err != nil {
			if !errors.Is(err, ErrMQTTURL) {
				t.Fatalf("%q: error %v does not wrap ErrMQTTURL", s, err)
			}
			return
		}
		if checkMQTTTopic(tg.topic) != nil || tg.addr == "" || strings.Contains(tg.redacted, "@") {
			t.Fatalf("%q accepted as %+v", s, tg)
		}
		pkt := encodeMQTTPublish(tg.topic, 1, []byte("p"))
		if got := setMQTTPacketID(pkt, 0xABCD); got[len(got)-3] != 0xAB || got[len(got)-2] != 0xCD {
			t.Fatalf("packet id not where expected: % x", got)
		}
	})
}

// FuzzReadMQTTPacket: the packet reader never panics and never returns a
// body longer than its cap, whatever a broker sends.
func FuzzReadMQTTPacket(f *testing.F) {
	f.Add([]byte{0x20, 2, 0, 0})
	f.Add([]byte{0x40, 2, 0, 1})
	f.Add([]byte{0x40, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0xd0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(strings.NewReader(string(b)))
		for {
			_, body, err := readMQTTPacket(r)
			if err != nil {
				return
			}
			if len(body) > 64 {
				t.Fatalf("body of %d bytes", len(body))
			}
		}
	})
}

// BenchmarkMQTTPublish publishes 200-byte messages to the embedded
// nats-server's MQTT listener over loopback, one at a time.
func BenchmarkMQTTPublish(b *testing.B) {
	ns, _ := startMQTTNATS(b)
	p := NewMQTTPublisher(nil)
	defer p.Close()
	target := mustURL(b, "mqtt://"+ns.MQTTAddr()+"/bench/x")
	payload := []byte(strings.Repeat("x", 200))
	for _, qos := range []byte{0, 1} {
		b.Run("qos"+strconv.Itoa(int(qos)), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := p.Publish(ctx, target, qos, payload); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// TestMQTTPublishTLS: mqtts:// to mosquitto with a TLS listener; the broker's
// certificate is checked (an unknown CA is refused with a clear error).
func TestMQTTPublishTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMosquitto(t, "allow_anonymous true\ncertfile "+certFile+"\nkeyfile "+keyFile+"\n")
	sub := startMosquittoSub(t, m.addr, "tls/#", 1, "--cafile", certFile)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target := mustURL(t, "mqtts://"+m.addr+"/tls/x")

	untrusting := NewMQTTPublisher(nil)
	defer untrusting.Close()
	if err := untrusting.Publish(ctx, target, 1, []byte("no")); !errors.Is(err, ErrMQTTUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	p := NewMQTTPublisher(nil, MQTTTLSConfig(&tls.Config{RootCAs: pool}))
	defer p.Close()
	if err := p.Publish(ctx, target, 1, []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if got := sub.next(t, 10*time.Second); got != "tls/x yes" {
		t.Fatalf("got %q", got)
	}
}

// selfSignedCert makes a certificate for 127.0.0.1, its own CA.
func selfSignedCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "piazza test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// ExampleMQTTPublisher sends one notification with QoS 1 to an MQTT broker;
// the publisher keeps the connection for the next one.
func ExampleMQTTPublisher() {
	p := NewMQTTPublisher(nil)
	defer p.Close()
	target, _ := url.Parse("mqtt://user:secret@mqtt.example.org:1883/city/notifications")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Publish(ctx, target, 1, []byte(`{"type":"Notification"}`)); err != nil {
		fmt.Println(err) // wraps ErrMQTTUnreachable, ErrMQTTRefused, ctx.Err()...
	}
}
