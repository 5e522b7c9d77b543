package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startTestNode starts a node on random ports (embedded NATS with no client
// listener unless the test needs one), stopped at the end of the test.
func startTestNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.NATSAddr == "" {
		cfg.NATSAddr = "off"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// value is the value of the series of name with exactly these labels
// (among others), or -1 if there is none.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

const badAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved",
	"dateObserved":"2024-01-10T10:00:00","tsp":73.3,"no2":41,
	"location":{"type":"Point","coordinates":[10.79,45.16]}}`

// TestMetricsMoveThroughHTTP checks the main series through the node as
// piazza serve runs it: an HTTP create moves the request and write
// counters, a validation failure the validation and error counters, the
// entity gauge counts; the registry passes the Prometheus linter, and
// MetricNames names every series exported.
func TestMetricsMoveThroughHTTP(t *testing.T) {
	n := startTestNode(t, Config{MetricsAddr: "127.0.0.1:0", Version: "test"})
	api := "http://" + n.HTTPAddr() + "/ngsi-ld/v1/entities"
	if code, body := do(t, "POST", api, `{"id":"urn:x:1","type":"Bench"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := do(t, "POST", api, badAQ); code != 400 {
		t.Fatalf("invalid entity: %d %s", code, body)
	}
	if code, _ := do(t, "GET", api+"/urn:x:1", ""); code != 200 {
		t.Fatalf("get: %d", code)
	}
	reg := n.Registry()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"piazza_http_requests_total", map[string]string{"route": "/ngsi-ld/v1/entities", "method": "POST", "code": "201"}, 1},
		{"piazza_http_requests_total", map[string]string{"route": "/ngsi-ld/v1/entities", "method": "POST", "code": "400"}, 1},
		{"piazza_http_requests_total", map[string]string{"route": "/ngsi-ld/v1/entities/{id}", "method": "GET", "code": "200"}, 1},
		{"piazza_http_request_duration_seconds", map[string]string{"route": "/ngsi-ld/v1/entities/{id}", "method": "GET"}, 1},
		{"piazza_http_request_errors_total", map[string]string{"route": "/ngsi-ld/v1/entities", "method": "POST", "problem": "BadRequestData"}, 1},
		{"piazza_writes_total", map[string]string{"operation": "create", "outcome": "ok"}, 1},
		{"piazza_writes_total", map[string]string{"operation": "create", "outcome": "rejected"}, 1},
		{"piazza_validation_total", map[string]string{"type": "AirQualityObserved", "policy": "enforce", "outcome": "invalid"}, 1},
		{"piazza_validation_total", map[string]string{"type": "Bench", "policy": "enforce", "outcome": "unknown_type"}, 1},
		{"piazza_entities", map[string]string{"type": "Bench"}, 1},
		{"piazza_nats_connected", nil, 1},
		{"piazza_read_model_lag_messages", map[string]string{"tenant": ""}, 0},
		{"piazza_http_requests_in_flight", nil, 0},
		{"piazza_build_info", map[string]string{"version": "test"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := value(t, reg, c.name, c.labels); got != c.want {
				t.Fatalf("%v: got %v, want %v", c.labels, got, c.want)
			}
		})
	}
	t.Run("lint", func(t *testing.T) {
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
	t.Run("scrape", func(t *testing.T) {
		code, body := do(t, "GET", "http://"+n.MetricsAddr()+"/metrics", "")
		if code != 200 || !strings.Contains(body, `piazza_writes_total{operation="create",outcome="ok"} 1`) || !strings.Contains(body, "go_goroutines") {
			t.Fatalf("%d %.400s", code, body)
		}
	})
	t.Run("MetricNames", func(t *testing.T) {
		names := MetricNames()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if !slices.Contains(names, mf.GetName()) {
				t.Errorf("%s is exported but not in MetricNames", mf.GetName())
			}
		}
		// Vectors with no series yet are named too.
		for _, want := range []string{"piazza_quarantined_total", "piazza_http_request_errors_total", "piazza_build_info", "process_cpu_seconds_total", "piazza_pipeline_records_total", "piazza_notification_queue_depth"} {
			if !slices.Contains(names, want) {
				t.Errorf("MetricNames lacks %s", want)
			}
		}
	})
}

// TestHealthAndReadiness checks /healthz and /readyz on both listeners
// while serving, and /readyz 503 while starting and while draining.
func TestHealthAndReadiness(t *testing.T) {
	t.Run("serving", func(t *testing.T) {
		n := startTestNode(t, Config{MetricsAddr: "127.0.0.1:0"})
		for _, base := range []string{n.HTTPAddr(), n.MetricsAddr()} {
			if code, body := do(t, "GET", "http://"+base+"/healthz", ""); code != 200 || body != "ok\n" {
				t.Errorf("%s healthz: %d %q", base, code, body)
			}
			if code, body := do(t, "GET", "http://"+base+"/readyz", ""); code != 200 || body != "ready\n" {
				t.Errorf("%s readyz: %d %q", base, code, body)
			}
		}
	})
	t.Run("starting", func(t *testing.T) {
		// A NATS that accepts connections and never answers keeps the
		// node starting (the client waits for its INFO).
		mute, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer mute.Close()
		go func() {
			for {
				c, err := mute.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		metricsAddr := freeAddr(t)
		errc := make(chan error, 1)
		go func() {
			n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", MetricsAddr: metricsAddr,
				NATSURL: "nats://" + mute.Addr().String(), DataDir: t.TempDir()})
			if err == nil {
				_ = n.Shutdown(context.Background())
			}
			errc <- err
		}()
		waitFor(t, func() bool {
			resp, err := http.Get("http://" + metricsAddr + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 503 && strings.Contains(string(b), "starting")
		})
		if code, _ := do(t, "GET", "http://"+metricsAddr+"/healthz", ""); code != 200 {
			t.Errorf("healthz while starting: %d", code)
		}
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "cannot connect to NATS") {
			t.Fatalf("start on a mute NATS: %v", err)
		}
	})
	t.Run("draining", func(t *testing.T) {
		n := startTestNode(t, Config{MetricsAddr: "127.0.0.1:0", ShutdownDelay: 30 * time.Second, ShutdownGrace: 60 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Shutdown(ctx) }()
		for _, base := range []string{n.HTTPAddr(), n.MetricsAddr()} {
			waitFor(t, func() bool {
				code, body := do(t, "GET", "http://"+base+"/readyz", "")
				return code == 503 && strings.Contains(body, "draining")
			})
		}
		// The API still answers during the delay.
		if code, _ := do(t, "GET", "http://"+n.HTTPAddr()+"/ngsi-ld/v1/entities?type=Bench", ""); code != 200 {
			t.Errorf("query while draining: %d", code)
		}
		cancel() // end the delay (and the grace): Shutdown returns
		<-done
	})
}

// TestReadinessFollowsNATS runs a node on an external NATS (--nats-url
// mode), stops the server, and checks /readyz turns 503 and
// piazza_nats_connected 0; with the server back, ready again.
func TestReadinessFollowsNATS(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ns, err := broker.StartEmbeddedNATS(broker.EmbeddedOptions{DataDir: dir, ClientAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, Config{NATSURL: ns.ClientURL(), MetricsAddr: "127.0.0.1:0"})
	readyz := "http://" + n.MetricsAddr() + "/readyz"
	if code, body := do(t, "GET", readyz, ""); code != 200 {
		t.Fatalf("ready on NATS: %d %s", code, body)
	}
	ns.Shutdown()
	waitFor(t, func() bool {
		code, body := do(t, "GET", readyz, "")
		return code == 503 && strings.Contains(body, "not connected")
	})
	if v := value(t, n.Registry(), "piazza_nats_connected", nil); v != 0 {
		t.Errorf("piazza_nats_connected %v while NATS is down", v)
	}
	if code, _ := do(t, "GET", "http://"+n.HTTPAddr()+"/readyz", ""); code != 503 {
		t.Errorf("API readyz while NATS is down: %d", code)
	}
	ns, err = broker.StartEmbeddedNATS(broker.EmbeddedOptions{DataDir: dir, ClientAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	waitFor(t, func() bool {
		code, _ := do(t, "GET", readyz, "")
		return code == 200
	})
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
