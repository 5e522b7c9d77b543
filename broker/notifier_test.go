package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// receiver is a real HTTP endpoint that keeps the notifications it gets.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []receivedNotification
	status  int // answer with this status (0: 204)
	block   chan struct{}
	arrived chan struct{}
}

type receivedNotification struct {
	Header http.Header
	Body   map[string]any
	At     time.Time
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{arrived: make(chan struct{}, 1<<16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.block != nil {
			select {
			case <-r.block:
			case <-req.Context().Done():
			}
			return
		}
		data, _ := io.ReadAll(req.Body)
		var body map[string]any
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Errorf("notification is not a JSON object: %v: %s", err, data)
		}
		r.mu.Lock()
		r.got = append(r.got, receivedNotification{Header: req.Header.Clone(), Body: body, At: time.Now()})
		st := r.status
		r.mu.Unlock()
		r.arrived <- struct{}{}
		if st == 0 {
			st = http.StatusNoContent
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(func() {
		if r.block != nil {
			close(r.block)
		}
		r.Server.Close()
	})
	return r
}

func (r *receiver) notifications() []receivedNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// entities returns the data of every notification, in order of arrival.
func (r *receiver) entities() []map[string]any {
	var out []map[string]any
	for _, n := range r.notifications() {
		data, _ := n.Body["data"].([]any)
		for _, d := range data {
			if m, ok := d.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startNotifier runs a notifier until the end of the test and waits until it leads.
func startNotifier(t testing.TB, b *Broker, o NotifierOptions) (*Notifier, context.CancelFunc) {
	t.Helper()
	if o.LeaseTTL == 0 {
		o.LeaseTTL = time.Second
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = 20 * time.Millisecond
	}
	n, err := NewNotifier(b, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("notifier: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("notifier did not stop")
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(stop) })
	return n, func() { once.Do(stop) }
}

func waitLeading(t testing.TB, ns ...*Notifier) *Notifier {
	t.Helper()
	var leader *Notifier
	waitFor(t, 10*time.Second, "a notifier to lead", func() bool {
		for _, n := range ns {
			if n.Leading() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

func subscribe(t testing.TB, st *SubscriptionStore, tenant, body string) *Subscription {
	t.Helper()
	v, err := DecodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSubscription(v, SubscriptionParseOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(context.Background(), tenant, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t testing.TB, f func(ctx context.Context) (Outcome, error)) {
	t.Helper()
	if _, err := f(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func vehicle(t testing.TB, id string, attrs string) *Entity {
	return mustParse(t, `{"id":"`+id+`","type":"Vehicle"`+attrs+`}`, ParseOptions{})
}

func TestNotifyHTTP(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	reg := prometheus.NewRegistry()
	n, _ := startNotifier(t, b, NotifierOptions{Registerer: reg})
	waitLeading(t, n)
	subscribe(t, n.Store(), "", `{"id":"urn:ngsi-ld:Subscription:h","type":"Subscription","entities":[{"type":"Vehicle"}],
		"watchedAttributes":["speed"],"q":"speed>10","notification":{"format":"keyValues","endpoint":{"uri":"`+rec.URL+`/n",
		"receiverInfo":[{"key":"X-Auth","value":"s3cret"}]}}}`)
	ctx := context.Background()
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:1", `,"speed":{"type":"Property","value":5},"color":{"type":"Property","value":"red"}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:1", mustParse(t, `{"speed":{"type":"Property","value":20}}`, ParseOptions{Fragment: true}))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:1", mustParse(t, `{"color":{"type":"Property","value":"blue"}}`, ParseOptions{Fragment: true}))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:1", mustParse(t, `{"speed":{"type":"Property","value":30}}`, ParseOptions{Fragment: true}))
	})
	waitFor(t, 10*time.Second, "two notifications", func() bool { return len(rec.notifications()) >= 2 })
	ns := rec.notifications()
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want 2 (speed 5 fails q, a color change is not watched)", len(ns))
	}
	for i, want := range []string{"20", "30"} {
		nb := ns[i].Body
		data := nb["data"].([]any)
		e := data[0].(map[string]any)
		if nb["type"] != "Notification" || nb["subscriptionId"] != "urn:ngsi-ld:Subscription:h" || nb["notifiedAt"] == nil ||
			!strings.HasPrefix(nb["id"].(string), "urn:ngsi-ld:Notification:") || nb["triggerReason"] != TriggerAttributeUpdated {
			t.Fatalf("notification %d: %v", i, nb)
		}
		if e["id"] != "urn:V:1" || fmt.Sprint(e["speed"]) != want {
			t.Fatalf("notification %d data: %v, want speed %s in keyValues", i, e, want)
		}
		if ns[i].Header.Get("X-Auth") != "s3cret" || ns[i].Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers: %v", ns[i].Header)
		}
	}
	waitFor(t, 5*time.Second, "the counters", func() bool {
		d, err := n.Store().Status(ctx, "", "urn:ngsi-ld:Subscription:h")
		return err == nil && d.TimesSent == 2 && d.TimesFailed == 0 && !d.LastSuccess.IsZero() && !d.LastNotification.IsZero()
	})
	// What was delivered leaves the queue.
	waitFor(t, 10*time.Second, "an empty queue", func() bool {
		st, err := b.js.Stream(ctx, notifyStream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 0 && info.State.LastSeq >= 2
	})
	if got := testutil.ToFloat64(n.metrics.sent.WithLabelValues("http")); got != 2 {
		t.Fatalf("piazza_notifications_sent_total{scheme=http} = %v", got)
	}
	if c := testutil.CollectAndCount(n.metrics.delivery); c != 1 {
		t.Fatalf("delivery histogram series: %d", c)
	}
	if v := testutil.ToFloat64(prometheus.Collector(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, n.activeSubscriptions))); v != 1 {
		t.Fatalf("active subscriptions %v", v)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("metrics lint: %v %v", err, probs)
	}
}

func TestNotifyTriggers(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	cases := []struct {
		name, triggers, watched string
		want                    []string
	}{
		{"default", ``, ``, []string{"attributeCreated", "attributeUpdated", "attributeCreated"}},
		{"entityCreated", `"entityCreated"`, ``, []string{"entityCreated"}},
		{"entityUpdated", `"entityUpdated"`, ``, []string{"entityUpdated", "entityUpdated", "entityUpdated"}},
		{"entityDeleted", `"entityDeleted"`, ``, []string{"entityDeleted"}},
		{"attributeCreated", `"attributeCreated"`, ``, []string{"attributeCreated", "attributeCreated"}},
		{"attributeUpdated", `"attributeUpdated"`, ``, []string{"attributeUpdated"}},
		// The second: deleting the entity deletes its attributes.
		{"attributeDeleted", `"attributeDeleted"`, ``, []string{"attributeDeleted", "attributeDeleted"}},
		{"watched b", `"attributeCreated","attributeUpdated","attributeDeleted"`, `"b"`, []string{"attributeCreated", "attributeDeleted"}},
		{"watched c entityUpdated", `"entityUpdated"`, `"c"`, []string{"entityUpdated"}},
	}
	for i, c := range cases {
		body := `{"id":"urn:ngsi-ld:Subscription:t` + fmt.Sprint(i) + `","type":"Subscription","entities":[{"type":"Vehicle"}],`
		if c.triggers != "" {
			body += `"notificationTrigger":[` + c.triggers + `],`
		}
		if c.watched != "" {
			body += `"watchedAttributes":[` + c.watched + `],`
		}
		body += `"notification":{"endpoint":{"uri":"` + rec.URL + `/` + fmt.Sprint(i) + `"}}}`
		subscribe(t, n.Store(), "", body)
	}
	frag := func(s string) *Entity { return mustParse(t, s, ParseOptions{Fragment: true}) }
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:t", `,"a":{"type":"Property","value":1},"b":{"type":"Property","value":1}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:t", frag(`{"a":{"type":"Property","value":2}}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Append(ctx, "", "urn:V:t", frag(`{"c":{"type":"Property","value":1}}`), false)
	})
	write(t, func(ctx context.Context) (Outcome, error) { return b.DeleteAttr(ctx, "", "urn:V:t", "b", "", false) })
	write(t, func(ctx context.Context) (Outcome, error) { return b.Delete(ctx, "", "urn:V:t") })
	// A last change every subscription sees, so that waiting ends.
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:z", `,"b":{"type":"Property","value":1},"c":{"type":"Property","value":1}`))
	})
	byPath := func() map[string][]string {
		m := map[string][]string{}
		for _, nt := range rec.notifications() {
			sid := nt.Body["subscriptionId"].(string)
			for _, d := range nt.Body["data"].([]any) {
				if d.(map[string]any)["id"] == "urn:V:t" {
					m[sid] = append(m[sid], nt.Body["triggerReason"].(string))
				}
			}
		}
		return m
	}
	waitFor(t, 10*time.Second, "the last creation to reach every subscription", func() bool {
		seen := map[string]bool{}
		for _, nt := range rec.notifications() {
			for _, d := range nt.Body["data"].([]any) {
				if d.(map[string]any)["id"] == "urn:V:z" {
					seen[nt.Body["subscriptionId"].(string)] = true
				}
			}
		}
		// Four subscriptions fire on a creation: default, entityCreated,
		// attributeCreated and watched b.
		return len(seen) == 4
	})
	// Subscriptions that do not see the last creation: wait until they
	// have their expected notifications (or the deadline, then report).
	var got map[string][]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = byPath()
		all := true
		for i, c := range cases {
			all = all && strings.Join(got["urn:ngsi-ld:Subscription:t"+fmt.Sprint(i)], ",") == strings.Join(c.want, ",")
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sid := "urn:ngsi-ld:Subscription:t" + fmt.Sprint(i)
			if strings.Join(got[sid], ",") != strings.Join(c.want, ",") {
				t.Fatalf("triggers %v, want %v", got[sid], c.want)
			}
		})
	}
	// A deletion notifies id, type and deletedAt.
	for _, nt := range rec.notifications() {
		if nt.Body["triggerReason"] == "entityDeleted" {
			for _, x := range nt.Body["data"].([]any) {
				d := x.(map[string]any)
				if d["id"] != "urn:V:t" || d["type"] != "Vehicle" || d["deletedAt"] == nil || len(d) != 3 {
					t.Fatalf("deletion data: %v", d)
				}
			}
		}
	}
}

func TestNotifyShowChanges(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notificationTrigger":["attributeUpdated"],
		"notification":{"showChanges":true,"sysAttrs":true,"attributes":["speed"],"endpoint":{"uri":"`+rec.URL+`"}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:s", `,"speed":{"type":"Property","value":5},"color":{"type":"Property","value":"red"}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:s", mustParse(t, `{"speed":{"type":"Property","value":7}}`, ParseOptions{Fragment: true}))
	})
	waitFor(t, 10*time.Second, "a notification", func() bool { return len(rec.entities()) == 1 })
	e := rec.entities()[0]
	sp, _ := e["speed"].(map[string]any)
	if sp == nil || fmt.Sprint(sp["value"]) != "7" || fmt.Sprint(sp["previousValue"]) != "5" || sp["modifiedAt"] == nil {
		t.Fatalf("showChanges/sysAttrs: %v", e)
	}
	if _, has := e["color"]; has {
		t.Fatalf("notification.attributes not applied: %v", e)
	}
}

// TestNotifyIsolation: one endpoint that hangs and one that refuses never
// delay the healthy ones.
func TestNotifyIsolation(t *testing.T) {
	b, _ := startBroker(t, Options{})
	hang := newReceiver(t)
	hang.block = make(chan struct{})
	refuse := newReceiver(t)
	refuse.status = http.StatusServiceUnavailable
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused
	healthy := []*receiver{newReceiver(t), newReceiver(t), newReceiver(t)}
	n, _ := startNotifier(t, b, NotifierOptions{MaxAttempts: 1000, RetryBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	waitLeading(t, n)
	sub := func(uri string) {
		subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],
			"notification":{"endpoint":{"uri":"`+uri+`","timeout":60000}}}`)
	}
	sub(hang.URL)
	sub(refuse.URL)
	sub(deadURL)
	for _, h := range healthy {
		sub(h.URL)
	}
	const updates = 30
	start := time.Now()
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:i", `,"n":{"type":"Property","value":0}`))
	})
	for i := 1; i < updates; i++ {
		write(t, func(ctx context.Context) (Outcome, error) {
			return b.Merge(ctx, "", "urn:V:i", mustParse(t, fmt.Sprintf(`{"n":{"type":"Property","value":%d}}`, i), ParseOptions{Fragment: true}))
		})
	}
	for i, h := range healthy {
		waitFor(t, 5*time.Second, fmt.Sprintf("healthy endpoint %d to get every notification", i), func() bool { return len(h.entities()) == updates })
		for j, e := range h.entities() {
			if fmt.Sprint(e["n"].(map[string]any)["value"]) != fmt.Sprint(j) {
				t.Fatalf("endpoint %d: notification %d carries %v: out of order", i, j, e["n"])
			}
		}
	}
	t.Logf("%d notifications to each of 3 healthy endpoints in %s, beside a hanging and two failing ones", updates, time.Since(start).Round(time.Millisecond))
	if len(refuse.notifications()) == 0 {
		t.Fatal("the refusing endpoint was never tried")
	}
}

func TestNotifyDeadLetters(t *testing.T) {
	b, _ := startBroker(t, Options{})
	refuse := newReceiver(t)
	refuse.status = http.StatusInternalServerError
	reg := prometheus.NewRegistry()
	n, _ := startNotifier(t, b, NotifierOptions{MaxAttempts: 3, RetryBackoff: 10 * time.Millisecond, Registerer: reg})
	waitLeading(t, n)
	s := subscribe(t, n.Store(), "city", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"`+refuse.URL+`/x?token=abc"}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "city", vehicle(t, "urn:V:d", `,"n":{"type":"Property","value":1}`))
	})
	ctx := context.Background()
	var dls []DeadLetter
	waitFor(t, 10*time.Second, "a dead letter", func() bool {
		var err error
		dls, _, err = n.Store().DeadLetters(ctx, "city", s.ID, 0, 10)
		return err == nil && len(dls) == 1
	})
	dl := dls[0]
	if dl.Attempts != 3 || !strings.Contains(dl.Reason, "500") || dl.Subscription != s.ID || strings.Contains(dl.Endpoint, "abc") {
		t.Fatalf("dead letter: %+v", dl)
	}
	var body map[string]any
	if err := json.Unmarshal(dl.Notification, &body); err != nil || body["subscriptionId"] != s.ID {
		t.Fatalf("dead letter keeps the notification: %s", dl.Notification)
	}
	if got := len(refuse.notifications()); got != 3 {
		t.Fatalf("%d attempts, want 3", got)
	}
	if refuse.notifications()[0].Header.Get("NGSILD-Tenant") != "city" {
		t.Fatal("NGSILD-Tenant header missing")
	}
	waitFor(t, 5*time.Second, "the counters", func() bool {
		d, _ := n.Store().Status(ctx, "city", s.ID)
		return d.TimesSent == 3 && d.TimesFailed == 3 && d.Failing() && d.DeadLettered == 1 && strings.Contains(d.LastFailureReason, "500")
	})
	if testutil.ToFloat64(n.metrics.failed.WithLabelValues("http")) != 3 || testutil.ToFloat64(n.metrics.retried.WithLabelValues("http")) != 2 ||
		testutil.ToFloat64(n.metrics.dead.WithLabelValues("http")) != 1 {
		t.Fatal("failure metrics do not count the attempts")
	}
}

// TestNotifyThrottling: within a window changes are held, and at its end one
// notification carries the latest state: the last change is never dropped.
func TestNotifyThrottling(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"throttling":0.5,
		"notification":{"format":"keyValues","endpoint":{"uri":"`+rec.URL+`"}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:th", `,"n":{"type":"Property","value":0}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:other", `,"n":{"type":"Property","value":0}`))
	})
	for i := 1; i <= 20; i++ {
		write(t, func(ctx context.Context) (Outcome, error) {
			return b.Merge(ctx, "", "urn:V:th", mustParse(t, fmt.Sprintf(`{"n":{"type":"Property","value":%d}}`, i), ParseOptions{Fragment: true}))
		})
	}
	waitFor(t, 10*time.Second, "the latest state", func() bool {
		es := rec.entities()
		return len(es) > 0 && es[len(es)-1]["id"] == "urn:V:th" && fmt.Sprint(es[len(es)-1]["n"]) == "20"
	})
	ns := rec.notifications()
	if len(ns) > 4 {
		t.Fatalf("%d notifications for 22 changes within about one window", len(ns))
	}
	for i := 1; i < len(ns); i++ {
		if gap := ns[i].At.Sub(ns[i-1].At); gap < 450*time.Millisecond {
			t.Fatalf("notifications %d and %d only %s apart (throttling 0.5s)", i-1, i, gap)
		}
	}
	// The other entity's change, held in the same window, is not lost either.
	found := false
	for _, e := range rec.entities() {
		found = found || e["id"] == "urn:V:other"
	}
	if !found {
		t.Fatal("a held change of another entity was dropped")
	}
}

// TestNotifyRestart: a change committed while no notifier runs (after a
// crash) is notified when one starts again, from the saved progress.
func TestNotifyRestart(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n1, stop1 := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n1)
	s := subscribe(t, n1.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"format":"keyValues","endpoint":{"uri":"`+rec.URL+`"}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:r", `,"n":{"type":"Property","value":1}`))
	})
	waitFor(t, 10*time.Second, "the first notification", func() bool { return len(rec.entities()) == 1 })
	stop1()
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Merge(ctx, "", "urn:V:r", mustParse(t, `{"n":{"type":"Property","value":2}}`, ParseOptions{Fragment: true}))
	})
	// An endpoint down at first: the change waits in the queue across the restart.
	rec.mu.Lock()
	rec.status = http.StatusBadGateway
	rec.mu.Unlock()
	n2, stop2 := startNotifier(t, b, NotifierOptions{Store: NewSubscriptionStore(b, SubscriptionStoreOptions{}), MaxAttempts: 1000})
	waitLeading(t, n2)
	waitFor(t, 10*time.Second, "an attempt after the restart", func() bool { return len(rec.entities()) >= 2 })
	stop2()
	rec.mu.Lock()
	rec.status = 0
	rec.mu.Unlock()
	n3, _ := startNotifier(t, b, NotifierOptions{Store: NewSubscriptionStore(b, SubscriptionStoreOptions{})})
	waitLeading(t, n3)
	waitFor(t, 10*time.Second, "delivery after the endpoint came back", func() bool {
		d, _ := n3.Store().Status(context.Background(), "", s.ID)
		es := rec.entities()
		return d.LastSuccess.After(d.LastFailure) && d.TimesSent >= 3 && fmt.Sprint(es[len(es)-1]["n"]) == "2"
	})
	es := rec.entities()
	if fmt.Sprint(es[len(es)-1]["n"]) != "2" {
		t.Fatalf("last notification %v, want n=2", es[len(es)-1])
	}
	for _, e := range es[1:] {
		if fmt.Sprint(e["n"]) != "2" {
			t.Fatalf("a change was notified twice or out of order: %v", es)
		}
	}
}

// TestNotifyTwoReplicas: two brokers with their notifiers on one NATS send
// each notification once, fire a periodic subscription once per interval,
// and fail over when the leader stops.
func TestNotifyTwoReplicas(t *testing.T) {
	b1, ns := startBroker(t, Options{})
	b2 := brokerOn(t, ns, Options{})
	rec := newReceiver(t)
	per := newReceiver(t)
	n1, stop1 := startNotifier(t, b1, NotifierOptions{NodeID: "one"})
	n2, stop2 := startNotifier(t, b2, NotifierOptions{NodeID: "two"})
	leader := waitLeading(t, n1, n2)
	subscribe(t, n1.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"format":"keyValues","endpoint":{"uri":"`+rec.URL+`"}}}`)
	perCreated := time.Now()
	subscribe(t, n2.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"timeInterval":0.3,"notification":{"endpoint":{"uri":"`+per.URL+`"}}}`)
	const writes = 40
	for i := 0; i < writes; i++ {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		write(t, func(ctx context.Context) (Outcome, error) {
			return b.Create(ctx, "", vehicle(t, fmt.Sprintf("urn:V:%d", i), `,"n":{"type":"Property","value":1}`))
		})
	}
	waitFor(t, 10*time.Second, "every notification", func() bool { return len(rec.entities()) >= writes })
	// Long enough for a duplicate to show up.
	perStart := len(per.notifications())
	time.Sleep(1500 * time.Millisecond)
	if got := len(rec.entities()); got != writes {
		t.Fatalf("%d notifications for %d changes", got, writes)
	}
	// Once per interval: over the whole life of the subscription, at most
	// one notification per interval boundary passed (two replicas would
	// send about twice as many), and the interval numbers never repeat.
	elapsed := time.Since(perCreated)
	all := per.notifications()
	if most := int(elapsed/(300*time.Millisecond)) + 1; len(all) > most || len(all)-perStart < 2 {
		t.Fatalf("%d periodic notifications in %s at 0.3s (at most %d), %d in the last 1.5s", len(all), elapsed, most, len(all)-perStart)
	}
	if d := per.notifications()[len(per.notifications())-1].Body["data"].([]any); len(d) != writes {
		t.Fatalf("a periodic notification carries %d entities, want %d", len(d), writes)
	}
	// Failover: the leader stops, the other takes over.
	other := n2
	if leader == n1 {
		stop1()
	} else {
		stop2()
		other = n1
	}
	waitLeading(t, other)
	write(t, func(ctx context.Context) (Outcome, error) {
		return other.b.Create(ctx, "", vehicle(t, "urn:V:after", `,"n":{"type":"Property","value":1}`))
	})
	waitFor(t, 10*time.Second, "a notification after failover", func() bool { return len(rec.entities()) == writes+1 })
}

func TestNotifyNATSEndpoint(t *testing.T) {
	b, ns := startBroker(t, Options{})
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("apps.vehicles", got); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"nats:///apps/vehicles","receiverInfo":[{"key":"X-App","value":"a"}]}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:n", `,"n":{"type":"Property","value":1}`))
	})
	select {
	case m := <-got:
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil || body["type"] != "Notification" || m.Header.Get("X-App") != "a" {
			t.Fatalf("NATS notification: %s %v", m.Data, m.Header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification on apps.vehicles")
	}
	waitFor(t, 5*time.Second, "nats sent metric-free counters", func() bool {
		d, _ := n.Store().Status(context.Background(), "", n.Store().snapshot("", false)[0].ID)
		return d.TimesSent == 1
	})
}

func TestNotifyPausedAndExpired(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	exp := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"isActive":false,"notification":{"endpoint":{"uri":"`+rec.URL+`/paused"}}}`)
	exps := subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"expiresAt":"`+exp+`","notification":{"endpoint":{"uri":"`+rec.URL+`/expired"}}}`)
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"`+rec.URL+`/active"}}}`)
	waitFor(t, 5*time.Second, "expiry", func() bool { return exps.Status(time.Now()) == StatusExpired })
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:p", `,"n":{"type":"Property","value":1}`))
	})
	waitFor(t, 10*time.Second, "the active subscription", func() bool { return len(rec.notifications()) >= 1 })
	time.Sleep(300 * time.Millisecond) // room for a wrong notification to arrive
	if got := len(rec.notifications()); got != 1 {
		t.Fatalf("%d notifications: paused or expired subscriptions notified", got)
	}
}

// TestNotifyMQTT: an mqtt:// endpoint on the embedded nats-server's MQTT
// listener receives the notification (QoS 1) as the NGSI-LD MQTT envelope,
// seen here by a NATS subscriber of the mapped subject.
func TestNotifyMQTT(t *testing.T) {
	// The listeners as piazza serve runs them: MQTT clients may not
	// publish into Piazza's log, but anywhere else.
	b, ns := startListenersBroker(t)
	nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("apps.notify.speed", got); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	reg := prometheus.NewRegistry()
	n, _ := startNotifier(t, b, NotifierOptions{Registerer: reg})
	waitLeading(t, n)
	subscribe(t, n.Store(), "city", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"format":"keyValues",
		"endpoint":{"uri":"mqtt://`+ns.MQTTAddr()+`/apps/notify/speed","notifierInfo":[{"key":"MQTT-QoS","value":"1"}],
		"receiverInfo":[{"key":"X-App","value":"a"}]}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "city", vehicle(t, "urn:V:m", `,"speed":{"type":"Property","value":42}`))
	})
	select {
	case m := <-got:
		var env struct {
			Metadata map[string]string `json:"metadata"`
			Body     map[string]any    `json:"body"`
		}
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("MQTT payload: %v: %s", err, m.Data)
		}
		data, _ := env.Body["data"].([]any)
		if env.Metadata["Content-Type"] != "application/json" || env.Metadata["NGSILD-Tenant"] != "city" || env.Metadata["X-App"] != "a" ||
			env.Body["type"] != "Notification" || len(data) != 1 || data[0].(map[string]any)["speed"] != float64(42) {
			t.Fatalf("MQTT notification: %s", m.Data)
		}
	case <-time.After(10 * time.Second):
		d, _ := n.Store().Status(context.Background(), "city", n.Store().snapshot("city", false)[0].ID)
		t.Fatalf("no MQTT notification; delivery status %+v", d)
	}
	waitFor(t, 5*time.Second, "the mqtt sent metric", func() bool {
		return testutil.ToFloat64(n.metrics.sent.WithLabelValues("mqtt")) == 1
	})
}

// TestNotifyCatchUp: a subscription the matcher learns of after changes it
// must notify have gone by (its copy of the subscriptions lagged) is caught
// up from the log sequence of its creation.
func TestNotifyCatchUp(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	subscribe(t, n.Store(), "", `{"type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"`+rec.URL+`/a"}}}`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:c1", `,"n":{"type":"Property","value":1}`))
	})
	waitFor(t, 10*time.Second, "the first subscription's notification", func() bool { return len(rec.notifications()) == 1 })
	ctx := context.Background()
	last, err := n.Store().streamLast(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// A subscription created just before that change, stored as if the
	// matcher had not seen it in time.
	v, _ := DecodeJSON([]byte(`{"id":"urn:ngsi-ld:Subscription:late","type":"Subscription","entities":[{"type":"Vehicle"}],"notification":{"endpoint":{"uri":"` + rec.URL + `/late"}}}`))
	s, err := ParseSubscription(v, SubscriptionParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Since, s.CreatedAt, s.ModifiedAt = last-1, now(), now()
	data, _ := s.encode()
	if _, err := n.Store().subs.Create(ctx, subKey("", s.ID), data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the late subscription's notification of the change before it was seen", func() bool {
		for _, nt := range rec.notifications() {
			if nt.Body["subscriptionId"] == "urn:ngsi-ld:Subscription:late" {
				return nt.Body["data"].([]any)[0].(map[string]any)["id"] == "urn:V:c1"
			}
		}
		return false
	})
}

// syncBuffer is a log sink safe for the notifier's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNotifierStartRetries: while the subscriptions bucket cannot be
// created (here a stream already owns its subjects, as a replica racing
// another on a fresh cluster may find), the notifier logs each failure,
// counts it, reports itself down, and keeps trying with backoff; once the
// obstacle is gone it starts and leads without a restart.
func TestNotifierStartRetries(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUATTER", Subjects: []string{"$KV." + subsBucket + ".>"}}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	n, _ := startNotifier(t, b, NotifierOptions{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		StartBackoff: 10 * time.Millisecond, StartMaxBackoff: 40 * time.Millisecond})
	failures := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "piazza_notifier_start_failures_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return -1
	}
	waitFor(t, 10*time.Second, "three failed starts", func() bool { return failures() >= 3 })
	if n.Started() || n.Leading() {
		t.Fatal("the notifier reports started while its bucket cannot be created")
	}
	if got := testutil.ToFloat64(n.metrics.up); got != 0 {
		t.Fatalf("piazza_notifier_up = %v while it cannot start", got)
	}
	if c := strings.Count(logs.String(), "notifier cannot start"); c < 3 {
		t.Fatalf("%d warnings logged for %v failures:\n%s", c, failures(), logs.String())
	}
	if err := b.js.DeleteStream(ctx, "SQUATTER"); err != nil {
		t.Fatal(err)
	}
	waitLeading(t, n)
	if !n.Started() || testutil.ToFloat64(n.metrics.up) != 1 {
		t.Fatal("the notifier leads but does not report itself up")
	}
}

// TestNotifyDeletions: deleted attributes and attribute instances show in
// notifications with an NGSI-LD Null value (after the instances left);
// deleting an entity fires attributeDeleted for its watched attributes,
// and entityDeleted shows createdAt/modifiedAt with sysAttrs and every
// attribute with its previous value with showChanges.
func TestNotifyDeletions(t *testing.T) {
	b, _ := startBroker(t, Options{})
	rec := newReceiver(t)
	n, _ := startNotifier(t, b, NotifierOptions{})
	waitLeading(t, n)
	sub := func(id, entity, extra, notification string) {
		subscribe(t, n.Store(), "", `{"id":"urn:ngsi-ld:Subscription:`+id+`","type":"Subscription","entities":[{"type":"Vehicle","id":"`+entity+`"}],`+
			extra+`,"notification":{`+notification+`"endpoint":{"uri":"`+rec.URL+`"}}}`)
	}
	sub("attr", "urn:V:d", `"notificationTrigger":["attributeDeleted"]`, ``)
	sub("inst", "urn:V:m", `"notificationTrigger":["attributeDeleted"],"watchedAttributes":["label"]`, ``)
	sub("show", "urn:V:d", `"notificationTrigger":["entityDeleted"]`, `"showChanges":true,`)
	sub("sys", "urn:V:d", `"notificationTrigger":["entityDeleted"]`, `"format":"keyValues","sysAttrs":true,`)
	sub("attrsys", "urn:V:d", `"notificationTrigger":["attributeDeleted"],"watchedAttributes":["name"]`, `"sysAttrs":true,`)
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:d", `,"name":{"type":"Property","value":"bus"},"speed":{"type":"Property","value":5}`))
	})
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Create(ctx, "", vehicle(t, "urn:V:m", `,"label":[{"type":"Property","value":"bus"},
			{"type":"Property","value":"autobus","datasetId":"urn:ngsi-ld:Dataset:fr"}]`))
	})
	write(t, func(ctx context.Context) (Outcome, error) { return b.DeleteAttr(ctx, "", "urn:V:d", "name", "", false) })
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.DeleteAttr(ctx, "", "urn:V:m", "label", "urn:ngsi-ld:Dataset:fr", false)
	})
	write(t, func(ctx context.Context) (Outcome, error) { return b.Delete(ctx, "", "urn:V:d") })
	write(t, func(ctx context.Context) (Outcome, error) {
		return b.Append(ctx, "", "urn:V:m", mustParse(t, `{"label":{"type":"Property","value":"car","datasetId":"urn:ngsi-ld:Dataset:it"}}`,
			ParseOptions{Fragment: true}), false)
	})
	write(t, func(ctx context.Context) (Outcome, error) { return b.DeleteAttr(ctx, "", "urn:V:m", "label", "", true) })
	bySub := func() map[string][]map[string]any {
		m := map[string][]map[string]any{}
		for _, nt := range rec.notifications() {
			sid := strings.TrimPrefix(nt.Body["subscriptionId"].(string), "urn:ngsi-ld:Subscription:")
			for _, d := range nt.Body["data"].([]any) {
				m[sid] = append(m[sid], d.(map[string]any))
			}
		}
		return m
	}
	waitFor(t, 10*time.Second, "seven notifications", func() bool { return len(rec.notifications()) >= 7 })
	got := bySub()
	canon := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	checks := []struct {
		sub  string
		i    int
		want string // members other than id, type and deletedAt
		del  bool
	}{
		{"attr", 0, `{"name":{"type":"Property","value":"urn:ngsi-ld:null"},"speed":{"type":"Property","value":5}}`, false},
		{"attr", 1, `{"speed":{"type":"Property","value":"urn:ngsi-ld:null"}}`, true},
		{"inst", 0, `{"label":[{"type":"Property","value":"bus"},{"datasetId":"urn:ngsi-ld:Dataset:fr","type":"Property","value":"urn:ngsi-ld:null"}]}`, false},
		{"show", 0, `{"speed":{"previousValue":5,"type":"Property","value":"urn:ngsi-ld:null"}}`, true},
		// Every instance deleted (deleteAll): the attribute is deleted, one Null.
		{"inst", 1, `{"label":{"type":"Property","value":"urn:ngsi-ld:null"}}`, false},
	}
	for _, c := range checks {
		t.Run(c.sub+fmt.Sprint(c.i), func(t *testing.T) {
			if len(got[c.sub]) <= c.i {
				t.Fatalf("%d notified entities: %v", len(got[c.sub]), got[c.sub])
			}
			e := got[c.sub][c.i]
			_, hasDel := e["deletedAt"]
			rest := map[string]any{}
			for k, v := range e {
				if k != "id" && k != "type" && k != "deletedAt" {
					rest[k] = v
				}
			}
			if canon(rest) != c.want || hasDel != c.del {
				t.Fatalf("notified %s (deletedAt %v), want %s (deletedAt %v)", canon(rest), hasDel, c.want, c.del)
			}
		})
	}
	t.Run("attrsys", func(t *testing.T) {
		if len(got["attrsys"]) != 1 { // name was gone before the entity
			t.Fatalf("%v", got["attrsys"])
		}
		for i, e := range got["attrsys"] {
			name, _ := e["name"].(map[string]any)
			if name == nil || name["value"] != NullURI || name["deletedAt"] == nil || name["createdAt"] == nil {
				t.Fatalf("notification %d: a deleted attribute under sysAttrs: %v", i, e)
			}
		}
	})
	t.Run("sys", func(t *testing.T) {
		if len(got["sys"]) != 1 {
			t.Fatalf("%v", got["sys"])
		}
		e := got["sys"][0]
		if len(e) != 5 || e["createdAt"] == nil || e["modifiedAt"] == nil || e["deletedAt"] == nil {
			t.Fatalf("entityDeleted with sysAttrs: %v", e)
		}
	})
}
