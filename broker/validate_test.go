package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/schemas"
)

const badAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved",
	"dateObserved":"2024-01-10T10:00:00","tsp":73.3,"no2":41,
	"location":{"type":"Point","coordinates":[10.79,45.16]}}`

const goodAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved",
	"dateObserved":"2024-01-10T10:00:00Z","tsp":73,"no2":41,
	"location":{"type":"Point","coordinates":[10.79,45.16]}}`

func validator(t *testing.T, reg *schemas.Registry, cfg ValidationConfig) *Validator {
	t.Helper()
	v, err := NewValidator(reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidationPolicies(t *testing.T) {
	reg, err := schemas.NewRegistry(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("enforce by default", func(t *testing.T) {
		b, _ := startBroker(t, Options{Validator: validator(t, reg, ValidationConfig{})})
		_, err := b.Create(ctx, "", mustParse(t, badAQ, ParseOptions{}))
		var be *Error
		if !errors.As(err, &be) || !errors.Is(err, ErrBadRequestData) {
			t.Fatalf("want a rejection, got %v", err)
		}
		ptrs := map[string]bool{}
		for _, v := range be.Violations {
			ptrs[v.Pointer] = true
		}
		if len(be.Violations) != 2 || !ptrs["/tsp"] || !ptrs["/dateObserved"] || !strings.Contains(be.Detail, "/tsp") {
			t.Fatalf("violations %+v, detail %q", be.Violations, be.Detail)
		}
		if _, err := b.Get(ctx, "", "urn:ngsi-ld:AirQualityObserved:MN-1"); !errors.Is(err, ErrNotFound) {
			t.Fatal("a rejected entity was stored")
		}
		if _, err := b.Create(ctx, "", mustParse(t, goodAQ, ParseOptions{})); err != nil {
			t.Fatal(err)
		}
		// A merge that would make the entity invalid is refused: the merged state is validated.
		frag := mustParse(t, `{"tsp":1.5}`, ParseOptions{Fragment: true})
		if _, err := b.Merge(ctx, "", "urn:ngsi-ld:AirQualityObserved:MN-1", frag); !errors.Is(err, ErrBadRequestData) {
			t.Fatalf("invalidating merge: %v", err)
		}
		// Types without a model are allowed by default.
		if _, err := b.Create(ctx, "", mustParse(t, `{"id":"urn:x:1","type":"Bench"}`, ParseOptions{})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("warn and unknown reject", func(t *testing.T) {
		b, _ := startBroker(t, Options{Validator: validator(t, reg, ValidationConfig{PolicySet: PolicySet{
			Types: map[string]Policy{"AirQualityObserved": PolicyWarn}, Unknown: "reject"}})})
		out, err := b.Create(ctx, "", mustParse(t, badAQ, ParseOptions{}))
		if err != nil || len(out.Warnings) != 2 || out.Model != "AirQualityObserved" {
			t.Fatalf("warn: %+v %v", out, err)
		}
		if _, err := b.Create(ctx, "", mustParse(t, `{"id":"urn:x:1","type":"Bench"}`, ParseOptions{})); !errors.Is(err, ErrBadRequestData) {
			t.Fatalf("unknown type under reject: %v", err)
		}
	})
	t.Run("quarantine, then replay", func(t *testing.T) {
		cfg := ValidationConfig{Tenants: map[string]PolicySet{"mantova": {Default: PolicyQuarantine}}}
		b, ns := startBroker(t, Options{Validator: validator(t, reg, cfg)})
		_, err := b.Create(ctx, "mantova", mustParse(t, badAQ, ParseOptions{}))
		var be *Error
		if !errors.As(err, &be) || be.Quarantine == 0 {
			t.Fatalf("want a quarantined write, got %v", err)
		}
		entries, err := b.Quarantine(ctx, "mantova")
		if err != nil || len(entries) != 1 || entries[0].ID != "urn:ngsi-ld:AirQualityObserved:MN-1" || len(entries[0].Violations) != 2 {
			t.Fatalf("quarantine list: %+v %v", entries, err)
		}
		if other, _ := b.Quarantine(ctx, ""); len(other) != 0 {
			t.Fatalf("another tenant sees the entry: %+v", other)
		}
		// Replaying under the same policy keeps it in quarantine.
		if _, err := b.ReplayQuarantine(ctx, "mantova", entries[0].Seq); err == nil {
			t.Fatal("replay of an invalid entity succeeded")
		}
		entries, _ = b.Quarantine(ctx, "mantova")
		if len(entries) != 1 {
			t.Fatalf("%d entries after a failed replay", len(entries))
		}
		// The operator relaxes the policy (a second replica with warn) and replays.
		b2 := brokerOn(t, ns, Options{Validator: validator(t, reg, ValidationConfig{PolicySet: PolicySet{Default: PolicyWarn}})})
		if _, err := b2.ReplayQuarantine(ctx, "mantova", entries[0].Seq); err != nil {
			t.Fatal(err)
		}
		if _, err := b2.Get(ctx, "mantova", "urn:ngsi-ld:AirQualityObserved:MN-1"); err != nil {
			t.Fatalf("replayed entity: %v", err)
		}
		if left, _ := b2.Quarantine(ctx, "mantova"); len(left) != 0 {
			t.Fatalf("%d entries left after replay", len(left))
		}
	})
	t.Run("bad config", func(t *testing.T) {
		if _, err := NewValidator(reg, ValidationConfig{PolicySet: PolicySet{Default: "strict"}}); err == nil || !strings.Contains(err.Error(), "strict") {
			t.Fatalf("bad policy: %v", err)
		}
	})
}

// TestLoadThenBackfill restarts a replica on a log: it serves before its
// attribute indexes are built, queries are right both before and after the
// backfill, and the backfill indexes every record.
func TestLoadThenBackfill(t *testing.T) {
	b, ns := startBroker(t, Options{})
	ctx := context.Background()
	var batch []*Entity
	for i := 0; i < 3000; i++ {
		batch = append(batch, mustParse(t, fmt.Sprintf(`{"id":"urn:ngsi-ld:T:%d","type":"T","n":%d,"location":{"type":"Point","coordinates":[10.%d,45.1]}}`, i, i%100, i%90), ParseOptions{}))
	}
	if _, err := b.Batch(ctx, "", BatchUpsert, batch, BatchOptions{}); err != nil {
		t.Fatal(err)
	}
	q, err := ParseQ("n<10", CanonicalNames)
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.Query(ctx, "", Query{Q: q, Limit: 1000})
	if err != nil || want.Total != 300 {
		t.Fatalf("query on the writer: %d %v", want.Total, err)
	}
	b2 := brokerOn(t, ns, Options{})
	got, err := b2.Query(ctx, "", Query{Q: q, Limit: 1000})
	if err != nil || got.Total != want.Total {
		t.Fatalf("query during or after the backfill: %d, want %d (%v)", got.Total, want.Total, err)
	}
	rm := b2.tenants[""].rm
	if n := rm.backfill(ctx); n != 0 {
		// The background backfill may still have been running: a second
		// pass finds what is left, and then nothing.
		if rm.backfill(ctx) != 0 {
			t.Fatal("records left unindexed after two backfills")
		}
	}
	rm.mu.RLock()
	left := 0
	rm.ix.unindexed.each(func(uint32) bool { left++; return true })
	rm.mu.RUnlock()
	if left != 0 {
		t.Fatalf("%d records unindexed after the backfill", left)
	}
	got, err = b2.Query(ctx, "", Query{Q: q, Limit: 1000})
	if err != nil || got.Total != want.Total {
		t.Fatalf("query after the backfill: %d, want %d (%v)", got.Total, want.Total, err)
	}
}
