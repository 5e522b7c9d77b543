package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/broker"
)

// natsCluster is a NATS cluster of nats-servers embedded in the test
// process: routes between every pair, JetStream on each (its own store in
// t.TempDir()), client and cluster ports picked at random. For crash tests
// its last member is a nats-server process instead, which can be killed.
type natsCluster struct {
	t       *testing.T
	servers []*server.Server // nil once stopped, and for the process
	names   []string
	urls    []string
	proc    *exec.Cmd // the last member as a process; nil once killed
}

// startNATSCluster starts a cluster of size servers, the last one as a
// separate process if withProcess, and waits until JetStream has a meta
// leader that every server follows.
func startNATSCluster(t *testing.T, size int, withProcess bool) *natsCluster {
	t.Helper()
	// Every server names every route up front, so that JetStream knows
	// the cluster's size from the start. The cluster ports are picked by
	// the system and released just before the servers take them.
	ports := make([]int, size+1) // the last is the process's client port
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []string
	for _, p := range ports[:size] {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c := &natsCluster{t: t}
	t.Cleanup(c.shutdown)
	var bin string
	if withProcess {
		bin = natsServerBinary(t)
	}
	for i := range size {
		name := fmt.Sprintf("nats-%d", i+1)
		c.names = append(c.names, name)
		if withProcess && i == size-1 {
			c.startProcess(bin, name, ports[size], ports[i], routes)
			continue
		}
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "piazza-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats server %d did not start", i+1)
		}
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, s.ClientURL())
	}
	c.waitFor("a JetStream meta leader followed by every server", 30*time.Second, func() bool {
		for _, s := range c.servers {
			if s != nil && !s.JetStreamIsCurrent() {
				return false
			}
		}
		return c.metaLeader() >= 0
	})
	return c
}

// startProcess runs a member of the cluster as a nats-server process and
// waits until it accepts connections.
func (c *natsCluster) startProcess(bin, name string, port, clusterPort int, routes []string) {
	t := c.t
	dir := t.TempDir()
	conf := fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
jetstream { store_dir: %q }
cluster {
  name: piazza-test
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, name, port, filepath.Join(dir, "js"), clusterPort, `"`+strings.Join(routes, `", "`)+`"`)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.servers = append(c.servers, nil)
	c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", port))
	c.proc = exec.Command(bin, "-c", path)
	if err := c.proc.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(name+" accepting connections", 20*time.Second, func() bool {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	})
}

// freePort is a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsServerBinary builds nats-server (the version in go.mod) for one test;
// the build cache makes it quick after the first time.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		t.Fatalf("building nats-server: %v\n%s", err, out)
	}
	return bin
}

// url is the client URL of server i.
func (c *natsCluster) url(i int) string { return c.urls[i] }

// stop stops server i. An embedded server shuts down as on SIGTERM: it
// hands its Raft leaderships over first. The process is killed (SIGKILL),
// as in a crash: its peers wait for their election timeout.
func (c *natsCluster) stop(i int) {
	if s := c.servers[i]; s != nil {
		c.servers[i] = nil
		s.Shutdown()
		s.WaitForShutdown()
		return
	}
	if c.proc != nil && i == len(c.urls)-1 {
		_ = c.proc.Process.Kill()
		_ = c.proc.Wait()
		c.proc = nil
	}
}

// streamLeader is the index of the server leading stream in the global
// account, or -1.
func (c *natsCluster) streamLeader(stream string) int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	if c.proc != nil && c.embeddedCurrent() {
		// Not an embedded server: the process, if the stream has a
		// leader at all (JetStream's view of it).
		leader := -1
		c.withJetStream(c.t, func(ctx context.Context, js jetstream.JetStream) {
			if st, err := js.Stream(ctx, stream); err == nil && st.CachedInfo().Cluster != nil {
				leader = c.index(st.CachedInfo().Cluster.Leader)
			}
		})
		return leader
	}
	return -1
}

// metaLeader is the index of the JetStream meta leader, or -1.
func (c *natsCluster) metaLeader() int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	if c.proc != nil && c.embeddedCurrent() {
		// The embedded servers follow a leader that is none of them.
		return len(c.urls) - 1
	}
	return -1
}

// embeddedCurrent reports whether every running embedded server follows
// a JetStream meta leader.
func (c *natsCluster) embeddedCurrent() bool {
	for _, s := range c.servers {
		if s != nil && !s.JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// moveStreamLeader asks stream's leader to step down in favour of server
// i until i leads it.
func (c *natsCluster) moveStreamLeader(stream string, i int) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%s leading stream %s", c.names[i], stream), 30*time.Second, func() bool {
		if c.streamLeader(stream) == i {
			return true
		}
		nc, err := nats.Connect(c.urls[(i+1)%len(c.urls)])
		if err != nil {
			return false
		}
		defer nc.Close()
		_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, c.names[i]), 5*time.Second)
		return false
	})
}

// waitFor polls cond until it holds, failing the test after timeout.
func (c *natsCluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	pollUntil(c.t, what, timeout, cond)
}

// clusterPlacement is where things landed: the indexes of the servers that
// lead the default tenant's stream and the JetStream meta group, that a
// Piazza is connected to, and that hold its read model's consumer.
type clusterPlacement struct{ streamLeader, metaLeader, bConn, bConsumer int }

// placement finds where things landed once n, the only Piazza on the
// cluster, has started.
func (c *natsCluster) placement(t *testing.T, n *Node) clusterPlacement {
	t.Helper()
	stream := broker.StreamName("")
	p := clusterPlacement{bConn: c.index(n.nc.ConnectedServerName())}
	c.waitFor("leaders of the meta group and of stream "+stream, 20*time.Second, func() bool {
		p.streamLeader, p.metaLeader = c.streamLeader(stream), c.metaLeader()
		return p.streamLeader >= 0 && p.metaLeader >= 0
	})
	c.withJetStream(t, func(ctx context.Context, js jetstream.JetStream) {
		c.waitFor("one read-model consumer on stream "+stream, 20*time.Second, func() bool {
			st, err := js.Stream(ctx, stream)
			if err != nil {
				return false
			}
			var hosts []int
			l := st.ListConsumers(ctx)
			for ci := range l.Info() {
				if ci.Cluster != nil {
					hosts = append(hosts, c.index(ci.Cluster.Leader))
				}
			}
			if l.Err() != nil || len(hosts) != 1 || hosts[0] < 0 {
				return false
			}
			p.bConsumer = hosts[0]
			return true
		})
	})
	return p
}

// deleteConsumers deletes every consumer of stream (those of a Piazza
// that stopped).
func (c *natsCluster) deleteConsumers(t *testing.T, stream string) {
	t.Helper()
	c.withJetStream(t, func(ctx context.Context, js jetstream.JetStream) {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			if err := st.DeleteConsumer(ctx, ci.Name); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// withJetStream runs f with a JetStream client on the running servers.
func (c *natsCluster) withJetStream(t *testing.T, f func(context.Context, jetstream.JetStream)) {
	t.Helper()
	var urls []string
	for i, u := range c.urls {
		if c.servers[i] != nil || (c.proc != nil && i == len(c.urls)-1) {
			urls = append(urls, u)
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f(ctx, js)
}

// index is the index of the server named name, or -1.
func (c *natsCluster) index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

func (c *natsCluster) shutdown() {
	for i := range c.urls {
		c.stop(i)
	}
}

// pollUntil polls cond every 10ms until it holds, failing the test after
// timeout with what was awaited.
func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond) // the poll interval, not a wait for an event
	}
}
