package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// notifierMetrics are the notifier's metrics (names agreed in the metrics
// contract). A nil *notifierMetrics records nothing.
type notifierMetrics struct {
	sent, failed, retried, dead *prometheus.CounterVec
	queue                       prometheus.Gauge
	up                          prometheus.Gauge
	startFailures               prometheus.Counter
	delivery                    *prometheus.HistogramVec
}

func newNotifierMetrics(reg prometheus.Registerer, active func() float64) (*notifierMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &notifierMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "piazza_notifications_sent_total",
			Help: "Notifications delivered, by endpoint scheme."}, []string{"scheme"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "piazza_notifications_failed_total",
			Help: "Failed notification delivery attempts, by endpoint scheme."}, []string{"scheme"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "piazza_notifications_retried_total",
			Help: "Notification delivery retries, by endpoint scheme."}, []string{"scheme"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "piazza_notifications_dead_lettered_total",
			Help: "Notifications given up on and kept as dead letters, by endpoint scheme."}, []string{"scheme"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "piazza_notification_queue_depth",
			Help: "Notifications waiting to be delivered (reported by the notifier leader; 0 elsewhere)."}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "piazza_notification_delivery_seconds",
			Help:    "Time from the commit of a change to the successful delivery of its notification, by endpoint scheme.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"scheme"}),
	}
	m.up = prometheus.NewGauge(prometheus.GaugeOpts{Name: "piazza_notifier_up",
		Help: "1 while this node's notifier has its NATS buckets and streams and campaigns for the lead; 0 while it cannot start (no notifications from this node)."})
	m.startFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "piazza_notifier_start_failures_total",
		Help: "Failed attempts of this node's notifier to set up its NATS buckets and streams (each is retried with backoff)."})
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "piazza_subscriptions",
		Help: "Active NGSI-LD subscriptions (every tenant)."}, active)
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.retried, m.dead, m.queue, m.delivery, m.up, m.startFailures, subs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every scheme is exported from the start, at zero.
	for _, s := range endpointSchemes {
		m.sent.WithLabelValues(s)
		m.failed.WithLabelValues(s)
		m.retried.WithLabelValues(s)
		m.dead.WithLabelValues(s)
	}
	return m, nil
}

func (m *notifierMetrics) onSent(scheme string, commits []time.Time) {
	if m == nil {
		return
	}
	m.sent.WithLabelValues(scheme).Inc()
	now := time.Now()
	for _, c := range commits {
		if !c.IsZero() {
			m.delivery.WithLabelValues(scheme).Observe(now.Sub(c).Seconds())
		}
	}
}

func (m *notifierMetrics) onFailed(scheme string) {
	if m != nil {
		m.failed.WithLabelValues(scheme).Inc()
	}
}

func (m *notifierMetrics) onRetry(scheme string) {
	if m != nil {
		m.retried.WithLabelValues(scheme).Inc()
	}
}

func (m *notifierMetrics) onDead(scheme string) {
	if m != nil {
		m.dead.WithLabelValues(scheme).Inc()
	}
}

func (m *notifierMetrics) setQueue(n uint64) {
	if m != nil {
		m.queue.Set(float64(n))
	}
}

func (m *notifierMetrics) setUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}

func (m *notifierMetrics) onStartFailure() {
	if m != nil {
		m.startFailures.Inc()
	}
}
