package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/node"
)

// TestNodeListenersEndToEnd starts a whole node with its MQTT and WebSocket
// listeners turned on from node.Config (as piazza serve --mqtt-addr
// --websocket-addr does), writes through the NGSI-LD HTTP API, and sees the
// change in piazza-follow over ws:// and in Debian's mosquitto_sub over MQTT.
func TestNodeListenersEndToEnd(t *testing.T) {
	n, err := node.Start(context.Background(), node.Config{
		HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(), ContextsOffline: true,
		MQTTAddr: "127.0.0.1:-1", WebSocketAddr: "127.0.0.1:-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	if n.MQTTAddr() == "" || !strings.HasPrefix(n.WebSocketURL(), "ws://") {
		t.Fatalf("listeners: MQTT %q, WebSocket %q", n.MQTTAddr(), n.WebSocketURL())
	}
	mqttLines := mosquittoSub(t, n.MQTTAddr(), "piazza/@/Sensor/#")
	a := startApp(t, "-nats-url", n.WebSocketURL(), "Sensor")
	a.waitStderr(t, "following piazza.@.Sensor.> live on ws://")

	id := "urn:ngsi-ld:Sensor:Mantova.1"
	body := `{"id":"` + id + `","type":"Sensor","level":{"type":"Property","value":7}}`
	resp, err := http.Post("http://"+n.HTTPAddr()+"/ngsi-ld/v1/entities", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %s", resp.Status)
	}
	cs := a.waitLines(t, 1)
	checkChange(t, cs[0], 0, "create", "", id, "level", 7)

	if mqttLines == nil {
		return // skipped loudly by mosquittoSub
	}
	select {
	case line := <-mqttLines:
		topic, payload, _ := strings.Cut(line, " ")
		if topic != "piazza/@/Sensor/urn:ngsi-ld:Sensor:Mantova%2E1" {
			t.Fatalf("topic %q", topic)
		}
		var e map[string]json.RawMessage
		if err := json.Unmarshal([]byte(payload), &e); err != nil || string(e["id"]) != `"`+id+`"` || e["modifiedAt"] == nil {
			t.Fatalf("payload %s (%v)", payload, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub received nothing")
	}
}

// mosquittoSub runs Debian's mosquitto_sub -v on a filter and returns its
// message lines once it is subscribed. Without the binary it returns nil
// after a loud skip message, or fails when PIAZZA_REQUIRE_MOSQUITTO is set
// (CI installs it).
func mosquittoSub(t *testing.T, addr, filter string) <-chan string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		msg := "!!! mosquitto_sub NOT INSTALLED: the MQTT half of this test is SKIPPED; install it with: apt-get install mosquitto-clients"
		if os.Getenv("PIAZZA_REQUIRE_MOSQUITTO") != "" {
			t.Fatal(msg)
		}
		t.Log(msg)
		fmt.Fprintln(os.Stderr, msg)
		return nil
	}
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-d", "-v", "-h", host, "-p", port, "-t", filter}
	if stdbuf, err := exec.LookPath("stdbuf"); err == nil { // line-buffered stdout
		args = append([]string{"-oL", bin}, args...)
		bin = stdbuf
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	subscribed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		first := true
		for sc.Scan() {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "Subscribed (mid:"):
				if first {
					close(subscribed)
					first = false
				}
			case strings.HasPrefix(l, "Client "):
			default:
				lines <- l
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
		t.Fatal("mosquitto_sub ended before subscribing")
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub did not subscribe within 10s")
	}
	return lines
}
