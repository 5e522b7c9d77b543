package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/piazza-city/piazza/broker/internal/promnames"
	"github.com/piazza-city/piazza/schemas"
	"github.com/prometheus/client_golang/prometheus"
)

// The broker's metrics (names agreed for every Piazza component):
//
//	piazza_writes_total{operation,outcome}      writes that reached the write path, per entity
//	piazza_validation_total{type,policy,outcome} data-model checks
//	piazza_quarantined_total{type}              writes kept in quarantine
//	piazza_entities{type}                       live entities per type, every tenant
//	piazza_read_model_lag_messages{tenant}      log messages the read model has not applied
//	piazza_nats_connected                       1 while connected to NATS
//
// "type" labels are entity type short names (AirQualityObserved): the first
// maxTypeLabels names seen keep theirs, later ones report "other", so that
// a city that posts thousands of types cannot blow up the series.

// maxTypeLabels bounds the distinct values of every "type" label.
const maxTypeLabels = 100

// otherType is the "type" label value of the types past maxTypeLabels.
const otherType = "other"

// writeOps and writeOutcomes are the label values of piazza_writes_total.
var (
	writeOps      = [...]string{OpCreate, OpReplace, OpMerge, OpAppend, OpUpdate, OpDelete, opPurge, opDeleteHistory}
	writeOutcomes = [...]string{"ok", "unchanged", "rejected", "conflict", "failed"}
)

// Operation labels that are not message operations.
const (
	opPurge         = "purge"
	opDeleteHistory = "delete_history"
)

// metrics holds the broker's instruments. A nil *metrics counts nothing,
// so the write path calls it unconditionally. It is safe for concurrent use.
type metrics struct {
	writes      [len(writeOps)][len(writeOutcomes)]prometheus.Counter
	validation  *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	types       typeLabels
}

// newMetrics builds the broker's metrics and registers them with reg. b may
// be nil (MetricNames): the state collector then reports nothing.
func newMetrics(reg prometheus.Registerer, b *Broker) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		validation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "piazza_validation_total",
			Help: "Entity states checked against their Smart Data Model, by entity type, policy and outcome (valid, invalid, unknown_type).",
		}, []string{"type", "policy", "outcome"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "piazza_quarantined_total",
			Help: "Writes kept in the quarantine stream instead of being committed, by entity type.",
		}, []string{"type"}),
	}
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "piazza_writes_total",
		Help: "Entity writes that reached the write path, one per entity, by operation and outcome (ok, unchanged, rejected, conflict, failed).",
	}, []string{"operation", "outcome"})
	// Every series exists from the start (rate() needs the zeros), and the
	// write path increments a counter it does not have to look up.
	for i, op := range writeOps {
		for k, oc := range writeOutcomes {
			m.writes[i][k] = writes.WithLabelValues(op, oc)
		}
	}
	state := &stateCollector{b: b, m: m,
		entities: prometheus.NewDesc("piazza_entities",
			"Live entities per entity type in every tenant's read model (\"other\" past 100 types).", []string{"type"}, nil),
		lag: prometheus.NewDesc("piazza_read_model_lag_messages",
			"Messages of a tenant's stream that this replica's read model has not applied yet (tenant \"\" is the default).", []string{"tenant"}, nil),
		connected: prometheus.NewDesc("piazza_nats_connected",
			"1 while the broker is connected to NATS, 0 otherwise.", nil, nil),
	}
	if b != nil && b.opts.Validator != nil {
		b.opts.Validator.m = m
	}
	for _, c := range []prometheus.Collector{writes, m.validation, m.quarantined, state} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("broker: registering metrics: %w", err)
		}
	}
	return m, nil
}

// MetricNames lists the names of every metric the broker exports.
func MetricNames() []string {
	r := promnames.NewRecorder()
	_, _ = newMetrics(r, nil)
	_, _ = newNotifierMetrics(r, func() float64 { return 0 })
	return r.Names()
}

// wrote counts the outcome of each job of a write request.
func (m *metrics) wrote(jobs []*job) {
	if m == nil {
		return
	}
	for _, j := range jobs {
		m.writes[opIndex(j)][outcomeIndex(&j.out)].Inc()
	}
}

// wroteOne counts one write outside the job path (delete_history).
func (m *metrics) wroteOne(op string, err error) {
	if m == nil {
		return
	}
	out := Outcome{Err: err}
	m.writes[slices.Index(writeOps[:], op)][outcomeIndex(&out)].Inc()
}

// opIndex is the operation label of a job: the entry point's own name for
// purges, else the operation the step chose (an upsert is a create or a
// replace), else the entry point's operation (the step failed).
func opIndex(j *job) int {
	op := j.op
	if op == "" || j.kind == opPurge {
		op = j.kind
	}
	switch op {
	case OpCreate:
		return 0
	case OpReplace:
		return 1
	case OpMerge:
		return 2
	case OpAppend:
		return 3
	case OpDelete:
		return 5
	case opPurge:
		return 6
	}
	return 4 // update
}

func outcomeIndex(o *Outcome) int {
	switch {
	case o.Err == nil && o.Unchanged:
		return 1
	case o.Err == nil:
		return 0
	case errors.Is(o.Err, ErrConflict):
		return 3
	case errors.Is(o.Err, ErrNotConnected), errors.Is(o.Err, ErrUnavailable), errors.Is(o.Err, ErrInternal):
		return 4
	case errors.Is(o.Err, ErrBadRequestData), errors.Is(o.Err, ErrInvalidRequest), errors.Is(o.Err, ErrNotFound),
		errors.Is(o.Err, ErrAlreadyExists), errors.Is(o.Err, ErrNonexistentTenant), errors.Is(o.Err, ErrOperationNotSupported):
		return 2
	}
	return 4
}

// Validation outcomes.
const (
	validValid   = "valid"
	validInvalid = "invalid"
	validUnknown = "unknown_type"
)

// validated counts one data-model check of an entity type (its short name).
func (m *metrics) validated(shortType string, p Policy, outcome string) {
	if m == nil {
		return
	}
	m.validation.WithLabelValues(m.types.label(shortType), string(p), outcome).Inc()
}

// kept counts a write kept in quarantine (type is canonical or short).
func (m *metrics) kept(typ string) {
	if m == nil {
		return
	}
	m.quarantined.WithLabelValues(m.types.label(shortName(typ))).Inc()
}

// typeLabels bounds a "type" label: the first maxTypeLabels names keep
// theirs, the rest are "other". It is safe for concurrent use.
type typeLabels struct {
	mu    sync.RWMutex
	names map[string]struct{}
}

func (l *typeLabels) label(name string) string {
	l.mu.RLock()
	_, ok := l.names[name]
	full := len(l.names) >= maxTypeLabels
	l.mu.RUnlock()
	if ok {
		return name
	}
	if full {
		return otherType
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil {
		l.names = make(map[string]struct{}, maxTypeLabels)
	}
	if _, ok := l.names[name]; ok {
		return name
	}
	if len(l.names) >= maxTypeLabels {
		return otherType
	}
	name = string([]byte(name)) // keep no larger string alive
	l.names[name] = struct{}{}
	return name
}

// stateCollector reports what the broker holds at scrape time: entities
// per type, read-model lag per tenant, and the NATS connection.
type stateCollector struct {
	b                        *Broker
	m                        *metrics
	entities, lag, connected *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entities
	ch <- c.lag
	ch <- c.connected
}

// scrapeTimeout bounds the stream lookups of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b == nil {
		return
	}
	up := 0.0
	if c.b.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, up)
	for typ, n := range c.entityCounts() {
		ch <- prometheus.MustNewConstMetric(c.entities, prometheus.GaugeValue, float64(n), typ)
	}
	if up == 0 {
		return // the lag cannot be known; a stale figure would mislead
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, t := range c.b.attached() {
		if lag, err := c.b.lag(ctx, t); err == nil {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag), t.name)
		}
	}
}

// entityCounts counts live entities by bounded type label. The most
// numerous types take the named labels first.
func (c *stateCollector) entityCounts() map[string]int {
	byShort := map[string]int{}
	for _, t := range c.b.attached() {
		t.rm.mu.RLock()
		for typ, ids := range t.rm.byType {
			byShort[shortName(typ)] += len(ids)
		}
		t.rm.mu.RUnlock()
	}
	names := make([]string, 0, len(byShort))
	for n := range byShort {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if byShort[a] != byShort[b] {
			return byShort[b] - byShort[a]
		}
		return cmp.Compare(a, b)
	})
	out := make(map[string]int, len(names))
	for _, n := range names {
		out[c.m.types.label(n)] += byShort[n]
	}
	return out
}

func validOutcome(vs []schemas.Violation) string {
	if len(vs) > 0 {
		return validInvalid
	}
	return validValid
}

// batchOps is the operation label of each batch kind (an upsert's is the
// operation its step chooses).
var batchOps = [...]string{BatchCreate: OpCreate, BatchUpsert: OpCreate, BatchUpdate: OpAppend, BatchMerge: OpMerge, BatchDelete: OpDelete}
