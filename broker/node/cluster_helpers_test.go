package node

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/broker"
)

// natsCluster is a NATS cluster of embedded nats-servers in the test
// process: routes between every pair, JetStream on each (its own store in
// t.TempDir()), client and cluster ports picked at random.
type natsCluster struct {
	t       *testing.T
	servers []*server.Server // nil once stopped
}

// startNATSCluster starts a cluster of size servers and waits until
// JetStream has a meta leader that every server follows.
func startNATSCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	// Every server names every route up front, so that JetStream knows
	// the cluster's size from the start. The cluster ports are picked by
	// the system and released just before the servers take them.
	ports := make([]int, size)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c := &natsCluster{t: t}
	t.Cleanup(c.shutdown)
	for i := range size {
		opts := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i+1),
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
	}
	c.waitFor("a JetStream meta leader followed by every server", 30*time.Second, func() bool {
		leaders := 0
		for _, s := range c.servers {
			if !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		return leaders == 1
	})
	return c
}

// url is the client URL of server i.
func (c *natsCluster) url(i int) string { return c.servers[i].ClientURL() }

// stop shuts server i down, as a crash would for its peers: no leadership
// is handed over (nats-server's Shutdown does not, lame duck mode would).
func (c *natsCluster) stop(i int) {
	s := c.servers[i]
	c.servers[i] = nil
	s.Shutdown()
	s.WaitForShutdown()
}

// streamLeader is the index of the server leading stream in the global
// account, or -1.
func (c *natsCluster) streamLeader(stream string) int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
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
	return -1
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
	for _, s := range c.servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
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
	for i, s := range c.servers {
		if s != nil && s.Name() == name {
			return i
		}
	}
	return -1
}

func (c *natsCluster) shutdown() {
	for i, s := range c.servers {
		if s != nil {
			c.stop(i)
		}
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
