package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestCreateGetMergeDelete(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	e := mustParse(t, `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved",
		"no2":{"type":"Property","value":41.5,"unitCode":"GQ","observedAt":"2024-01-10T10:00:00Z"},
		"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.16]}}}`, ParseOptions{})
	out, err := b.Create(ctx, "", e)
	if err != nil || !out.Created || out.Seq == 0 {
		t.Fatalf("create: %+v %v", out, err)
	}
	if _, err := b.Create(ctx, "", e); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second create: want ErrAlreadyExists, got %v", err)
	}
	// Another type, same id: still a conflict (an id lives on one subject).
	other := e.Clone()
	other.Types = []string{"Other"}
	if _, err := b.Create(ctx, "", other); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("create under another type: want ErrAlreadyExists, got %v", err)
	}
	got, err := b.Get(ctx, "", e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Attrs["no2"][0].Value; fmt.Sprint(v) != "41.5" {
		t.Fatalf("no2 = %v", v)
	}
	if got.CreatedAt.IsZero() || got.Attrs["no2"][0].CreatedAt.IsZero() {
		t.Fatal("system times not kept")
	}
	frag := mustParse(t, `{"no2":{"value":40},"pm10":{"type":"Property","value":12}}`, ParseOptions{Fragment: true, AllowNull: true})
	if _, err := b.Merge(ctx, "", e.ID, frag); err != nil {
		t.Fatal(err)
	}
	got, _ = b.Get(ctx, "", e.ID)
	if a := got.Attrs["no2"][0]; fmt.Sprint(a.Value) != "40" || a.UnitCode != "GQ" {
		t.Fatalf("merged no2 = %+v", a)
	}
	if _, ok := got.Attrs["pm10"]; !ok {
		t.Fatal("pm10 not added")
	}
	del := mustParse(t, `{"pm10":"urn:ngsi-ld:null"}`, ParseOptions{Fragment: true, AllowNull: true})
	if _, err := b.Merge(ctx, "", e.ID, del); err != nil {
		t.Fatal(err)
	}
	got, _ = b.Get(ctx, "", e.ID)
	if _, ok := got.Attrs["pm10"]; ok {
		t.Fatal("pm10 not deleted by a null merge")
	}
	// Unchanged merge publishes nothing.
	out, err = b.Merge(ctx, "", e.ID, mustParse(t, `{"no2":{"value":40}}`, ParseOptions{Fragment: true}))
	if err != nil || !out.Unchanged || out.Seq != 0 {
		t.Fatalf("unchanged merge: %+v %v", out, err)
	}
	if _, err := b.Delete(ctx, "", e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "", e.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := b.Delete(ctx, "", e.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Re-create under another type after the delete.
	if _, err := b.Create(ctx, "", other); err != nil {
		t.Fatalf("re-create under another type: %v", err)
	}
	got, _ = b.Get(ctx, "", e.ID)
	if got.Types[0] != "Other" {
		t.Fatalf("types = %v", got.Types)
	}
}

func TestConcurrentMergesAllLand(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	id := "urn:ngsi-ld:Counter:1"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"Counter"}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frag := mustParse(t, fmt.Sprintf(`{"a%d":%d}`, i, i), ParseOptions{Fragment: true})
			if _, err := b.Merge(ctx, "", id, frag); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := b.Get(ctx, "", id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attrs) != n {
		t.Fatalf("%d of %d concurrent merges landed: %v", len(got.Attrs), n, strings.Join(got.AttrNames(), ","))
	}
}

func TestBatchUpsertAndTenants(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	if _, err := b.Get(ctx, "nowhere", "urn:x:1"); !errors.Is(err, ErrNonexistentTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
	var ents []*Entity
	for i := range 200 {
		ents = append(ents, mustParse(t, fmt.Sprintf(`{"id":"urn:ngsi-ld:T:%d","type":"T","v":%d}`, i, i), ParseOptions{}))
	}
	// A duplicate id in the same batch applies in order.
	ents = append(ents, mustParse(t, `{"id":"urn:ngsi-ld:T:0","type":"T","v":"last"}`, ParseOptions{}))
	outs, err := b.Batch(ctx, "city", BatchUpsert, ents, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	got, err := b.Get(ctx, "city", "urn:ngsi-ld:T:0")
	if err != nil || got.Attrs["v"][0].Value != "last" {
		t.Fatalf("T:0 = %+v, %v", got, err)
	}
	if _, err := b.Get(ctx, "", "urn:ngsi-ld:T:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tenants not isolated: %v", err)
	}
	// The same batch again changes nothing.
	outs, _ = b.Batch(ctx, "city", BatchUpsert, ents[1:200], BatchOptions{})
	for _, o := range outs {
		if !o.Unchanged {
			t.Fatalf("re-upsert of identical entity %s was written", o.ID)
		}
	}
	res, err := b.Query(ctx, "city", Query{Types: []string{"T"}, Limit: 10, Offset: 5})
	if err != nil || res.Total != 200 || len(res.Entities) != 10 {
		t.Fatalf("query: total %d, page %d, %v", res.Total, len(res.Entities), err)
	}
}

func TestDeleteHistory(t *testing.T) {
	b, ns := startBroker(t, Options{})
	ctx := context.Background()
	id := "urn:ngsi-ld:Sensor:h1"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"Sensor","v":1}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 5; i++ {
		if _, err := b.Merge(ctx, "", id, mustParse(t, fmt.Sprintf(`{"v":%d}`, i), ParseOptions{Fragment: true})); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteHistory(ctx, "", id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "", id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("entity still there: %v", err)
	}
	st, err := b.js.Stream(ctx, StreamName(""))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages left in the log, want only the tombstone", info.State.Msgs)
	}
	// A fresh replica replaying the log does not bring it back.
	if _, err := brokerOn(t, ns, Options{}).Get(ctx, "", id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a new replica sees the entity again: %v", err)
	}
	if err := b.DeleteHistory(ctx, "", "urn:ngsi-ld:Sensor:never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("history of an unknown id: %v", err)
	}
}

// TestAttributeEdgeCases covers what the ETSI conformance suite found:
// partial updates of sub-attributes only, kind changes, the NGSI-LD Null in
// its list and language-map forms, and scope in attribute operations.
func TestAttributeEdgeCases(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	id := "urn:ngsi-ld:Vehicle:1"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"Vehicle","scope":"/Mantova",
		"isParked":{"type":"Relationship","object":"urn:ngsi-ld:OffStreetParking:1"},
		"speed":{"type":"Property","value":40},
		"name":{"type":"LanguageProperty","languageMap":{"it":"Autobus","en":"Bus"}},
		"tags":{"type":"ListProperty","valueList":["a","b"]}}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	// Only a sub-attribute: the Relationship keeps its kind and object.
	patch, err := ParseAttrPatch(map[string]any{"providedBy": map[string]any{"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"}}, "isParked", ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PatchAttr(ctx, "", id, "isParked", patch); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Get(ctx, "", id)
	a := got.Attrs["isParked"][0]
	if a.Type != Relationship || a.Value != "urn:ngsi-ld:OffStreetParking:1" || a.Sub["providedBy"] == nil {
		t.Fatalf("isParked after a sub-attribute patch: %+v", a)
	}
	// A partial update cannot turn a Property into a Relationship.
	patch, _ = ParseAttrPatch(map[string]any{"type": "Relationship", "object": "urn:x:y"}, "speed", ParseOptions{})
	if _, err := b.PatchAttr(ctx, "", id, "speed", patch); !errors.Is(err, ErrBadRequestData) {
		t.Fatalf("kind change by partial update: %v", err)
	}
	// The NGSI-LD Null in PATCH /attrs, in a languageMap and in a list deletes.
	frag := mustParse(t, `{"speed":{"type":"Property","value":"urn:ngsi-ld:null"},
		"name":{"type":"LanguageProperty","languageMap":{"@none":"urn:ngsi-ld:null"}},
		"tags":{"type":"ListProperty","valueList":["urn:ngsi-ld:null"]}}`, ParseOptions{Fragment: true, AllowNull: true})
	out, err := b.UpdateAttrs(ctx, "", id, frag)
	if err != nil || len(out.NotUpdated) > 0 {
		t.Fatalf("update with nulls: %+v %v", out, err)
	}
	got, _ = b.Get(ctx, "", id)
	for _, n := range []string{"speed", "name", "tags"} {
		if _, ok := got.Attrs[n]; ok {
			t.Errorf("%s not deleted by the NGSI-LD Null", n)
		}
	}
	// Scope: append with noOverwrite adds, update replaces, delete removes.
	if _, err := b.Append(ctx, "", id, mustParse(t, `{"scope":"/Messina"}`, ParseOptions{Fragment: true}), true); err != nil {
		t.Fatal(err)
	}
	got, _ = b.Get(ctx, "", id)
	if len(got.Scope) != 2 {
		t.Fatalf("scope after append noOverwrite: %v", got.Scope)
	}
	if _, err := b.DeleteAttr(ctx, "", id, "scope", "", false); err != nil {
		t.Fatal(err)
	}
	out, err = b.UpdateAttrs(ctx, "", id, mustParse(t, `{"scope":"/Roma","type":"Bus"}`, ParseOptions{Fragment: true}))
	if err != nil || len(out.NotUpdated) != 1 || out.NotUpdated[0].Attr != "scope" {
		t.Fatalf("update of a missing scope: %+v %v", out, err)
	}
	got, _ = b.Get(ctx, "", id)
	if got.Scope != nil || !got.HasType("Bus") {
		t.Fatalf("after update: scope %v types %v", got.Scope, got.Types)
	}
}
