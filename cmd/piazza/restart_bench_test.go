package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/piazza-city/piazza/broker"
)

// BenchmarkRestartMillion stores PIAZZA_BENCH_ENTITIES entities (default
// 1,000,000, about 600 bytes each, in the broker's stored form) in a data
// directory, then starts 'piazza serve' on it and measures the time until it
// serves and its resident memory per entity. Run it alone, once:
//
//	go test -run '^$' -bench RestartMillion -benchtime 1x ./cmd/piazza
func BenchmarkRestartMillion(b *testing.B) {
	total := 1_000_000
	if s := os.Getenv("PIAZZA_BENCH_ENTITIES"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	fill(b, dir, total)
	bin := piazzaBinaryFor(b)
	for b.Loop() {
		start := time.Now()
		p := startPiazzaBin(b, bin, "--data-dir", dir, "--nats-addr", "off")
		ready := time.Since(start)
		code, _, err := do("GET", p.url+fmt.Sprintf("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:r-%07d", total-1), "")
		if err != nil || code != 200 {
			b.Fatalf("last entity not served: %d %v", code, err)
		}
		rss := vmRSS(b, p.cmd.Process.Pid)
		// The server's block caches expire after a while of no reads:
		// the steady state is what a city runs with.
		time.Sleep(steadyAfter)
		steady := vmRSS(b, p.cmd.Process.Pid)
		b.ReportMetric(ready.Seconds(), "s-to-serve")
		b.ReportMetric(float64(rss)/float64(total), "rss-bytes/entity-at-serve")
		b.ReportMetric(float64(steady)/float64(total), "rss-bytes/entity-steady")
		b.Logf("%d entities: serving after %v, RSS %d MiB at serve, %d MiB %v later\n%s", total, ready, rss>>20, steady>>20, steadyAfter, lastLines(p.logText(), 3))
		p.kill9(b)
	}
}

// steadyAfter is how long after serving the steady-state memory is read.
const steadyAfter = 30 * time.Second

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func vmRSS(tb testing.TB, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// fill writes total entities into the default tenant's stream of a data dir,
// published straight to JetStream in the broker's format.
func fill(tb testing.TB, dir string, total int) {
	ns, err := broker.StartEmbeddedNATS(broker.EmbeddedOptions{DataDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	// The broker creates the stream as it would at first start.
	br, err := broker.New(context.Background(), broker.Options{Conn: nc})
	if err != nil {
		tb.Fatal(err)
	}
	br.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	start := time.Now()
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("urn:ngsi-ld:AirQualityObserved:r-%07d", i)
		v, _ := broker.DecodeJSON([]byte(fmt.Sprintf(`{"id":%q,"type":"AirQualityObserved",`+
			`"no2":{"type":"Property","value":%d.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
			`"pm10":{"type":"Property","value":%d,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},`+
			`"pm25":{"type":"Property","value":%d,"unitCode":"GQ"},`+
			`"temperature":{"type":"Property","value":%d.1,"unitCode":"CEL"},`+
			`"airQualityLevel":{"type":"Property","value":"moderate"},`+
			`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}},`+
			`"refPointOfInterest":{"type":"Relationship","object":"urn:ngsi-ld:PointOfInterest:MN-%d"}}`,
			id, i%90, i%40, i%30, i%35, i%100)))
		e, err := broker.ParseEntity(v, broker.ParseOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		e.CreatedAt, e.ModifiedAt = start, start
		data := broker.AppendEntity(nil, e, broker.RenderOptions{SysAttrs: true})
		m := &nats.Msg{Subject: broker.Subject("", "AirQualityObserved", id), Header: nats.Header{}, Data: data}
		m.Header.Set(broker.HeaderOp, broker.OpCreate)
		m.Header.Set(broker.HeaderVersion, broker.PayloadVersion)
		m.Header.Set(broker.HeaderType, "AirQualityObserved")
		if _, err := js.PublishMsgAsync(m); err != nil {
			tb.Fatal(err)
		}
		if i%4096 == 4095 {
			// Keep the window bounded: wait for this slice's acknowledgements.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				tb.Fatal("publishing stalled")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("publishing did not complete")
	}
	tb.Logf("stored %d entities in %v", total, time.Since(start).Round(time.Millisecond))
}
