package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/node"
)

// These tests run 'piazza quarantine' in process against a real node
// (node.Start: embedded NATS JetStream in a temp dir, the HTTP API on a
// random port) whose validation policy is quarantine.

func quarantineNode(t *testing.T) string {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(),
		Validation: broker.ValidationConfig{PolicySet: broker.PolicySet{Default: broker.PolicyQuarantine}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return "http://" + n.HTTPAddr()
}

// send makes one request to the node and returns the status and body.
func send(t *testing.T, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// quarantined posts an invalid AirQualityObserved to a tenant and returns
// the quarantine entry that keeps it.
func quarantined(t *testing.T, base, tenant, id string) uint64 {
	t.Helper()
	body := `{"id":"` + id + `","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00","tsp":73.3,
		"location":{"type":"Point","coordinates":[10.79,45.16]}}`
	status, data := send(t, "POST", base+"/ngsi-ld/v1/entities?options=keyValues", body, "NGSILD-Tenant", tenant)
	var p struct{ Quarantine uint64 }
	if status != 400 || json.Unmarshal(data, &p) != nil || p.Quarantine == 0 {
		t.Fatalf("status %d: %s", status, data)
	}
	return p.Quarantine
}

func runQuarantine(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"quarantine"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestQuarantineCommand(t *testing.T) {
	base := quarantineNode(t)
	id := "urn:ngsi-ld:AirQualityObserved:MN-1"
	seq := quarantined(t, base, "mantova", id)
	s := strconv.FormatUint(seq, 10)
	at := []string{"--url", base, "--tenant", "mantova"}

	t.Run("list", func(t *testing.T) {
		code, out, errs := runQuarantine(t, append([]string{"list"}, at...)...)
		if code != 0 || errs != "" {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, w := range []string{"SEQ", s, "create", id, "AirQualityObserved", "/dateObserved and 1 more", "1 entry in the quarantine of tenant mantova"} {
			if !strings.Contains(out, w) {
				t.Fatalf("list lacks %q:\n%s", w, out)
			}
		}
		code, out, _ = runQuarantine(t, "list", "--url", base)
		if code != 0 || !strings.Contains(out, "The quarantine of the default tenant is empty.") {
			t.Fatalf("default tenant: exit %d:\n%s", code, out)
		}
		code, out, _ = runQuarantine(t, append([]string{"list", "--json"}, at...)...)
		var es []quarantineEntry
		if code != 0 || json.Unmarshal([]byte(out), &es) != nil || len(es) != 1 || es[0].Seq != seq || len(es[0].Violations) != 2 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("show", func(t *testing.T) {
		code, out, _ := runQuarantine(t, append([]string{"show", s}, at...)...)
		for _, w := range []string{"Entry " + s + " of tenant mantova", id, "AirQualityObserved: 2 problems",
			"/dateObserved: must be a date-time with a UTC offset", "/tsp: must be of type integer; got number 73.3", "73.3"} {
			if !strings.Contains(out, w) {
				t.Fatalf("exit %d: show lacks %q:\n%s", code, w, out)
			}
		}
		code, _, errs := runQuarantine(t, "show", s, "--url", base) // another tenant's entry
		if code != 1 || !strings.Contains(errs, "no quarantine entry") || !strings.Contains(errs, "HTTP 404") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("replay while still invalid", func(t *testing.T) {
		code, _, errs := runQuarantine(t, append([]string{"replay", s}, at...)...)
		if code != 1 || !strings.Contains(errs, "/tsp: must be of type integer") || !strings.Contains(errs, "the write stays in quarantine as entry") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		code, out, _ := runQuarantine(t, append([]string{"list", "--json"}, at...)...)
		var es []quarantineEntry
		if code != 0 || json.Unmarshal([]byte(out), &es) != nil || len(es) != 1 || es[0].Seq == seq {
			t.Fatalf("after the failed replay: %s", out)
		}
		seq = es[0].Seq
		s = strconv.FormatUint(seq, 10)
	})
	t.Run("replay after the model changed", func(t *testing.T) {
		if status, body := send(t, "PUT", base+"/ngsi-ld/ex/v1/schemas/AirQualityObserved", `{"type":"object"}`); status != 204 {
			t.Fatalf("%d %s", status, body)
		}
		code, out, errs := runQuarantine(t, append([]string{"replay", s}, at...)...)
		if code != 0 || !strings.Contains(out, "entry "+s+" replayed") {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
		if status, _ := send(t, "GET", base+"/ngsi-ld/v1/entities/"+id, "", "NGSILD-Tenant", "mantova"); status != 200 {
			t.Fatalf("replayed entity: %d", status)
		}
		code, out, _ = runQuarantine(t, append([]string{"replay", s, "--json"}, at...)...)
		if code != 1 || !strings.Contains(out, "ResourceNotFound") {
			t.Fatalf("second replay: exit %d: %s", code, out)
		}
	})
	t.Run("drop", func(t *testing.T) {
		if status, body := send(t, "DELETE", base+"/ngsi-ld/ex/v1/schemas/AirQualityObserved", ""); status != 204 {
			t.Fatalf("%d %s", status, body)
		}
		if status, body := send(t, "PUT", base+"/ngsi-ld/ex/v1/schemas/AirQualityObserved?typeIRI=https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",
			`{"properties":{"tsp":{"type":"integer"}}}`); status != 201 {
			t.Fatalf("%d %s", status, body)
		}
		seq := strconv.FormatUint(quarantined(t, base, "", "urn:ngsi-ld:AirQualityObserved:MN-2"), 10)
		code, out, _ := runQuarantine(t, "--url", base, "drop", seq, "--json")
		if code != 0 || !strings.Contains(out, `"ok": true`) {
			t.Fatalf("exit %d: %s", code, out)
		}
		code, out, _ = runQuarantine(t, "drop", seq, "--url", base, "--json")
		var p problem
		if code != 1 || json.Unmarshal([]byte(out), &p) != nil || p.Status != 404 || !strings.HasSuffix(p.Type, "ResourceNotFound") {
			t.Fatalf("second drop: exit %d: %s", code, out)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
			err  string
		}{
			{nil, 2, "a command is required"},
			{[]string{"purge"}, 2, "unknown command"},
			{[]string{"show"}, 2, "needs the entry's sequence number"},
			{[]string{"show", "x"}, 2, "not a sequence number"},
			{[]string{"show", "0"}, 2, "not a sequence number"},
			{[]string{"drop", "1", "2"}, 2, "one sequence number"},
			{[]string{"list", "1"}, 2, "list takes no argument"},
			{[]string{"list", "--url", "ftp://x"}, 2, "not an http(s) URL"},
			{[]string{"list", "--nope"}, 2, "flag provided but not defined"},
			{[]string{"list", "--url", "http://127.0.0.1:1"}, 1, "cannot reach the broker"},
			{[]string{"-h"}, 0, "piazza quarantine list [flags]"},
		} {
			code, _, errs := runQuarantine(t, c.args...)
			if code != c.code || !strings.Contains(errs, c.err) {
				t.Errorf("%v: exit %d, stderr %q", c.args, code, errs)
			}
		}
	})
}
