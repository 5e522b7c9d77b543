// Package promnames reads the metric names that Prometheus collectors
// describe, without collecting them: vectors that have no series yet are
// named too. Piazza's packages use it to list every metric they can export
// (node.MetricNames), so that dashboards and alert rules can be checked
// against the real names.
package promnames

import (
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Recorder is a prometheus.Registerer that only remembers the names of the
// metrics its collectors describe. It is not safe for concurrent use.
type Recorder struct {
	names map[string]bool
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{names: map[string]bool{}} }

// Register records the names c describes.
func (r *Recorder) Register(c prometheus.Collector) error {
	for _, n := range Of(c) {
		r.names[n] = true
	}
	return nil
}

// MustRegister records the names the collectors describe.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

// Unregister does nothing and reports false.
func (r *Recorder) Unregister(prometheus.Collector) bool { return false }

// Names returns the recorded names, sorted.
func (r *Recorder) Names() []string {
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Of returns the fully-qualified names of the metrics c describes.
// client_golang has no accessor for a descriptor's name; its String form
// (Desc{fqName: "...", ...}) has been stable since its first release, and a
// test checks the names against a real scrape.
func Of(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		if n := name(d.String()); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func name(desc string) string {
	const key = "fqName: "
	i := strings.Index(desc, key)
	if i < 0 {
		return ""
	}
	s := desc[i+len(key):]
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return ""
	}
	n, err := strconv.Unquote(q)
	if err != nil {
		return ""
	}
	return n
}
