package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Broker.
type Options struct {
	// Conn is the NATS connection the broker uses; it must have JetStream.
	// The broker does not close it.
	Conn *nats.Conn
	// Replicas is the number of stream replicas (1 on one server, 3 on a cluster).
	Replicas int
	// History is how many states of each entity the stream keeps (the
	// temporal history); 0 or less keeps them all.
	History int64
	// WriteTimeout bounds one write, commit and read-your-write included.
	WriteTimeout time.Duration
	// MaxResults bounds the entities one query may return.
	MaxResults int
	// Validator checks every new state against its Smart Data Model; nil
	// validates nothing.
	Validator *Validator
	// EntityCache is how many decoded entities each tenant's read model
	// keeps for fast reads (default 16384; negative: none).
	EntityCache int
	Logger      *slog.Logger
	// Metrics registers the broker's Prometheus metrics (metrics.go); nil
	// exports none.
	Metrics prometheus.Registerer
}

// Broker is the core of Piazza: the write path and the read models of every
// tenant. It is safe for concurrent use. Create it with New, stop it with Close.
type Broker struct {
	opts Options
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream

	mu      sync.Mutex
	tenants map[string]*tenant
	idLocks [idStripes]sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	m       *metrics // nil: no metrics
	// schemas keeps the run-time data models in SchemaBucket; nil when
	// the broker validates nothing.
	schemas *schemaStore
	// admit bounds the messages published and not yet acknowledged.
	admit *admission
}

// tenant is one NGSI-LD tenant: a stream and its read model.
type tenant struct {
	name   string
	stream string
	rm     *readModel
	cons   jetstream.ConsumeContext
	// handoff carries this process's own writes to its read model decoded.
	handoff handoffs
	ready   chan struct{} // closed when the read model has caught up with the stream
	err     error         // set before ready is closed, if attaching failed
}

// Header names of the messages Piazza publishes (payload format version 1).
const (
	HeaderOp       = "Piazza-Op"
	HeaderType     = "Piazza-Type"
	HeaderVersion  = "Piazza-Version"
	PayloadVersion = "1"
)

// Operations written in HeaderOp.
const (
	OpCreate  = "create"
	OpReplace = "replace"
	OpUpdate  = "update"
	OpAppend  = "append"
	OpMerge   = "merge"
	OpDelete  = "delete"
)

// New builds a broker on a NATS connection and attaches the default tenant
// and every tenant that already has a stream, waiting until their read
// models have caught up with the log.
func New(ctx context.Context, o Options) (*Broker, error) {
	if o.Conn == nil {
		return nil, fmt.Errorf("broker: no NATS connection")
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxResults <= 0 {
		o.MaxResults = 1000
	}
	if o.EntityCache == 0 {
		o.EntityCache = 16384
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(o.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &Broker{opts: o, log: o.Logger.With("component", "broker"), nc: o.Conn, js: js,
		tenants: make(map[string]*tenant), ctx: bctx, cancel: cancel, admit: newAdmission(maxInFlight)}
	if b.m, err = newMetrics(o.Metrics, b); err != nil {
		cancel()
		return nil, err
	}
	if reg := b.SchemaRegistry(); reg != nil {
		if b.schemas, err = startSchemaStore(ctx, bctx, js, reg, o.Replicas, b.log); err != nil {
			cancel()
			return nil, err
		}
	}
	// The default tenant always exists.
	if _, err := b.tenant(ctx, "", true); err != nil {
		cancel()
		return nil, err
	}
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject(SubjectPrefix+".>"))
	var found []string
	for n := range names.Name() {
		if strings.HasPrefix(n, streamPrefix+"_") {
			found = append(found, n)
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		cancel()
		return nil, fmt.Errorf("broker: listing streams: %w", translateNATS(err))
	}
	for _, n := range found {
		name, err := DecodeToken(strings.TrimPrefix(n, streamPrefix+"_"))
		if err != nil {
			continue
		}
		if _, err := b.tenant(ctx, name, false); err != nil {
			cancel()
			return nil, err
		}
	}
	// Loading leaves much garbage (message buffers, headers); give it back
	// to the system before serving, so that the resident memory is what the
	// read models hold.
	if b.entityCount() > 10000 {
		debug.FreeOSMemory()
	}
	return b, nil
}

const streamPrefix = "PIAZZA"

// StreamName returns the name of a tenant's stream.
func StreamName(tenant string) string {
	if tenant == "" {
		return streamPrefix
	}
	return streamPrefix + "_" + EncodeToken(tenant)
}

// ValidTenant reports whether s can name a tenant.
func ValidTenant(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// tenant returns the attached tenant, attaching it if its stream exists
// (another replica may have created it) or, with create, creating it.
func (b *Broker) tenant(ctx context.Context, name string, create bool) (*tenant, error) {
	b.mu.Lock()
	t := b.tenants[name]
	if t == nil {
		t = &tenant{name: name, stream: StreamName(name), rm: newReadModel(b.opts.EntityCache), ready: make(chan struct{})}
		b.tenants[name] = t
		b.mu.Unlock()
		t.err = b.attach(ctx, t, create)
		if t.err != nil {
			b.mu.Lock()
			delete(b.tenants, name)
			b.mu.Unlock()
		}
		close(t.ready)
	} else {
		b.mu.Unlock()
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if t.err != nil {
		if errors.Is(t.err, ErrNonexistentTenant) && create {
			return b.tenant(ctx, name, create)
		}
		return nil, t.err
	}
	return t, nil
}

func (b *Broker) streamConfig(t *tenant) jetstream.StreamConfig {
	hist := b.opts.History
	if hist <= 0 {
		hist = -1
	}
	desc := "Piazza entities of the default tenant"
	if t.name != "" {
		desc = "Piazza entities of tenant " + t.name
	}
	return jetstream.StreamConfig{
		Name:              t.stream,
		Description:       desc,
		Subjects:          []string{SubjectPrefix + "." + TenantToken(t.name) + ".>"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: hist,
		Replicas:          b.opts.Replicas,
		AllowDirect:       true,
		Discard:           jetstream.DiscardOld,
		Metadata:          map[string]string{"piazza.tenant": t.name, "piazza.payload": PayloadVersion},
	}
}

// attach finds or creates the tenant's stream and starts its read model.
func (b *Broker) attach(ctx context.Context, t *tenant, create bool) error {
	st, err := b.js.Stream(ctx, t.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return &Error{Kind: ErrNonexistentTenant, Detail: fmt.Sprintf("tenant %q does not exist", t.name)}
		}
		st, err = b.js.CreateOrUpdateStream(ctx, b.streamConfig(t))
		if err == nil {
			b.log.Info("tenant created", "tenant", t.name, "stream", t.stream)
		}
	}
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", t.stream, translateNATS(err))
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", t.stream, translateNATS(err))
	}
	start := time.Now()
	cons, err := b.js.OrderedConsumer(ctx, t.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("broker: read model consumer for %s: %w", t.stream, translateNATS(err))
	}
	caught := make(chan struct{})
	var once sync.Once
	if info.State.Msgs == 0 {
		once.Do(func() { close(caught) })
	}
	// The initial load (the last state of every entity) is applied by one
	// worker per core; an id always goes to the same worker, so its
	// messages stay in order. Once caught up, the live tail is applied in
	// stream order by the consumer's own goroutine.
	load := newLoader(t, info.State.Msgs > 0)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if load.active() {
			if load.dispatch(m) {
				once.Do(func() { close(caught) })
			}
			return
		}
		if t.apply(m, false) == 0 {
			once.Do(func() { close(caught) })
		}
	}, jetstream.PullMaxMessages(2048), jetstream.PullHeartbeat(readModelHeartbeat))
	if err != nil {
		return fmt.Errorf("broker: read model consumer for %s: %w", t.stream, translateNATS(err))
	}
	t.cons = cc
	select {
	case <-caught:
	case <-ctx.Done():
		load.stop()
		cc.Stop()
		return fmt.Errorf("broker: loading tenant %q: %w", t.name, ctx.Err())
	}
	b.log.Info("read model loaded", "tenant", t.name, "entities", t.rm.count(),
		"last_seq", t.rm.applied.Load(), "took", time.Since(start).Round(time.Millisecond))
	go func() {
		start := time.Now()
		if n := t.rm.backfill(b.ctx); n > 0 {
			b.log.Info("read model indexed", "tenant", t.name, "entities", n, "took", time.Since(start).Round(time.Millisecond))
			if n > 10000 {
				debug.FreeOSMemory() // the decoding garbage of the backfill
			}
		}
	}()
	return nil
}

// readModelHeartbeat is the idle heartbeat of a read model's consumer. Two
// missed heartbeats make the client recreate the consumer, so that a read
// model whose consumer vanished with a NATS cluster node (the consumer lives
// on one server) follows the log again within 2s, not the 10s of the
// client's default: the writes of this replica wait for their read model
// meanwhile (TestClusterSurvivesNATSNodeStop in broker/node).
const readModelHeartbeat = time.Second

// loader applies the initial load of a read model on every core.
type loader struct {
	t      *tenant
	mu     sync.Mutex // dispatch against stop
	on     bool
	queues []chan jetstream.Msg
	wg     sync.WaitGroup
	maxSeq uint64
}

func newLoader(t *tenant, on bool) *loader {
	l := &loader{t: t, on: on}
	if !on {
		return l
	}
	n := runtime.GOMAXPROCS(0)
	l.queues = make([]chan jetstream.Msg, n)
	for i := range l.queues {
		q := make(chan jetstream.Msg, 512)
		l.queues[i] = q
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for m := range q {
				t.apply(m, true)
			}
		}()
	}
	return l
}

// active reports whether the initial load is still running.
func (l *loader) active() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on
}

// dispatch hands a message to its id's worker. At the last message of the
// load it waits for the workers and reports true.
func (l *loader) dispatch(m jetstream.Msg) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on {
		l.t.apply(m, false)
		return false
	}
	md, err := m.Metadata()
	if err != nil {
		return false
	}
	if md.Sequence.Stream > l.maxSeq {
		l.maxSeq = md.Sequence.Stream
	}
	_, _, id, _ := ParseSubject(m.Subject())
	l.queues[maphash.String(loadSeed, id)%uint64(len(l.queues))] <- m
	if md.NumPending > 0 {
		return false
	}
	l.finish()
	// Workers may have moved applied out of order: settle it.
	l.t.rm.advance(l.maxSeq)
	return true
}

// stop ends the load early (the start was cancelled).
func (l *loader) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finish()
}

func (l *loader) finish() {
	if !l.on {
		return
	}
	l.on = false
	for _, q := range l.queues {
		close(q)
	}
	l.wg.Wait()
}

var loadSeed = maphash.MakeSeed()

// apply applies one message of the tenant's stream to its read model and
// returns the number of messages still pending for the consumer.
func (t *tenant) apply(m jetstream.Msg, lazy bool) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	_, typ, id, err := ParseSubject(m.Subject())
	if err != nil {
		// Not a message of ours: skip it, but keep the sequence moving.
		t.rm.advance(md.Sequence.Stream)
		return md.NumPending
	}
	h := m.Headers()
	if h.Get(HeaderOp) == OpDelete {
		t.rm.del(id, md.Sequence.Stream)
		return md.NumPending
	}
	types := h.Values(HeaderType)
	if len(types) == 0 {
		types = []string{typ}
	}
	types = t.rm.internTypes(types)
	// The id must not keep the whole subject string alive.
	subjType := types[0]
	if typ != subjType {
		subjType = strings.Clone(typ)
	}
	if e := t.handoff.take(id, m.Data()); e != nil {
		r := makeRecord(strings.Clone(id), subjType, types, md.Sequence.Stream, m.Data(), indexOf(e))
		t.rm.put(r)
		t.rm.cache.put(r, e)
		return md.NumPending
	}
	if lazy {
		// The initial load: attributes are indexed after serving starts.
		t.rm.put(makeRecord(strings.Clone(id), subjType, types, md.Sequence.Stream, m.Data(), nil))
		return md.NumPending
	}
	t.rm.put(newRecord(strings.Clone(id), subjType, types, md.Sequence.Stream, m.Data()))
	return md.NumPending
}

// Close stops the read models. It does not close the NATS connection.
func (b *Broker) Close() {
	b.cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.tenants {
		if t.cons != nil {
			t.cons.Stop()
		}
	}
}

// Ready reports whether the broker can serve: connected to NATS.
func (b *Broker) Ready() error {
	if !b.nc.IsConnected() {
		return ErrNotConnected
	}
	return nil
}

// entityCount is the number of live entities in every read model.
func (b *Broker) entityCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.tenants {
		n += t.rm.count()
	}
	return n
}

// Tenants lists the attached tenants ("" is the default).
func (b *Broker) Tenants() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.tenants))
	for n := range b.tenants {
		out = append(out, n)
	}
	return out
}

// translateNATS maps dependency errors to the broker's.
func translateNATS(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining):
		return fmt.Errorf("%w: %v", ErrNotConnected, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
