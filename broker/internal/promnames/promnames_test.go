package promnames

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOf checks that the names of vectors without series, gauges with
// constant labels and custom collectors are read from their descriptors,
// and that the Recorder sorts and deduplicates them.
func TestOf(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: `with "quotes" and \ backslash`}, []string{"x"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b_info", Help: "h", ConstLabels: prometheus.Labels{"v": `"1"`}})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "ns", Subsystem: "sub", Name: "c_seconds", Help: "h"}, []string{"y"})
	r := NewRecorder()
	r.MustRegister(vec, g, h, vec)
	if err := r.Register(g); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Names(), []string{"a_total", "b_info", "ns_sub_c_seconds"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if r.Unregister(vec) {
		t.Fatal("Unregister reported true")
	}
}

// FuzzName checks that reading a name from any descriptor text never
// panics, and that it reads back a quoted name.
func FuzzName(f *testing.F) {
	for _, s := range []string{`Desc{fqName: "a_total", help: "h", constLabels: {}, variableLabels: {x}}`, `fqName: "`, `fqName: "\"`, "", `Desc{fqName: "x\"y", help: ""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = name(s)
	})
}
