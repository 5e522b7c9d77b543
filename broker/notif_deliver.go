package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// subStatus are the delivery counters of one subscription while this
// notifier leads; flushStatus writes the changed ones to PIAZZA_NOTIFIER.
type subStatus struct {
	mu    sync.Mutex
	d     DeliveryStatus
	dirty bool
	// inflight is closed when the attempt under way ends (nil: none).
	inflight chan struct{}
}

// inflightWait bounds how long a status read waits for the attempt under
// way, so that a subscriber that answered a notification reads its outcome.
const inflightWait = time.Second

// status returns the counters of a subscription, loaded from NATS at first use.
func (n *Notifier) status(ctx context.Context, tenant, id string) *subStatus {
	ref := subRef(tenant, id)
	n.mu.Lock()
	st := n.stats[ref]
	n.mu.Unlock()
	if st != nil {
		return st
	}
	d, err := n.store.Status(ctx, tenant, id)
	if err != nil {
		n.log.Warn("delivery status unreadable; counting from zero", "tenant", tenant, "subscription", id, "err", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if st = n.stats[ref]; st == nil {
		st = &subStatus{d: d}
		n.stats[ref] = st
	}
	return st
}

// liveStatus returns the counters this leader holds for a subscription,
// after the attempt under way if it ends within inflightWait (or ctx).
func (n *Notifier) liveStatus(ctx context.Context, tenant, id string) (DeliveryStatus, bool) {
	n.mu.Lock()
	st := n.stats[subRef(tenant, id)]
	n.mu.Unlock()
	if st == nil {
		return DeliveryStatus{}, false
	}
	st.mu.Lock()
	ch := st.inflight
	st.mu.Unlock()
	if ch != nil {
		t := time.NewTimer(inflightWait)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.d, true
}

// flushStatus writes the counters that changed.
func (n *Notifier) flushStatus(ctx context.Context) {
	n.mu.Lock()
	var refs []string
	var sts []*subStatus
	for ref, st := range n.stats {
		refs = append(refs, ref)
		sts = append(sts, st)
	}
	n.mu.Unlock()
	// The statuses are written as asynchronous publishes to the bucket's
	// subjects and their acknowledgements awaited together: one round trip
	// for all, rather than one per subscription (with 1,000 busy
	// subscriptions, a sequence of puts every 100 ms took tens of
	// milliseconds of the server's time and showed in the notification
	// latency's tail).
	type write struct {
		st         *subStatus
		tenant, id string
		f          jetstream.PubAckFuture
		err        error
	}
	var writes []write
	prefix := "$KV." + n.store.state.Bucket() + "."
	for i, st := range sts {
		st.mu.Lock()
		if !st.dirty {
			st.mu.Unlock()
			continue
		}
		data, _ := json.Marshal(st.d)
		st.dirty = false
		st.mu.Unlock()
		tenant, id := splitRef(refs[i])
		if n.store.lookup(tenant, id) == nil {
			continue // deleted meanwhile
		}
		f, err := n.b.js.PublishAsync(prefix+statusKey(tenant, id), data)
		writes = append(writes, write{st: st, tenant: tenant, id: id, f: f, err: err})
	}
	for _, w := range writes {
		err := w.err
		if err == nil {
			select {
			case <-w.f.Ok():
			case err = <-w.f.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("delivery status not saved", "tenant", w.tenant, "subscription", w.id, "err", err)
			w.st.mu.Lock()
			w.st.dirty = true
			w.st.mu.Unlock()
		}
	}
}

// How often a delivery worker purges what it has acknowledged from its
// queue: every purgeEvery while busy, after purgeIdle without traffic.
const (
	purgeEvery = 30 * time.Second
	purgeIdle  = 2 * time.Second
)

// held is a queued notification taken from the queue and not yet acknowledged.
type held struct {
	msg jetstream.Msg
	p   notifPayload
}

// workLoop delivers the notifications of one subscription, restarting its
// consumer after a failure.
func (n *Notifier) workLoop(ctx context.Context, tenant, id string) {
	fresh := true
	for ctx.Err() == nil {
		err := n.work(ctx, tenant, id, fresh)
		if ctx.Err() != nil || n.store.lookup(tenant, id) == nil {
			return // stopped, or the subscription is gone
		}
		if err == nil {
			fresh = false
			continue
		}
		n.log.Warn("delivery worker stopped; restarting", "tenant", tenant, "subscription", id, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// maxBatch bounds the entities of one notification made of queued changes
// that were waiting together.
const maxBatch = 100

// work runs a subscription's consumer. A fresh start (this notifier just
// took the lead) makes the consumer anew, so that whatever the previous
// leader took and did not acknowledge comes first, in order.
//
// Changes of distinct entities that wait together are sent in one
// notification (up to maxBatch); two changes of one entity never share a
// notification, except under throttling, where the latest state wins.
func (n *Notifier) work(ctx context.Context, tenant, id string, fresh bool) error {
	st, err := n.b.js.Stream(ctx, notifyStream)
	if err != nil {
		return err
	}
	name := consumerName(tenant, id)
	subject := notifySubject(tenant, id)
	var start uint64 // first sequence to deliver (0: all the queue holds)
	if fresh {
		if c, err := st.Consumer(ctx, name); err == nil {
			if ci := c.CachedInfo(); ci != nil && ci.AckFloor.Stream > 0 {
				start = ci.AckFloor.Stream + 1
			}
		}
		if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
	}
	cons, err := st.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cfg := jetstream.ConsumerConfig{Durable: name,
			Description:   "notifications of subscription " + id,
			FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 5 * time.Minute, MaxAckPending: 4096, DeliverPolicy: jetstream.DeliverAllPolicy, MaxDeliver: -1,
			// What is acknowledged is purged from the queue (below), and
			// a new leader starts after the acknowledged floor: the
			// consumer's own state need not be on disk (a write per ack).
			MemoryStorage: true}
		if start > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
		}
		cons, err = st.CreateConsumer(ctx, cfg)
	}
	if err != nil {
		return err
	}
	q := n.queue(subRef(tenant, id))
	defer n.dropQueueState(subRef(tenant, id), q)
	var purged uint64
	// The first purge of a busy worker comes after purgeEvery plus a
	// random share of it: started together (a new leader starts every
	// worker at once), 1,000 workers purged within their first second,
	// each holding the stream, and notifications waited behind them.
	purgedAt := time.Now().Add(rand.N(purgeEvery))
	purge := func(ctx context.Context, force bool) {
		// The queue keeps what is not yet acknowledged: drop the rest. A
		// purge holds the stream while it checks every consumer (one per
		// subscription), so a busy worker does it every purgeEvery, and an
		// idle one after purgeIdle without traffic (every 2 s, 1,000 busy
		// subscriptions made 500 purges/s, the largest share of the
		// notification latency's tail).
		acked := q.acked.Load()
		if acked <= purged || !force && time.Since(purgedAt) < purgeEvery {
			return
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(acked+1)); err == nil {
			purged, purgedAt = acked, time.Now()
		}
	}
	// On the way out, what was delivered leaves the queue at once: the
	// acknowledgements themselves are not awaited, and the next leader's
	// fresh consumer starts after the queue's first message, so a
	// notification delivered just before a stop is not sent again.
	defer func() {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		purge(pctx, true)
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	// A pump moves messages into a channel, so that the worker can wait
	// for one or a throttling window, and see what else is waiting.
	ch := make(chan jetstream.Msg, 256)
	pumpDone := make(chan error, 1)
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			if err != nil {
				pumpDone <- err
				return
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer it.Stop()
	take := func(m jetstream.Msg) (held, bool) {
		var p notifPayload
		if err := json.Unmarshal(m.Data(), &p); err != nil {
			n.log.Warn("unreadable queued notification dropped", "subscription", id, "err", err)
			_ = m.Term()
			return held{}, false
		}
		return held{msg: m, p: p}, true
	}
	var pending []held // held by throttling, or carried to the next notification
	var lastSent time.Time
	for ctx.Err() == nil {
		s := n.store.lookup(tenant, id)
		if s == nil {
			return nil
		}
		purge(ctx, false)
		var window <-chan time.Time
		var windowTimer *time.Timer
		if len(pending) > 0 {
			if s.Throttling <= 0 || !time.Now().Before(lastSent.Add(s.Throttling)) {
				pending = n.sendBatch(ctx, s, pending, ch, take, q)
				lastSent = time.Now()
				continue
			}
			windowTimer = time.NewTimer(time.Until(lastSent.Add(s.Throttling)))
			window = windowTimer.C
		}
		var keepAlive <-chan time.Time
		if len(pending) > 0 {
			keepAlive = time.After(time.Minute)
		}
		var purgeLater <-chan time.Time
		if q.acked.Load() > purged {
			purgeLater = time.After(purgeIdle)
		}
		stopWindow := func() {
			if windowTimer != nil {
				windowTimer.Stop()
			}
		}
		select {
		case <-ctx.Done():
			stopWindow()
			return nil
		case <-window:
		case <-purgeLater:
			stopWindow()
			purge(ctx, true)
		case <-keepAlive:
			stopWindow()
			for _, h := range pending {
				_ = h.msg.InProgress()
			}
		case m, ok := <-ch:
			stopWindow()
			if !ok {
				select {
				case err := <-pumpDone:
					return err
				default:
					return nil
				}
			}
			h, ok := take(m)
			if !ok {
				continue
			}
			if md, err := m.Metadata(); err == nil {
				q.depth.Store(int64(md.NumPending) + int64(len(ch)+len(pending)+1))
			}
			if s.Status(time.Now()) != StatusActive {
				// Paused or expired: nothing is sent. (Behind held
				// messages it is only acknowledged: the queue is purged
				// up to the highest acknowledged message.)
				if len(pending) == 0 {
					q.ack([]held{h})
				} else {
					_ = m.Ack()
				}
				continue
			}
			pending = append(pending, h)
		}
	}
	return nil
}

// sendBatch delivers the pending messages with those of distinct entities
// waiting behind them, and returns a message it took and could not add
// (a second change of an entity already in the batch), if any.
func (n *Notifier) sendBatch(ctx context.Context, s *Subscription, pending []held, ch <-chan jetstream.Msg, take func(jetstream.Msg) (held, bool), q *queueState) []held {
	var carry []held
	if s.Throttling <= 0 {
		// One notification has one triggerReason: changes join it only
		// with the same trigger.
		ids := map[string]bool{}
		trigger := ""
		for _, h := range pending {
			for _, it := range h.p.Items {
				ids[it.ID] = true
				trigger = it.Trigger
			}
		}
	fill:
		for len(pending) < maxBatch && len(ch) > 0 {
			m, ok := <-ch
			if !ok {
				break
			}
			h, ok := take(m)
			if !ok {
				continue
			}
			for _, it := range h.p.Items {
				if it.ID == "" || ids[it.ID] || it.Trigger != trigger {
					carry = []held{h}
					break fill
				}
			}
			for _, it := range h.p.Items {
				ids[it.ID] = true
			}
			pending = append(pending, h)
		}
	}
	n.deliver(ctx, s, pending, q)
	if len(ch) == 0 && len(carry) == 0 {
		q.depth.Store(0)
	}
	return carry
}

// queueState is what a delivery worker tells about its queue.
type queueState struct {
	acked atomic.Uint64 // highest queue sequence acknowledged
	depth atomic.Int64  // notifications waiting
}

// ack acknowledges delivered (or given up) messages.
func (q *queueState) ack(hs []held) {
	for _, h := range hs {
		_ = h.msg.Ack()
		if md, err := h.msg.Metadata(); err == nil && md.Sequence.Stream > q.acked.Load() {
			q.acked.Store(md.Sequence.Stream)
		}
	}
}

// queue registers the queue state of a worker.
func (n *Notifier) queue(ref string) *queueState {
	q := &queueState{}
	n.mu.Lock()
	n.queues[ref] = q
	n.mu.Unlock()
	return q
}

func (n *Notifier) dropQueueState(ref string, q *queueState) {
	n.mu.Lock()
	if n.queues[ref] == q {
		delete(n.queues, ref)
	}
	n.mu.Unlock()
}

// queueDepth is the number of notifications waiting in every worker's queue.
func (n *Notifier) queueDepth() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var d int64
	for _, q := range n.queues {
		d += max(q.depth.Load(), 0)
	}
	return uint64(d)
}

// deliver sends one notification for the held messages (the latest state of
// each entity, in the order of their first change), with retries, and
// acknowledges them once it is delivered or dead-lettered.
func (n *Notifier) deliver(ctx context.Context, s *Subscription, hs []held, q *queueState) {
	data := &NotificationData{ID: "urn:ngsi-ld:Notification:" + newNotificationID(), SubscriptionID: s.ID}
	var commits []time.Time
	index := map[string]int{}
	for _, h := range hs {
		for _, it := range h.p.Items {
			ne, err := decodeNotified(it)
			if err != nil {
				n.log.Warn("unreadable entity in a queued notification", "subscription", s.ID, "err", err)
				continue
			}
			commits = append(commits, it.Commit)
			if i, ok := index[ne.Entity.ID]; ok && len(hs) > 1 {
				// A later change of the same entity within a throttling
				// window: the latest state wins, the first previous value stays.
				if data.Items[i].Previous != nil && ne.Previous != nil {
					ne.Previous = data.Items[i].Previous
				}
				data.Items[i] = ne
				continue
			}
			index[ne.Entity.ID] = len(data.Items)
			data.Items = append(data.Items, ne)
		}
	}
	ack := func() { q.ack(hs) }
	if len(data.Items) == 0 {
		ack()
		return
	}
	scheme := s.Notification.Endpoint.Scheme()
	st := n.status(ctx, s.Tenant, s.ID)
	var body []byte
	var ct, link string
	var err error
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return // stopped: no new attempt; the next leader delivers it
		}
		if cur := n.store.lookup(s.Tenant, s.ID); cur == nil {
			ack() // deleted meanwhile
			return
		} else {
			s = cur
		}
		data.NotifiedAt = now()
		body, ct, link, err = n.render.RenderNotification(ctx, s, data)
		// timesSent counts attempts (clause 5.2.14: timesFailed counts
		// the failed ones among them), from the moment one is made, so
		// that a subscriber that got a notification reads it counted.
		st.mu.Lock()
		st.d.TimesSent++
		st.d.LastNotification = data.NotifiedAt.UTC()
		st.dirty = true
		inflight := make(chan struct{})
		st.inflight = inflight
		st.mu.Unlock()
		if err == nil {
			sctx, release := sendContext(ctx)
			err = n.send(sctx, s, body, ct, link)
			release()
		}
		at := time.Now().UTC()
		st.mu.Lock()
		st.inflight = nil
		close(inflight)
		if err == nil {
			st.d.LastSuccess = at
		} else {
			st.d.TimesFailed++
			st.d.LastFailure = at
			st.d.LastFailureReason = err.Error()
		}
		st.dirty = true
		st.mu.Unlock()
		if err == nil {
			n.metrics.onSent(scheme, commits)
			ack()
			return
		}
		n.metrics.onFailed(scheme)
		if ctx.Err() != nil {
			return // stopped: the next leader delivers it
		}
		n.log.Debug("notification failed", "tenant", s.Tenant, "subscription", s.ID, "attempt", attempt, "err", err)
		if attempt >= n.opts.MaxAttempts {
			break
		}
		n.metrics.onRetry(scheme)
		wait := n.opts.RetryBackoff
		if c := s.Notification.Endpoint.Cooldown; c > 0 {
			wait = c
		}
		wait = min(wait<<(attempt-1), n.opts.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		for _, h := range hs {
			_ = h.msg.InProgress()
		}
	}
	// Given up: keep it as a dead letter, with the reason.
	dl := DeadLetter{Time: time.Now().UTC(), Subscription: s.ID, Endpoint: redactURL(s.Notification.Endpoint.URI.String()),
		Attempts: n.opts.MaxAttempts, Reason: err.Error()}
	if json.Valid(body) {
		dl.Notification = body
	} else {
		dl.Notification, _ = json.Marshal(string(body))
	}
	dlData, _ := json.Marshal(dl)
	if _, perr := n.b.js.Publish(ctx, deadSubject(s.Tenant, s.ID), dlData); perr != nil {
		n.log.Error("dead letter not stored; the notification stays queued", "tenant", s.Tenant, "subscription", s.ID, "err", perr)
		return
	}
	st.mu.Lock()
	st.d.DeadLettered++
	st.dirty = true
	st.mu.Unlock()
	n.metrics.onDead(scheme)
	n.log.Warn("notification dead-lettered", "tenant", s.Tenant, "subscription", s.ID,
		"endpoint", dl.Endpoint, "attempts", dl.Attempts, "reason", dl.Reason)
	ack()
}

func newNotificationID() string {
	id := newSubscriptionID()
	return id[strings.LastIndexByte(id, ':')+1:]
}

// decodeNotified reads one queued entity.
func decodeNotified(it notifItem) (NotifiedEntity, error) {
	ne := NotifiedEntity{Trigger: it.Trigger, Deleted: it.Deleted, DeletedAt: it.Commit}
	for _, n := range it.Nulls {
		if !slices.Contains(ne.Nulls, n.Name) {
			ne.Nulls = append(ne.Nulls, n.Name)
		}
	}
	if it.Deleted {
		var t struct {
			ID        string `json:"id"`
			Type      any    `json:"type"`
			DeletedAt string `json:"deletedAt"`
		}
		if err := json.Unmarshal(it.Entity, &t); err != nil {
			return ne, err
		}
		e := &Entity{ID: t.ID}
		switch x := t.Type.(type) {
		case string:
			e.Types = []string{x}
		case []any:
			for _, y := range x {
				if s, ok := y.(string); ok {
					e.Types = append(e.Types, s)
				}
			}
		}
		ne.Entity = e
		if at, err := time.Parse(time.RFC3339Nano, t.DeletedAt); err == nil {
			ne.DeletedAt = at
		}
		if len(it.Stamps) == 2 {
			e.CreatedAt, e.ModifiedAt = it.Stamps[0], it.Stamps[1]
		}
		addNulls(e, it.Nulls, true)
		if len(it.Previous) > 0 {
			var err error
			if ne.Previous, err = decodeStored(it.Previous); err != nil {
				return ne, err
			}
		}
		return ne, nil
	}
	e, err := decodeStored(it.Entity)
	if err != nil {
		return ne, err
	}
	ne.Entity = e
	addNulls(e, it.Nulls, false)
	if len(it.Previous) > 0 {
		if ne.Previous, err = decodeStored(it.Previous); err != nil {
			return ne, err
		}
	}
	return ne, nil
}

// addNulls adds to e an instance with an NGSI-LD Null value (clause
// 4.5.x: "urn:ngsi-ld:null", {"@none": "urn:ngsi-ld:null"} for a
// languageMap) for each deleted instance, after the instances left. Those
// of a deleted entity have a plain "urn:ngsi-ld:null" languageMap, as the
// ETSI suite expects.
func addNulls(e *Entity, nulls []nullRef, entityDeleted bool) {
	if len(nulls) == 0 {
		return
	}
	if e.Attrs == nil {
		e.Attrs = map[string]Instances{}
	}
	for _, n := range nulls {
		var v any = NullURI
		if n.Type == LanguageProperty && !entityDeleted {
			v = map[string]any{"@none": NullURI}
		}
		e.Attrs[n.Name] = append(e.Attrs[n.Name], &Attribute{Type: n.Type, Value: v, DatasetID: n.DatasetID,
			CreatedAt: n.Created, ModifiedAt: n.Modified})
	}
}

// send makes one delivery attempt.
// stopGrace is how long an attempt under way may go on once the notifier
// stops: one that the endpoint answers meanwhile is acknowledged rather than
// sent again by the next leader.
const stopGrace = 2 * time.Second

// sendContext is ctx for an attempt, ended stopGrace after ctx ends;
// release frees it when the attempt is over.
func sendContext(ctx context.Context) (sctx context.Context, release func()) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, cancel) })
	return sctx, func() {
		stop()
		cancel()
	}
}

func (n *Notifier) send(ctx context.Context, s *Subscription, body []byte, ct, link string) error {
	ep := s.Notification.Endpoint
	if h := ep.URI.Hostname(); h != "" && !HostAllowed(h, n.opts.AllowedHosts) {
		return fmt.Errorf("host %q is not in the allowed notification hosts", h)
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = n.opts.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch ep.Scheme() {
	case "http", "https":
		return n.sendHTTP(ctx, s, body, ct, link)
	case "mqtt", "mqtts":
		return n.sendMQTT(ctx, s, body, ct, link)
	case "nats":
		return n.sendNATS(ctx, s, body, ct, link)
	}
	return fmt.Errorf("scheme %q is not supported", ep.URI.Scheme)
}

func (n *Notifier) sendHTTP(ctx context.Context, s *Subscription, body []byte, ct, link string) error {
	ep := s.Notification.Endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URI.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ct)
	if link != "" {
		req.Header.Set("Link", link)
	}
	if s.Tenant != "" {
		req.Header.Set("NGSILD-Tenant", s.Tenant)
	}
	req.Header.Set("User-Agent", "piazza-notifier")
	for _, kv := range ep.ReceiverInfo {
		req.Header.Set(kv.Key, kv.Value)
	}
	res, err := n.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %s: %w", ep.Timeout, ctx.Err())
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("endpoint answered %s", res.Status)
	}
	return nil
}

// mqttEnvelope is the payload of an MQTT notification: the headers an HTTP
// notification would carry, and the notification.
type mqttEnvelope struct {
	Metadata map[string]string `json:"metadata"`
	Body     json.RawMessage   `json:"body"`
}

func (n *Notifier) sendMQTT(ctx context.Context, s *Subscription, body []byte, ct, link string) error {
	ep := s.Notification.Endpoint
	md := map[string]string{"Content-Type": ct}
	if link != "" {
		md["Link"] = link
	}
	if s.Tenant != "" {
		md["NGSILD-Tenant"] = s.Tenant
	}
	var qos byte
	for _, kv := range ep.NotifierInfo {
		if kv.Key == "MQTT-QoS" {
			q, _ := strconv.Atoi(kv.Value)
			qos = byte(q)
		}
	}
	for _, kv := range ep.ReceiverInfo {
		md[kv.Key] = kv.Value
	}
	payload, err := json.Marshal(mqttEnvelope{Metadata: md, Body: body})
	if err != nil {
		return err
	}
	return n.mqtt.Publish(ctx, ep.URI, qos, payload)
}

// sendNATS publishes on the subject of a nats:// endpoint (the path, with
// '/' as the token separator), on Piazza's own connection when the URI
// names no host, else on a connection to that server.
func (n *Notifier) sendNATS(ctx context.Context, s *Subscription, body []byte, ct, link string) error {
	ep := s.Notification.Endpoint
	subj := natsSubjectOf(ep.URI)
	nc := n.b.nc
	if ep.URI.Host != "" {
		var err error
		if nc, err = n.natsTo(ep.URI); err != nil {
			return err
		}
	}
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set("Content-Type", ct)
	if link != "" {
		m.Header.Set("Link", link)
	}
	if s.Tenant != "" {
		m.Header.Set("NGSILD-Tenant", s.Tenant)
	}
	for _, kv := range ep.ReceiverInfo {
		m.Header.Set(kv.Key, kv.Value)
	}
	if err := nc.PublishMsg(m); err != nil {
		return err
	}
	return nc.FlushWithContext(ctx)
}

func natsSubjectOf(u *url.URL) string {
	return strings.ReplaceAll(strings.Trim(u.Path, "/"), "/", ".")
}

// natsTo returns a connection to the NATS server an endpoint names.
func (n *Notifier) natsTo(u *url.URL) (*nats.Conn, error) {
	key := u.Scheme + "://" + u.Host
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.natsConn[key]; c != nil && !c.IsClosed() {
		return c, nil
	}
	srv := &url.URL{Scheme: "nats", Host: u.Host, User: u.User}
	c, err := nats.Connect(srv.String(), nats.Name("piazza-notifier"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u.Host, err)
	}
	n.natsConn[key] = c
	return c, nil
}
