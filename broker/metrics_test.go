package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/schemas"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsMove drives the write path and checks that each broker series
// moves as it should, and that the registry passes the Prometheus linter.
func TestMetricsMove(t *testing.T) {
	reg := prometheus.NewRegistry()
	schemaReg, err := schemas.NewRegistry(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ValidationConfig{Tenants: map[string]PolicySet{"mantova": {Default: PolicyQuarantine}}}
	b, _ := startBroker(t, Options{Metrics: reg, Validator: validator(t, schemaReg, cfg)})
	ctx := context.Background()

	writes := func(op, outcome string) float64 {
		return testutil.ToFloat64(b.m.writes[slices.Index(writeOps[:], op)][slices.Index(writeOutcomes[:], outcome)])
	}
	validation := func(typ, policy, outcome string) float64 {
		return testutil.ToFloat64(b.m.validation.WithLabelValues(typ, policy, outcome))
	}
	steps := []struct {
		name  string
		do    func() error
		check func() (float64, float64)
	}{
		{"create ok", func() error {
			_, err := b.Create(ctx, "", mustParse(t, `{"id":"urn:x:1","type":"Bench"}`, ParseOptions{}))
			return err
		}, func() (float64, float64) { return writes(OpCreate, "ok"), 1 }},
		{"create of a live id is rejected", func() error {
			_, err := b.Create(ctx, "", mustParse(t, `{"id":"urn:x:1","type":"Bench"}`, ParseOptions{}))
			return ignore(err)
		}, func() (float64, float64) { return writes(OpCreate, "rejected"), 1 }},
		{"merge of a missing entity is rejected as a merge", func() error {
			_, err := b.Merge(ctx, "", "urn:x:none", mustParse(t, `{"a":1}`, ParseOptions{Fragment: true}))
			return ignore(err)
		}, func() (float64, float64) { return writes(OpMerge, "rejected"), 1 }},
		{"an upsert of an existing entity is a replace", func() error {
			_, err := b.Batch(ctx, "", BatchUpsert, []*Entity{mustParse(t, `{"id":"urn:x:1","type":"Bench","a":1}`, ParseOptions{})}, BatchOptions{})
			return err
		}, func() (float64, float64) { return writes(OpReplace, "ok"), 1 }},
		{"an identical replace is unchanged", func() error {
			_, err := b.Batch(ctx, "", BatchUpsert, []*Entity{mustParse(t, `{"id":"urn:x:1","type":"Bench","a":1}`, ParseOptions{})}, BatchOptions{})
			return err
		}, func() (float64, float64) { return writes(OpReplace, "unchanged"), 1 }},
		{"an unknown type is counted as such", func() error { return nil },
			func() (float64, float64) { return validation("Bench", "enforce", "unknown_type"), 2 }}, // the create and the replace; not the rejected or unchanged writes
		{"an invalid AirQualityObserved is counted and rejected", func() error {
			_, err := b.Create(ctx, "", mustParse(t, badAQ, ParseOptions{}))
			return ignore(err)
		}, func() (float64, float64) { return validation("AirQualityObserved", "enforce", "invalid"), 1 }},
		{"a valid one is counted", func() error {
			_, err := b.Create(ctx, "", mustParse(t, goodAQ, ParseOptions{}))
			return err
		}, func() (float64, float64) { return validation("AirQualityObserved", "enforce", "valid"), 1 }},
		{"a quarantined write", func() error {
			_, err := b.Create(ctx, "mantova", mustParse(t, badAQ, ParseOptions{}))
			return ignore(err)
		}, func() (float64, float64) {
			return testutil.ToFloat64(b.m.quarantined.WithLabelValues("AirQualityObserved")), 1
		}},
		{"purge", func() error {
			_, err := b.Purge(ctx, "", PurgeRequest{Query: Query{Types: []string{"Bench"}}})
			return err
		}, func() (float64, float64) { return writes(opPurge, "ok"), 1 }},
		{"delete_history of a missing entity is rejected", func() error {
			return ignore(b.DeleteHistory(ctx, "", "urn:x:none"))
		}, func() (float64, float64) { return writes(opDeleteHistory, "rejected"), 1 }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			if got, want := s.check(); got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	t.Run("state", func(t *testing.T) {
		want := `
# HELP piazza_entities Live entities per entity type in every tenant's read model ("other" past 100 types).
# TYPE piazza_entities gauge
piazza_entities{type="AirQualityObserved"} 1
# HELP piazza_nats_connected 1 while the broker is connected to NATS, 0 otherwise.
# TYPE piazza_nats_connected gauge
piazza_nats_connected 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "piazza_entities", "piazza_nats_connected"); err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(b.m.writes[0][0]); n != 1 {
			t.Fatal(n)
		}
		lag, err := testutil.GatherAndCount(reg, "piazza_read_model_lag_messages")
		if err != nil || lag != 2 { // the default tenant and mantova
			t.Fatalf("lag series: %d %v", lag, err)
		}
	})
	t.Run("lint", func(t *testing.T) {
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
	t.Run("names", func(t *testing.T) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var gathered []string
		for _, mf := range mfs {
			gathered = append(gathered, mf.GetName())
		}
		names := MetricNames()
		for _, n := range gathered {
			if !slices.Contains(names, n) {
				t.Errorf("%s is exported but not in MetricNames %v", n, names)
			}
		}
		// Vectors with no series yet are named too.
		for _, n := range []string{"piazza_quarantined_total", "piazza_notifications_sent_total"} {
			if !slices.Contains(names, n) {
				t.Errorf("MetricNames lacks %s", n)
			}
		}
	})
}

func ignore(err error) error {
	if err == nil {
		return fmt.Errorf("the write was expected to fail")
	}
	return nil
}

// TestTypeLabelsBounded checks that past maxTypeLabels names every new one
// reports "other", and that admitted names keep theirs.
func TestTypeLabelsBounded(t *testing.T) {
	var l typeLabels
	for i := range maxTypeLabels {
		if got := l.label(fmt.Sprintf("T%d", i)); got != fmt.Sprintf("T%d", i) {
			t.Fatalf("name %d got %q", i, got)
		}
	}
	for _, tc := range []struct{ in, want string }{{"T0", "T0"}, {"T99", "T99"}, {"New", otherType}, {"T100", otherType}} {
		t.Run(tc.in, func(t *testing.T) {
			if got := l.label(tc.in); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNilMetrics checks that a broker without a registry counts nothing
// and does not fail.
func TestNilMetrics(t *testing.T) {
	b, _ := startBroker(t, Options{})
	if b.m != nil {
		t.Fatal("metrics without a registry")
	}
	if _, err := b.Create(context.Background(), "", mustParse(t, `{"id":"urn:x:1","type":"Bench"}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
}
