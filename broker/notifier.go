package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The notifier turns committed changes into NGSI-LD notifications.
//
// One notifier in the cluster leads at a time: it holds the "leader" key of
// the PIAZZA_NOTIFIER_LEASE bucket, whose TTL makes the key vanish when its
// holder stops renewing it, so that another replica takes over. The leader
//
//  1. matches the log: per tenant, an ordered consumer reads the tenant's
//     stream from the last handled sequence (kept in PIAZZA_NOTIFIER as
//     progress.<tenant>), matches each change against the tenant's
//     subscriptions, and publishes one message per subscription and change
//     on piazza_notify.<tenant>.<sub> (stream PIAZZA_NOTIFICATIONS), with a message id made of the subscription and the sequence,
//     so that a change handled twice (after a crash, before progress was
//     saved) is queued once. Progress is saved only after the queue has
//     acknowledged every notification before it: a change committed just
//     before a crash is notified after the restart.
//  2. ticks the periodic subscriptions (timeInterval): one message per
//     interval, with a message id made of the interval's number, so that a
//     failover never sends an interval twice.
//  3. delivers: one worker per subscription, each with its own durable
//     consumer of its queue subject, delivering in order with its own
//     timeouts, retries and backoff; a hanging endpoint holds up only its
//     own subscription. After MaxAttempts the notification goes to the
//     PIAZZA_DEADLETTERS stream with the reason. Throttled subscriptions
//     hold changes until the end of the window and then send one
//     notification with the latest state of each entity.
//
// Replicas that do not lead only campaign. Every notification is thus
// matched and sent by one process, once (at least once across a crash).

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// Store holds the subscriptions; nil builds one on the broker.
	Store *SubscriptionStore
	// Renderer writes notification bodies; nil is CanonicalRenderer.
	Renderer NotificationRenderer
	// Registerer receives the notifier's metrics; nil exports none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// HTTPClient delivers http(s) notifications; nil builds one that does
	// not follow redirects.
	HTTPClient *http.Client
	// MQTT publishes mqtt(s) notifications; nil builds one (closed by Close).
	MQTT *MQTTPublisher
	// AllowedHosts, if not empty, are the only hosts notifications may go
	// to; checked again at each delivery (see HostAllowed).
	AllowedHosts []string
	// MaxAttempts is how many times a notification is tried before it is
	// dead-lettered (default 5).
	MaxAttempts int
	// RetryBackoff is the first wait after a failed attempt (default 1s; a
	// subscription's endpoint.cooldown overrides it), doubled at each
	// further failure up to MaxBackoff (default 1m).
	RetryBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery attempt when the endpoint names none
	// (default 10s).
	Timeout time.Duration
	// LeaseTTL is how long a leader that stopped renewing keeps the lead
	// (default 10s); it is renewed every third of it.
	LeaseTTL time.Duration
	// NodeID names this notifier in the lease (default random).
	NodeID string
	// StartBackoff is the first wait after Run failed to set up its NATS
	// buckets and streams (default 1s), doubled at each further failure up
	// to StartMaxBackoff (default 30s). Run keeps trying until its context
	// ends; each failure is logged as a warning and counted in
	// piazza_notifier_start_failures_total, and piazza_notifier_up stays 0.
	StartBackoff, StartMaxBackoff time.Duration
}

// Notifier matches changes against subscriptions and delivers
// notifications; see the comment above. Create it with NewNotifier, run it
// with Run; it is safe for concurrent use.
type Notifier struct {
	b       *Broker
	store   *SubscriptionStore
	opts    NotifierOptions
	log     *slog.Logger
	metrics *notifierMetrics
	render  NotificationRenderer
	client  *http.Client
	mqtt    *MQTTPublisher
	ownMQTT bool
	started atomic.Bool

	mu       sync.Mutex
	leading  bool
	natsConn map[string]*nats.Conn // other NATS servers named by nats:// endpoints
	stats    map[string]*subStatus // tenant\x00id -> counters (leader only)
	queues   map[string]*queueState
}

// NewNotifier builds a notifier on a broker. It does not touch NATS until Run.
func NewNotifier(b *Broker, o NotifierOptions) (*Notifier, error) {
	if o.Logger == nil {
		o.Logger = b.opts.Logger
	}
	if o.Store == nil {
		o.Store = NewSubscriptionStore(b, SubscriptionStoreOptions{Logger: o.Logger})
	}
	if o.Renderer == nil {
		o.Renderer = CanonicalRenderer{}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.MaxBackoff < o.RetryBackoff {
		o.MaxBackoff = o.RetryBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.StartBackoff <= 0 {
		o.StartBackoff = time.Second
	}
	if o.StartMaxBackoff < o.StartBackoff {
		o.StartMaxBackoff = max(30*time.Second, o.StartBackoff)
	}
	if o.NodeID == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		o.NodeID = hex.EncodeToString(r[:])
	}
	n := &Notifier{b: b, store: o.Store, opts: o, log: o.Logger.With("component", "notifier", "node", o.NodeID),
		render: o.Renderer, client: o.HTTPClient, mqtt: o.MQTT, natsConn: map[string]*nats.Conn{}, stats: map[string]*subStatus{}, queues: map[string]*queueState{}}
	if n.client == nil {
		n.client = &http.Client{
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 256,
				IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 0},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if n.mqtt == nil {
		n.mqtt = NewMQTTPublisher(o.Logger)
		n.ownMQTT = true
	}
	var err error
	if n.metrics, err = newNotifierMetrics(o.Registerer, n.activeSubscriptions); err != nil {
		return nil, fmt.Errorf("broker: notifier metrics: %w", err)
	}
	return n, nil
}

// Store is the subscription store the notifier follows.
func (n *Notifier) Store() *SubscriptionStore { return n.store }

// Leading reports whether this notifier is the cluster's leader now.
func (n *Notifier) Leading() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leading
}

func (n *Notifier) activeSubscriptions() float64 {
	now := time.Now()
	c := 0
	for _, s := range n.store.snapshot("", true) {
		if s.Status(now) == StatusActive {
			c++
		}
	}
	return float64(c)
}

// Run campaigns for the lead and, while leading, matches and delivers,
// until ctx ends. While NATS cannot be used (the buckets and streams cannot
// be created, as when several replicas start at once on a fresh cluster)
// it keeps trying with backoff (StartBackoff doubled up to StartMaxBackoff),
// logging each failure; Started reports false meanwhile. On return the
// lead is released, so another replica takes over at once. It returns nil.
func (n *Notifier) Run(ctx context.Context) error {
	lease, ok := n.setUp(ctx)
	if !ok {
		return nil
	}
	defer func() {
		n.started.Store(false)
		n.metrics.setUp(false)
		if n.ownMQTT {
			n.mqtt.Close()
		}
		n.mu.Lock()
		for _, c := range n.natsConn {
			c.Close()
		}
		n.natsConn = map[string]*nats.Conn{}
		n.mu.Unlock()
	}()
	every := n.opts.LeaseTTL / 3
	for {
		rev, err := lease.Create(ctx, "leader", []byte(n.opts.NodeID))
		if err == nil {
			n.lead(ctx, lease, rev)
		} else if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			n.log.Warn("notifier lease unavailable", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// setUp creates the notifier's buckets and streams, retrying with backoff
// until it succeeds or ctx ends (ok false).
func (n *Notifier) setUp(ctx context.Context) (jetstream.KeyValue, bool) {
	wait := n.opts.StartBackoff
	for attempt := 1; ; attempt++ {
		err := n.store.init(ctx)
		if err == nil {
			var lease jetstream.KeyValue
			lease, err = n.b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: leaseBucket,
				Description: "Piazza notifier leader", Storage: jetstream.FileStorage, Replicas: n.b.opts.Replicas,
				TTL: n.opts.LeaseTTL, History: 1})
			if err == nil {
				if attempt > 1 {
					n.log.Info("notifier started", "attempts", attempt)
				}
				n.started.Store(true)
				n.metrics.setUp(true)
				return lease, true
			}
			err = fmt.Errorf("broker: notifier lease bucket: %w", translateNATS(err))
		}
		if ctx.Err() != nil {
			return nil, false
		}
		// NATS may be starting, unreachable, or busy with another replica
		// creating the same buckets: try again rather than run without
		// notifications. The API still serves meanwhile.
		n.metrics.onStartFailure()
		n.log.Warn("notifier cannot start: no notifications from this node until it does; retrying",
			"err", err, "attempt", attempt, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
		wait = min(2*wait, n.opts.StartMaxBackoff)
	}
}

// Started reports whether Run has set up its NATS buckets and streams, so
// that this node campaigns for the lead and can notify; false before Run,
// while it retries, and after it returned.
func (n *Notifier) Started() bool { return n.started.Load() }

// lead runs the leader's work until the lease is lost or ctx ends.
func (n *Notifier) lead(ctx context.Context, lease jetstream.KeyValue, rev uint64) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Counters are read afresh: another leader may have moved them meanwhile.
	n.mu.Lock()
	n.stats = map[string]*subStatus{}
	n.mu.Unlock()
	n.setLeading(true)
	defer n.setLeading(false)
	live := n.liveStatus
	n.store.live.Store(&live)
	defer n.store.live.CompareAndSwap(&live, nil)
	n.log.Info("notifier leading")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.manage(lctx)
	}()
	t := time.NewTicker(n.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-lctx.Done():
			cancel()
			wg.Wait()
			// Give the lead away at once, so that another replica takes over.
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lease.Delete(dctx, "leader", jetstream.LastRevision(rev))
			dcancel()
			n.log.Info("notifier stopped leading")
			return
		case <-t.C:
			nrev, err := lease.Update(lctx, "leader", []byte(n.opts.NodeID), rev)
			if err != nil {
				if lctx.Err() == nil {
					n.log.Warn("notifier lost the lead", "err", err)
				}
				cancel()
				wg.Wait()
				return
			}
			rev = nrev
		}
	}
}

func (n *Notifier) setLeading(v bool) {
	n.mu.Lock()
	n.leading = v
	n.mu.Unlock()
	if !v {
		n.metrics.setQueue(0)
	}
}

// manage keeps one matcher per tenant with subscriptions, one delivery
// worker per subscription and one ticker per periodic subscription.
func (n *Notifier) manage(ctx context.Context) {
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	matchers := map[string]*running{}
	workers := map[string]*running{}
	tickers := map[string]*running{}
	start := func(m map[string]*running, key string, f func(context.Context)) {
		c, cancel := context.WithCancel(ctx)
		r := &running{cancel: cancel, done: make(chan struct{})}
		m[key] = r
		go func() {
			defer close(r.done)
			f(c)
		}()
	}
	stop := func(m map[string]*running, key string) {
		if r := m[key]; r != nil {
			r.cancel()
			<-r.done
			delete(m, key)
		}
	}
	flush := time.NewTicker(100 * time.Millisecond)
	defer flush.Stop()
	depth := time.NewTicker(time.Second)
	defer depth.Stop()
	defer func() {
		for _, m := range []map[string]*running{tickers, matchers, workers} {
			for k := range m {
				stop(m, k)
			}
		}
		n.flushStatus(context.Background())
	}()
	for {
		changed := n.store.changes()
		now := time.Now()
		subs := n.store.snapshot("", true)
		want := map[string]*Subscription{}
		for _, s := range subs {
			want[subRef(s.Tenant, s.ID)] = s
		}
		for _, t := range n.store.tenants() {
			if matchers[t] == nil {
				start(matchers, t, func(c context.Context) { n.matchLoop(c, t) })
			}
		}
		for key, s := range want {
			if r := workers[key]; r != nil && finished(r.done) {
				delete(workers, key) // it saw its subscription gone: one of that id is back
			}
			if workers[key] == nil {
				start(workers, key, func(c context.Context) { n.workLoop(c, s.Tenant, s.ID) })
			}
			if s.Periodic() && s.Status(now) == StatusActive {
				if r := tickers[key]; r != nil && finished(r.done) {
					delete(tickers, key)
				}
				if tickers[key] == nil {
					start(tickers, key, func(c context.Context) { n.tickLoop(c, s.Tenant, s.ID) })
				}
			} else {
				stop(tickers, key)
			}
		}
		for key := range workers {
			if want[key] == nil {
				stop(tickers, key)
				stop(workers, key)
				n.dropQueue(ctx, key)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// Let a burst of changes (many subscriptions created at once) settle.
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		case <-flush.C:
			n.flushStatus(ctx)
			continue
		case <-depth.C:
			n.metrics.setQueue(n.queueDepth())
		}
	}
}

// finished reports whether a goroutine's done channel is closed.
func finished(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// subRef is the key of a subscription in the notifier's maps.
func subRef(tenant, id string) string { return tenant + "\x00" + id }

func splitRef(ref string) (string, string) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == 0 {
			return ref[:i], ref[i+1:]
		}
	}
	return "", ref
}

// consumerName is the durable consumer of a subscription's queue.
func consumerName(tenant, id string) string {
	h := sha256.Sum256([]byte(subRef(tenant, id)))
	return "notify_" + hex.EncodeToString(h[:16])
}

// dropQueue deletes the queue of a deleted subscription.
func (n *Notifier) dropQueue(ctx context.Context, ref string) {
	tenant, id := splitRef(ref)
	st, err := n.b.js.Stream(ctx, notifyStream)
	if err != nil {
		return
	}
	_ = st.DeleteConsumer(ctx, consumerName(tenant, id))
	_ = st.Purge(ctx, jetstream.WithPurgeSubject(notifySubject(tenant, id)))
	n.mu.Lock()
	delete(n.stats, ref)
	n.mu.Unlock()
}

// notifPayload is a message of the notification queue: the entities of one
// notification, in the stored form, and when their change was committed.
type notifPayload struct {
	Items  []notifItem `json:"items"`
	Commit time.Time   `json:"commit"`
}

type notifItem struct {
	ID       string          `json:"id"`
	Entity   json.RawMessage `json:"e"`
	Previous json.RawMessage `json:"p,omitempty"`
	Deleted  bool            `json:"del,omitempty"`
	Trigger  string          `json:"trigger,omitempty"`
	Commit   time.Time       `json:"commit"`
	// Nulls are the attribute instances the change deleted that the
	// notification shows with an NGSI-LD Null value; Stamps are the
	// createdAt and modifiedAt of a deleted entity.
	Nulls  []nullRef   `json:"nulls,omitempty"`
	Stamps []time.Time `json:"stamps,omitempty"`
}

// nullRef names a deleted attribute instance: attribute, datasetId ("" the
// default instance), kind, and the instance's createdAt and modifiedAt.
type nullRef struct {
	Name      string    `json:"n"`
	DatasetID string    `json:"d,omitempty"`
	Type      AttrType  `json:"t"`
	Created   time.Time `json:"c,omitzero"`
	Modified  time.Time `json:"m,omitzero"`
}

// nullsOf names the attributes of e among names (every one with names
// nil), deleted whole: one Null each, of the kind and times of its default
// instance (else its first).
func nullsOf(e *Entity, names []string) []nullRef {
	if e == nil {
		return nil
	}
	var out []nullRef
	for _, n := range e.AttrNames() {
		is := e.Attrs[n]
		if names != nil && !slices.Contains(names, n) || len(is) == 0 {
			continue
		}
		a := is.Instance("")
		if a == nil {
			a = is[0]
		}
		out = append(out, nullRef{Name: n, Type: a.Type, Created: a.CreatedAt, Modified: a.ModifiedAt})
	}
	return out
}

// queueMsg builds a queue message with its deduplication id.
func queueMsg(tenant, id, msgID string, p notifPayload) (*nats.Msg, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(notifySubject(tenant, id))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return m, nil
}

// matchLoop runs the matcher of a tenant, restarting it after a failure.
func (n *Notifier) matchLoop(ctx context.Context, tenant string) {
	for ctx.Err() == nil {
		err := n.match(ctx, tenant)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			n.log.Warn("matcher stopped; restarting", "tenant", tenant, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// matcher is the state of one tenant's matcher.
type matcher struct {
	n       *Notifier
	tenant  string
	st      jetstream.Stream
	prev    map[string]prevState // id -> last state seen (for changes)
	pending []jetstream.PubAckFuture
	done    uint64 // last sequence handled
	saved   uint64 // last sequence saved as progress
	savedAt time.Time
	// known are the subscriptions the matcher has seen, as of the store's
	// version knownAt; one it learns of late is caught up (catchUp).
	known   map[string]bool
	knownAt uint64
	// saving delivers the outcome of the checkpoint running in the
	// background, if one is.
	saving chan error
}

// logMsg is one message of a tenant's log.
type logMsg struct {
	subject string
	header  nats.Header
	data    []byte
	seq     uint64
	time    time.Time
}

type prevState struct {
	seq  uint64
	data []byte // the stored form; nil: deleted
}

// maxPrevStates bounds the matcher's cache of last states (about 600
// bytes each, the stored form as the log holds it).
const maxPrevStates = 50000

func (n *Notifier) match(ctx context.Context, tenant string) error {
	st, err := n.b.js.Stream(ctx, StreamName(tenant))
	if err != nil {
		return err
	}
	mt := &matcher{n: n, tenant: tenant, st: st, prev: map[string]prevState{}}
	if e, err := n.store.state.Get(ctx, progressKey(tenant)); err == nil {
		mt.done, _ = strconv.ParseUint(string(e.Value()), 10, 64)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	var minSince uint64 = 1<<63 - 1
	for _, s := range n.store.snapshot(tenant, false) {
		minSince = min(minSince, s.Since)
	}
	if minSince == 1<<63-1 {
		return nil // no subscription any more
	}
	mt.done = max(mt.done, minSince)
	mt.saved, mt.savedAt = mt.done, time.Now()
	mt.knownAt = n.store.currentVersion()
	mt.known = map[string]bool{}
	for _, s := range n.store.tenantSubs(tenant) {
		mt.known[s.ID] = true
	}
	cons, err := n.b.js.OrderedConsumer(ctx, st.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: mt.done + 1})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return err
	}
	defer it.Stop()
	n.log.Debug("matcher started", "tenant", tenant, "from", mt.done+1)
	for {
		wait, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := it.Next(jetstream.NextContext(wait))
		cancel()
		if ctx.Err() != nil {
			return mt.checkpoint(context.Background(), true)
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				if err := mt.catchUp(ctx, mt.done); err != nil {
					return err
				}
				if err := mt.checkpoint(ctx, true); err != nil {
					return err
				}
				continue
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		if err := mt.catchUp(ctx, md.Sequence.Stream-1); err != nil {
			return err
		}
		lm := logMsg{subject: m.Subject(), header: m.Headers(), data: m.Data(), seq: md.Sequence.Stream, time: md.Timestamp}
		if err := mt.handle(ctx, lm, nil); err != nil {
			return err
		}
		mt.done = md.Sequence.Stream
		if err := mt.checkpoint(ctx, false); err != nil {
			return err
		}
	}
}

// maxCatchUp bounds the log a subscription learnt of late is matched against.
const maxCatchUp = 100000

// catchUp matches the subscriptions the matcher did not know yet against
// the changes after their creation up to sequence upTo: the local copy of
// the subscriptions may learn of one after the first changes it must
// notify have gone by. Their notifications have the same deduplication ids
// as they would have had, so nothing is queued twice.
func (mt *matcher) catchUp(ctx context.Context, upTo uint64) error {
	v := mt.n.store.currentVersion()
	if v == mt.knownAt {
		return nil
	}
	mt.knownAt = v
	for _, s := range mt.n.store.tenantSubs(mt.tenant) {
		if mt.known[s.ID] {
			continue
		}
		mt.known[s.ID] = true
		if s.Periodic() || s.Since >= upTo {
			continue
		}
		from := max(s.Since+1, upTo-min(upTo, maxCatchUp))
		for seq := from; seq <= upTo; seq++ {
			raw, err := mt.st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("catching up subscription %s: %w", s.ID, err)
			}
			lm := logMsg{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence, time: raw.Time}
			if err := mt.handle(ctx, lm, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpoint saves progress once every notification queued so far is
// acknowledged: at once with force, else every 256 notifications or second.
// An unforced checkpoint runs in the background, one at a time, so that the
// matching of the next changes does not wait for the queue's acknowledgements
// and the progress write (it did, which showed in the notification latency's
// tail); its error, if any, stops the matcher at the next checkpoint, which
// then starts again from the progress last saved.
func (mt *matcher) checkpoint(ctx context.Context, force bool) error {
	if mt.saving != nil {
		if force || len(mt.pending) >= maxUnsavedAcks {
			select {
			case err := <-mt.saving:
				mt.saving = nil
				if err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case err := <-mt.saving:
				mt.saving = nil
				if err != nil {
					return err
				}
			default:
				return nil // the previous one is still at work
			}
		}
	}
	if mt.done == mt.saved {
		return nil
	}
	if !force && len(mt.pending) < 256 && time.Since(mt.savedAt) < time.Second {
		return nil
	}
	pending, seq := mt.pending, mt.done
	mt.pending = make([]jetstream.PubAckFuture, 0, cap(pending))
	mt.saved, mt.savedAt = seq, time.Now()
	if force {
		return mt.save(ctx, pending, seq)
	}
	done := make(chan error, 1)
	mt.saving = done
	// Not cut short when the matcher stops: what was queued is saved as
	// done, so that the next leader does not match it again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	go func() {
		defer cancel()
		done <- mt.save(sctx, pending, seq)
	}()
	return nil
}

// maxUnsavedAcks bounds the notifications queued while a background
// checkpoint runs: past it, the matcher waits for that checkpoint.
const maxUnsavedAcks = 8192

// save waits for the acknowledgements of pending, then records seq as the
// tenant's progress.
func (mt *matcher) save(ctx context.Context, pending []jetstream.PubAckFuture, seq uint64) error {
	for _, f := range pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("queueing a notification: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if _, err := mt.n.store.state.Put(ctx, progressKey(mt.tenant), []byte(strconv.FormatUint(seq, 10))); err != nil {
		return fmt.Errorf("saving progress: %w", err)
	}
	return nil
}

// change is what a message of the log did to an entity.
type change struct {
	cur, prev *Entity // prev nil: none or unknown
	prevKnown bool
	deleted   bool
	created   bool
	// attribute names created, updated and deleted by the change (an
	// attribute one instance of which was deleted counts as deleted)
	attrsCreated, attrsUpdated, attrsDeleted []string
	// gone are the attribute instances the change deleted (not set for an
	// entity deletion)
	gone []nullRef
}

// handle matches one message of the log against the subscriptions (or
// only against one of them, when catching it up).
func (mt *matcher) handle(ctx context.Context, m logMsg, only *Subscription) error {
	seq := m.seq
	_, _, id, err := ParseSubject(m.subject)
	if err != nil {
		return nil
	}
	h := m.header
	types := h.Values(HeaderType)
	now := time.Now()
	subs := mt.n.store.tenantSubs(mt.tenant)
	if only != nil {
		subs = []*Subscription{only}
	}
	var cands []*Subscription
	for _, s := range subs {
		if s.Periodic() || seq <= s.Since || s.Status(now) != StatusActive {
			continue
		}
		if !selectsEntity(s, id, types) {
			continue
		}
		cands = append(cands, s)
	}
	del := h.Get(HeaderOp) == OpDelete
	if only != nil && len(cands) == 0 {
		return nil
	}
	if len(cands) == 0 {
		// Keep the state for the next change of this id.
		if del {
			mt.remember(id, seq, nil)
		} else {
			mt.remember(id, seq, m.data)
		}
		return nil
	}
	ch := change{deleted: del}
	ch.prev, ch.prevKnown = mt.previous(ctx, id, h.Get(jetstream.ExpectedLastSubjSeqHeader), only != nil)
	if del {
		ch.cur = ch.prev
		if ch.cur == nil {
			ch.cur = &Entity{ID: id, Types: types}
		}
	} else {
		if ch.cur, err = decodeStored(m.data); err != nil {
			mt.n.log.Warn("unreadable change skipped", "tenant", mt.tenant, "seq", seq, "err", err)
			return nil
		}
		ch.created = ch.prev == nil && (ch.prevKnown || h.Get(HeaderOp) == OpCreate)
		ch.diff()
	}
	resolve := func(rid string) *Entity {
		e, err := mt.n.b.Get(ctx, mt.tenant, rid)
		if err != nil {
			return nil
		}
		return e
	}
	if del && ch.prev != nil {
		ch.attrsDeleted = ch.prev.AttrNames()
	}
	for _, s := range cands {
		trigger := s.fires(&ch)
		if trigger == "" || !matches(ch.cur, Query{Q: s.Q, Geo: s.Geo, Scope: s.Scope}, resolve) {
			continue
		}
		it := notifItem{ID: id, Entity: m.data, Trigger: trigger, Commit: m.time, Deleted: del, Nulls: ch.gone}
		if s.Notification.ShowChanges && ch.prev != nil {
			it.Previous = encodeStored(ch.prev)
		}
		if del && ch.prev != nil {
			// A deleted entity shows its attributes as NGSI-LD Null: all
			// of them with showChanges (each with its previous value), the
			// watched ones when attributeDeleted fired.
			it.Stamps = []time.Time{ch.prev.CreatedAt, ch.prev.ModifiedAt}
			switch {
			case s.Notification.ShowChanges:
				it.Nulls = nullsOf(ch.prev, nil)
			case trigger == TriggerAttributeDeleted:
				it.Nulls = nullsOf(ch.prev, s.WatchedAttributes)
			}
		}
		qm, err := queueMsg(mt.tenant, s.ID, keyToken(s.ID)+":"+strconv.FormatUint(seq, 10), notifPayload{Items: []notifItem{it}, Commit: m.time})
		if err != nil {
			return err
		}
		f, err := mt.n.b.js.PublishMsgAsync(qm)
		if err != nil {
			return fmt.Errorf("queueing a notification: %w", translateNATS(err))
		}
		mt.pending = append(mt.pending, f)
	}
	if only != nil {
		return nil // catching up: the cache is at the head of the log
	}
	if del {
		mt.remember(id, seq, nil)
	} else {
		mt.remember(id, seq, m.data)
	}
	return nil
}

func (mt *matcher) remember(id string, seq uint64, data []byte) {
	if len(mt.prev) >= maxPrevStates {
		clear(mt.prev)
	}
	mt.prev[id] = prevState{seq: seq, data: data}
}

// previous returns the state an entity had before a change (nil if it had
// none) and whether that is known: from the cache, or the log message whose
// sequence the change's writer expected (every commit carries it, in the
// Nats-Expected-Last-Subject-Sequence header).
func (mt *matcher) previous(ctx context.Context, id string, expected string, catchingUp bool) (*Entity, bool) {
	prevSeq, err := strconv.ParseUint(expected, 10, 64)
	if err != nil {
		// No expectation recorded: the last state this matcher saw of the
		// id is the one before, since it reads the log in order.
		if p, ok := mt.prev[id]; ok && !catchingUp {
			if p.data == nil {
				return nil, true
			}
			if e, err := decodeStored(p.data); err == nil {
				return e, true
			}
		}
		return nil, false
	}
	if prevSeq == 0 {
		return nil, true
	}
	if p, ok := mt.prev[id]; ok && p.seq == prevSeq {
		if p.data == nil {
			return nil, true
		}
		if e, err := decodeStored(p.data); err == nil {
			return e, true
		}
	}
	msg, err := mt.st.GetMsg(ctx, prevSeq)
	if err != nil {
		return nil, false // purged from the history
	}
	if msg.Header.Get(HeaderOp) == OpDelete {
		return nil, true
	}
	e, err := decodeStored(msg.Data)
	if err != nil {
		return nil, false
	}
	return e, true
}

// diff computes the attributes a change created, updated and deleted.
func (ch *change) diff() {
	if ch.prev == nil {
		if !ch.prevKnown {
			// The state before is unknown: every attribute may have changed.
			ch.attrsUpdated = ch.cur.AttrNames()
			return
		}
		ch.attrsCreated = ch.cur.AttrNames()
		return
	}
	for _, name := range ch.cur.AttrNames() {
		old, ok := ch.prev.Attrs[name]
		cur := ch.cur.Attrs[name]
		if !ok {
			ch.attrsCreated = append(ch.attrsCreated, name)
			continue
		}
		if sameInstances(old, cur) {
			continue
		}
		// Instances (datasetIds) that are gone were deleted; the others
		// may have been updated too.
		kept := make(Instances, 0, len(old))
		for _, a := range old {
			if cur.Instance(a.DatasetID) == nil {
				ch.gone = append(ch.gone, nullRef{Name: name, DatasetID: a.DatasetID, Type: a.Type, Created: a.CreatedAt, Modified: a.ModifiedAt})
			} else {
				kept = append(kept, a)
			}
		}
		if len(kept) < len(old) {
			ch.attrsDeleted = append(ch.attrsDeleted, name)
			if !sameInstances(kept, cur) {
				ch.attrsUpdated = append(ch.attrsUpdated, name)
			}
			continue
		}
		ch.attrsUpdated = append(ch.attrsUpdated, name)
	}
	for _, name := range ch.prev.AttrNames() {
		if _, ok := ch.cur.Attrs[name]; !ok {
			ch.attrsDeleted = append(ch.attrsDeleted, name)
			ch.gone = append(ch.gone, nullsOf(ch.prev, []string{name})...)
		}
	}
}

// sameInstances compares two attributes by their stored form.
func sameInstances(a, b Instances) bool {
	if len(a) != len(b) {
		return false
	}
	ea := &Entity{Attrs: map[string]Instances{"a": a}}
	eb := &Entity{Attrs: map[string]Instances{"a": b}}
	return string(AppendEntity(nil, ea, storedOptions)) == string(AppendEntity(nil, eb, storedOptions))
}

// selectsEntity checks the entity selectors of a subscription on an id and types.
func selectsEntity(s *Subscription, id string, types []string) bool {
	if len(s.Entities) == 0 {
		return true
	}
	for i := range s.Entities {
		es := &s.Entities[i]
		if (es.ID == "" || es.ID == id) && (es.IDPattern == nil || es.IDPattern.MatchString(id)) && es.Types.Match(types) {
			return true
		}
	}
	return false
}

// fires returns the trigger by which a change fires the subscription, or "".
func (s *Subscription) fires(ch *change) string {
	watched := func(names []string) bool {
		if len(names) == 0 {
			return false
		}
		if s.WatchedAttributes == nil {
			return true
		}
		for _, n := range names {
			if slices.Contains(s.WatchedAttributes, n) {
				return true
			}
		}
		return false
	}
	switch {
	case ch.deleted:
		if s.HasTrigger(TriggerEntityDeleted) {
			return TriggerEntityDeleted
		}
		// Deleting an entity deletes its attributes.
		if s.HasTrigger(TriggerAttributeDeleted) && watched(ch.attrsDeleted) {
			return TriggerAttributeDeleted
		}
		return ""
	case ch.created:
		all := ch.cur.AttrNames()
		if s.HasTrigger(TriggerEntityCreated) && (s.WatchedAttributes == nil || watched(all)) {
			return TriggerEntityCreated
		}
		if s.HasTrigger(TriggerAttributeCreated) && watched(all) {
			return TriggerAttributeCreated
		}
		return ""
	}
	if s.HasTrigger(TriggerEntityUpdated) && (watched(ch.attrsCreated) || watched(ch.attrsUpdated) || watched(ch.attrsDeleted) ||
		s.WatchedAttributes == nil && len(ch.attrsCreated)+len(ch.attrsUpdated)+len(ch.attrsDeleted) == 0) {
		return TriggerEntityUpdated
	}
	if s.HasTrigger(TriggerAttributeCreated) && watched(ch.attrsCreated) {
		return TriggerAttributeCreated
	}
	if s.HasTrigger(TriggerAttributeUpdated) && watched(ch.attrsUpdated) {
		return TriggerAttributeUpdated
	}
	if s.HasTrigger(TriggerAttributeDeleted) && watched(ch.attrsDeleted) {
		return TriggerAttributeDeleted
	}
	return ""
}

// tickLoop queues the notifications of a periodic subscription: one per
// interval, numbered from the epoch so that replicas agree on it.
func (n *Notifier) tickLoop(ctx context.Context, tenant, id string) {
	for {
		s := n.store.lookup(tenant, id)
		if s == nil || !s.Periodic() {
			return
		}
		iv := s.TimeInterval
		now := time.Now()
		k := now.UnixNano()/int64(iv) + 1
		next := time.Unix(0, k*int64(iv))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		s = n.store.lookup(tenant, id)
		if s == nil || s.Status(time.Now()) != StatusActive || s.TimeInterval != iv {
			continue
		}
		if err := n.tick(ctx, s, k); err != nil && ctx.Err() == nil {
			n.log.Warn("periodic notification not queued", "tenant", tenant, "subscription", id, "err", err)
		}
	}
}

func (n *Notifier) tick(ctx context.Context, s *Subscription, k int64) error {
	res, err := n.b.Query(ctx, s.Tenant, Query{Entities: s.Entities, Q: s.Q, Geo: s.Geo, Scope: s.Scope, Limit: -1})
	if err != nil {
		if errors.Is(err, ErrNonexistentTenant) {
			return nil
		}
		return err
	}
	at := time.Now()
	p := notifPayload{Commit: at}
	for _, e := range res.Entities {
		p.Items = append(p.Items, notifItem{ID: e.ID, Entity: encodeStored(e), Commit: at})
	}
	qm, err := queueMsg(s.Tenant, s.ID, keyToken(s.ID)+":p:"+strconv.FormatInt(k, 10), p)
	if err != nil {
		return err
	}
	_, err = n.b.js.PublishMsg(ctx, qm)
	return translateNATS(err)
}

// lookup returns a subscription from the local copy, or nil.
func (s *SubscriptionStore) lookup(tenant, id string) *Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cache[tenant][id]
}
