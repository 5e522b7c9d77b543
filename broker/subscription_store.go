package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Where subscriptions and their delivery state live in NATS, so that every
// replica sees the same ones and they survive restarts:
//
//	KV PIAZZA_SUBSCRIPTIONS   sub.<tenant>.<id>      the subscription (its members as sent, compiled names)
//	KV PIAZZA_NOTIFIER        status.<tenant>.<id>   delivery counters (timesSent, lastSuccess...)
//	                          progress.<tenant>      last log sequence the matcher has handled
//	KV PIAZZA_NOTIFIER_LEASE  leader                 the notifier leader (TTL, renewed)
//	stream PIAZZA_NOTIFICATIONS  piazza_notify.<tenant>.<id>  notifications waiting for delivery
//	stream PIAZZA_DEADLETTERS    piazza_dead.<tenant>.<id>    notifications given up on, with the reason
//
// <tenant> and <id> are base64url (no padding) of the name; the default
// tenant is "-".
const (
	subsBucket     = "PIAZZA_SUBSCRIPTIONS"
	notifierBucket = "PIAZZA_NOTIFIER"
	leaseBucket    = "PIAZZA_NOTIFIER_LEASE"
	notifyStream   = "PIAZZA_NOTIFICATIONS"
	deadStream     = "PIAZZA_DEADLETTERS"
	notifyPrefix   = "piazza_notify"
	deadPrefix     = "piazza_dead"
)

// keyToken encodes a name as a KV key token.
func keyToken(s string) string {
	if s == "" {
		return "-"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeKeyToken(t string) (string, error) {
	if t == "-" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	return string(b), err
}

func subKey(tenant, id string) string    { return "sub." + keyToken(tenant) + "." + keyToken(id) }
func statusKey(tenant, id string) string { return "status." + keyToken(tenant) + "." + keyToken(id) }
func progressKey(tenant string) string   { return "progress." + keyToken(tenant) }
func notifySubject(tenant, id string) string {
	return notifyPrefix + "." + keyToken(tenant) + "." + keyToken(id)
}
func deadSubject(tenant, id string) string {
	return deadPrefix + "." + keyToken(tenant) + "." + keyToken(id)
}

// SubscriptionStoreOptions configure a SubscriptionStore.
type SubscriptionStoreOptions struct {
	// DeadLetterMaxAge is how long dead letters are kept (default 14 days).
	DeadLetterMaxAge time.Duration
	Logger           *slog.Logger
}

// SubscriptionStore keeps the NGSI-LD subscriptions of every tenant in a
// JetStream KV bucket and a local copy of them, kept current by a watch.
// It is safe for concurrent use; its watch ends when the broker closes.
type SubscriptionStore struct {
	b    *Broker
	opts SubscriptionStoreOptions
	log  *slog.Logger

	initMu sync.Mutex
	inited bool
	subs   jetstream.KeyValue
	state  jetstream.KeyValue

	mu      sync.RWMutex
	cache   map[string]map[string]*Subscription // tenant -> id -> subscription
	sorted  map[string][]*Subscription          // tenant -> its subscriptions in creation order (built on demand)
	version uint64                              // changes applied to cache
	changed chan struct{}                       // closed and replaced at each change
	applied atomic.Uint64                       // highest KV revision applied

	// live, when set, gives the counters of the notifier leading in this
	// process, fresher than those it flushes to PIAZZA_NOTIFIER.
	live atomic.Pointer[func(ctx context.Context, tenant, id string) (DeliveryStatus, bool)]
}

// NewSubscriptionStore returns the subscription store of a broker. It
// touches NATS only at first use.
func NewSubscriptionStore(b *Broker, o SubscriptionStoreOptions) *SubscriptionStore {
	if o.Logger == nil {
		o.Logger = b.opts.Logger
	}
	if o.DeadLetterMaxAge <= 0 {
		o.DeadLetterMaxAge = 14 * 24 * time.Hour
	}
	return &SubscriptionStore{b: b, opts: o, log: o.Logger.With("component", "subscriptions"),
		cache: map[string]map[string]*Subscription{}, sorted: map[string][]*Subscription{}, changed: make(chan struct{})}
}

// init creates the buckets and streams (once) and starts the watch.
func (s *SubscriptionStore) init(ctx context.Context) error {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.inited {
		return nil
	}
	js, rep := s.b.js, s.b.opts.Replicas
	var err error
	s.subs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: subsBucket,
		Description: "Piazza NGSI-LD subscriptions", Storage: jetstream.FileStorage, Replicas: rep, History: 1})
	if err != nil {
		return fmt.Errorf("broker: subscriptions bucket: %w", translateNATS(err))
	}
	s.state, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: notifierBucket,
		Description: "Piazza notifier state: delivery counters, matcher progress", Storage: jetstream.FileStorage, Replicas: rep, History: 1})
	if err != nil {
		return fmt.Errorf("broker: notifier bucket: %w", translateNATS(err))
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: notifyStream,
		Description: "Piazza notifications waiting for delivery, one subject per subscription",
		Subjects:    []string{notifyPrefix + ".>"}, Storage: jetstream.FileStorage, Replicas: rep,
		// Limits, not a work queue: with one consumer per subscription a
		// work queue checks every consumer at each acknowledgement. Each
		// delivery worker purges what it has acknowledged instead.
		Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour, Duplicates: 2 * time.Minute}); err != nil {
		return fmt.Errorf("broker: notification stream: %w", translateNATS(err))
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: deadStream,
		Description: "Piazza notifications that could not be delivered, with the reason",
		Subjects:    []string{deadPrefix + ".>"}, Storage: jetstream.FileStorage, Replicas: rep,
		Retention: jetstream.LimitsPolicy, MaxAge: s.opts.DeadLetterMaxAge, MaxMsgsPerSubject: 10000,
		Discard: jetstream.DiscardOld, AllowDirect: true}); err != nil {
		return fmt.Errorf("broker: dead-letter stream: %w", translateNATS(err))
	}
	last, err := s.lastRevision(ctx)
	if err != nil {
		return err
	}
	w, err := s.subs.WatchAll(s.b.ctx)
	if err != nil {
		return fmt.Errorf("broker: watching subscriptions: %w", translateNATS(err))
	}
	go s.watch(w, last)
	s.inited = true
	return nil
}

func (s *SubscriptionStore) lastRevision(ctx context.Context) (uint64, error) {
	st, err := s.subs.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("broker: subscriptions bucket: %w", translateNATS(err))
	}
	if ks, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return ks.StreamInfo().State.LastSeq, nil
	}
	return 0, nil
}

// watch applies every change of the bucket to the local copy.
func (s *SubscriptionStore) watch(w jetstream.KeyWatcher, initialLast uint64) {
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil { // the initial values are in
			s.advance(initialLast)
			continue
		}
		s.mu.Lock()
		var tenant, id string
		var sub *Subscription
		if e.Operation() == jetstream.KeyValuePut {
			var err error
			if sub, err = decodeSubscription(e.Value()); err != nil {
				s.log.Error("unreadable subscription", "key", e.Key(), "err", err)
			} else {
				tenant, id = sub.Tenant, sub.ID
			}
		} else if t, i, ok := splitSubKey(e.Key()); ok {
			tenant, id = t, i
		}
		if id != "" || tenant != "" {
			m := s.cache[tenant]
			if m == nil {
				m = map[string]*Subscription{}
				s.cache[tenant] = m
			}
			if sub != nil {
				m[id] = sub
			} else {
				delete(m, id)
			}
		}
		s.version++
		clear(s.sorted)
		s.mu.Unlock()
		s.advance(e.Revision())
	}
}

func splitSubKey(key string) (string, string, bool) {
	var parts [3]string
	n := 0
	start := 0
	for i := 0; i <= len(key) && n < 3; i++ {
		if i == len(key) || key[i] == '.' {
			parts[n] = key[start:i]
			n++
			start = i + 1
		}
	}
	if n != 3 || parts[0] != "sub" {
		return "", "", false
	}
	t, err1 := decodeKeyToken(parts[1])
	id, err2 := decodeKeyToken(parts[2])
	return t, id, err1 == nil && err2 == nil
}

func (s *SubscriptionStore) advance(rev uint64) {
	s.mu.Lock()
	if rev > s.applied.Load() {
		s.applied.Store(rev)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitApplied waits until the local copy holds revision rev (at most 5s).
func (s *SubscriptionStore) waitApplied(ctx context.Context, rev uint64) error {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.RLock()
		ch := s.changed
		s.mu.RUnlock()
		if s.applied.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("%w: subscriptions watch behind revision %d", ErrInternal, rev)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync waits until the local copy holds every subscription committed before
// the call.
func (s *SubscriptionStore) Sync(ctx context.Context) error {
	if err := s.init(ctx); err != nil {
		return err
	}
	last, err := s.lastRevision(ctx)
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, last)
}

// currentVersion counts the changes applied to the local copy.
func (s *SubscriptionStore) currentVersion() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// changes returns a channel closed at the next change of the local copy.
func (s *SubscriptionStore) changes() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// snapshot returns the local copy's subscriptions of a tenant, or of every
// tenant with all.
func (s *SubscriptionStore) snapshot(tenant string, all bool) []*Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Subscription
	for t, m := range s.cache {
		if !all && t != tenant {
			continue
		}
		for _, sub := range m {
			out = append(out, sub)
		}
	}
	sortSubscriptions(out)
	return out
}

// tenantSubs returns the subscriptions of a tenant in creation order, shared:
// the caller must not modify the slice.
func (s *SubscriptionStore) tenantSubs(tenant string) []*Subscription {
	s.mu.RLock()
	l, ok := s.sorted[tenant]
	s.mu.RUnlock()
	if ok {
		return l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.sorted[tenant]; ok {
		return l
	}
	l = make([]*Subscription, 0, len(s.cache[tenant]))
	for _, sub := range s.cache[tenant] {
		l = append(l, sub)
	}
	sortSubscriptions(l)
	s.sorted[tenant] = l
	return l
}

// tenants lists the tenants that have subscriptions in the local copy.
func (s *SubscriptionStore) tenants() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for t, m := range s.cache {
		if len(m) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// Create stores a new subscription of a tenant. It fails with
// ErrAlreadyExists if the id is taken.
func (s *SubscriptionStore) Create(ctx context.Context, tenant string, sub *Subscription) error {
	if err := s.init(ctx); err != nil {
		return err
	}
	sub.Tenant = tenant
	sub.CreatedAt = now()
	sub.ModifiedAt = sub.CreatedAt
	since, err := s.streamLast(ctx, tenant)
	if err != nil {
		return err
	}
	sub.Since = since
	data, err := sub.encode()
	if err != nil {
		return fmt.Errorf("%w: encoding subscription: %v", ErrInternal, err)
	}
	rev, err := s.subs.Create(ctx, subKey(tenant, sub.ID), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return &Error{Kind: ErrAlreadyExists, Detail: fmt.Sprintf("subscription %s already exists", sub.ID)}
	}
	if err != nil {
		return fmt.Errorf("broker: storing subscription: %w", translateNATS(err))
	}
	_ = s.state.Purge(ctx, statusKey(tenant, sub.ID))
	s.log.Info("subscription created", "tenant", tenant, "id", sub.ID, "endpoint", redactURL(sub.Notification.Endpoint.URI.String()))
	return s.waitApplied(ctx, rev)
}

// streamLast is the last sequence of a tenant's stream (0 if it has none).
func (s *SubscriptionStore) streamLast(ctx context.Context, tenant string) (uint64, error) {
	st, err := s.b.js.Stream(ctx, StreamName(tenant))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, translateNATS(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, translateNATS(err)
	}
	return info.State.LastSeq, nil
}

func subNotFound(id string) error {
	return &Error{Kind: ErrNotFound, Detail: fmt.Sprintf("subscription %s not found", id)}
}

// Get returns a subscription of a tenant, read from NATS.
func (s *SubscriptionStore) Get(ctx context.Context, tenant, id string) (*Subscription, error) {
	sub, _, err := s.get(ctx, tenant, id)
	return sub, err
}

func (s *SubscriptionStore) get(ctx context.Context, tenant, id string) (*Subscription, uint64, error) {
	if err := s.init(ctx); err != nil {
		return nil, 0, err
	}
	e, err := s.subs.Get(ctx, subKey(tenant, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, subNotFound(id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("broker: reading subscription: %w", translateNATS(err))
	}
	sub, err := decodeSubscription(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return sub, e.Revision(), nil
}

// List returns the subscriptions of a tenant in creation order (then by id).
func (s *SubscriptionStore) List(ctx context.Context, tenant string) ([]*Subscription, error) {
	if err := s.Sync(ctx); err != nil {
		return nil, err
	}
	return s.snapshot(tenant, false), nil
}

// Update applies a PATCH to a subscription: merge computes the new
// subscription from the stored one. Concurrent updates are retried.
func (s *SubscriptionStore) Update(ctx context.Context, tenant, id string, merge func(cur *Subscription) (*Subscription, error)) (*Subscription, error) {
	for attempt := 0; attempt < 16; attempt++ {
		cur, rev, err := s.get(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		next, err := merge(cur)
		if err != nil {
			return nil, err
		}
		if next.ID != cur.ID {
			return nil, subErr("id", "cannot be changed")
		}
		next.Tenant, next.CreatedAt, next.Since = tenant, cur.CreatedAt, cur.Since
		if !cur.IsActive && next.IsActive {
			// Resumed: only changes from now on are notified, even those
			// the matcher reaches later (it judges a change against the
			// subscription as it is then, not as it was at the change).
			last, err := s.streamLast(ctx, tenant)
			if err != nil {
				return nil, err
			}
			next.Since = max(cur.Since, last)
		}
		next.ModifiedAt = now()
		if next.Context == nil {
			next.Context = cur.Context
		}
		data, err := next.encode()
		if err != nil {
			return nil, fmt.Errorf("%w: encoding subscription: %v", ErrInternal, err)
		}
		nrev, err := s.subs.Update(ctx, subKey(tenant, id), data, rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // changed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("broker: updating subscription: %w", translateNATS(err))
		}
		return next, s.waitApplied(ctx, nrev)
	}
	return nil, &Error{Kind: ErrConflict, Detail: fmt.Sprintf("subscription %s kept changing; try again", id)}
}

// Delete removes a subscription, its counters and its dead letters;
// notifications still queued for it are dropped by the notifier.
func (s *SubscriptionStore) Delete(ctx context.Context, tenant, id string) error {
	if _, _, err := s.get(ctx, tenant, id); err != nil {
		return err
	}
	if err := s.subs.Purge(ctx, subKey(tenant, id)); err != nil {
		return fmt.Errorf("broker: deleting subscription: %w", translateNATS(err))
	}
	_ = s.state.Purge(ctx, statusKey(tenant, id))
	if st, err := s.b.js.Stream(ctx, deadStream); err == nil {
		_ = st.Purge(ctx, jetstream.WithPurgeSubject(deadSubject(tenant, id)))
	}
	s.log.Info("subscription deleted", "tenant", tenant, "id", id)
	return s.Sync(ctx)
}

// DeliveryStatus are the delivery counters of a subscription
// (NotificationParams of clause 5.2.14). TimesSent counts every attempt,
// TimesFailed the failed ones.
type DeliveryStatus struct {
	TimesSent        uint64    `json:"timesSent"`
	TimesFailed      uint64    `json:"timesFailed"`
	LastNotification time.Time `json:"lastNotification,omitzero"`
	LastSuccess      time.Time `json:"lastSuccess,omitzero"`
	LastFailure      time.Time `json:"lastFailure,omitzero"`
	// LastFailureReason says why the last attempt failed (an extension).
	LastFailureReason string `json:"lastFailureReason,omitempty"`
	// DeadLettered counts the notifications given up on (an extension).
	DeadLettered uint64 `json:"deadLettered,omitempty"`
}

// Failing reports whether the last attempt failed ("failed" status).
func (d DeliveryStatus) Failing() bool {
	return !d.LastFailure.IsZero() && d.LastFailure.After(d.LastSuccess)
}

// Status returns the delivery counters of a subscription (zero if it has
// notified nothing yet): those of the notifier leading in this process if
// it has them (exact, after the attempt under way if it ends within a
// second), else the ones the leader last saved (every second).
func (s *SubscriptionStore) Status(ctx context.Context, tenant, id string) (DeliveryStatus, error) {
	var d DeliveryStatus
	if f := s.live.Load(); f != nil {
		if d, ok := (*f)(ctx, tenant, id); ok {
			return d, nil
		}
	}
	if err := s.init(ctx); err != nil {
		return d, err
	}
	e, err := s.state.Get(ctx, statusKey(tenant, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("broker: reading delivery status: %w", translateNATS(err))
	}
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return d, fmt.Errorf("%w: delivery status of %s: %v", ErrInternal, id, err)
	}
	return d, nil
}

// DeadLetter is a notification that was given up on.
type DeadLetter struct {
	Seq          uint64          `json:"seq"`
	Time         time.Time       `json:"deadLetteredAt"`
	Subscription string          `json:"subscriptionId"`
	Endpoint     string          `json:"endpoint"`
	Attempts     int             `json:"attempts"`
	Reason       string          `json:"reason"`
	Notification json.RawMessage `json:"notification"`
}

// DeadLetters returns up to limit dead letters of a subscription after
// skipping offset, oldest first, and how many there are.
func (s *SubscriptionStore) DeadLetters(ctx context.Context, tenant, id string, offset, limit int) ([]DeadLetter, int, error) {
	if _, _, err := s.get(ctx, tenant, id); err != nil {
		return nil, 0, err
	}
	cons, err := s.b.js.OrderedConsumer(ctx, deadStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{deadSubject(tenant, id)}})
	if err != nil {
		return nil, 0, fmt.Errorf("broker: reading dead letters: %w", translateNATS(err))
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("broker: reading dead letters: %w", translateNATS(err))
	}
	total := int(info.NumPending)
	var out []DeadLetter
	for i := 0; i < total && len(out) < limit; {
		batch, err := cons.Fetch(min(256, total-i), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, 0, fmt.Errorf("broker: reading dead letters: %w", translateNATS(err))
		}
		got := 0
		for m := range batch.Messages() {
			got++
			i++
			if i <= offset || len(out) >= limit {
				continue
			}
			var dl DeadLetter
			if err := json.Unmarshal(m.Data(), &dl); err != nil {
				continue
			}
			if md, err := m.Metadata(); err == nil {
				dl.Seq = md.Sequence.Stream
			}
			out = append(out, dl)
		}
		if got == 0 {
			break
		}
	}
	return out, total, nil
}
