package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// unhashableNames is a Names of a type that is not comparable.
type unhashableNames map[string]string

func (m unhashableNames) Canon(t string) string { return t }
func (m unhashableNames) Term(n string) string  { return n }

// tagNames is a comparable Names.
type tagNames struct{ p string }

func (n tagNames) Canon(t string) string { return t }
func (n tagNames) Term(s string) string  { return n.p + s }

// TestEntityViewRender checks what Render keeps: one rendering per key and
// revision, keys told apart by names and spec, at most maxViews per
// revision, nothing for a new revision, nothing past maxViewBytes, and
// nothing for a Names that cannot be compared.
func TestEntityViewRender(t *testing.T) {
	b, _ := startBroker(t, Options{})
	ctx := context.Background()
	const id = "urn:ngsi-ld:T:render"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"T","p":{"type":"Property","value":1}}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	calls := 0
	render := func(tag string) func(*Entity) []byte {
		return func(e *Entity) []byte {
			calls++
			return AppendEntity([]byte(tag), e, RenderOptions{})
		}
	}
	get := func() EntityView {
		t.Helper()
		v, err := b.GetView(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get()
	k1 := ViewKey{Names: tagNames{"a:"}, Spec: "1"}
	first := v.Render(k1, render("x"))
	if again := get().Render(k1, render("y")); !bytes.Equal(again, first) || calls != 1 {
		t.Fatalf("second render of one key: %d calls, %q then %q", calls, first, again)
	}
	// Another spec, other names: other views.
	for i, k := range []ViewKey{{Names: tagNames{"a:"}, Spec: "2"}, {Names: tagNames{"b:"}, Spec: "1"}, {Spec: "1"}} {
		calls = 0
		if got := get().Render(k, render(fmt.Sprint(i))); got[0] != fmt.Sprint(i)[0] || calls != 1 {
			t.Fatalf("key %+v: %d calls, got %q", k, calls, got)
		}
	}
	// maxViews = 3: k1 was the oldest and left.
	calls = 0
	get().Render(k1, render("z"))
	if calls != 1 {
		t.Fatalf("the oldest of %d views stayed", maxViews+1)
	}
	// Not comparable: rendered every time, and no panic.
	calls = 0
	kn := ViewKey{Names: unhashableNames{}, Spec: "1"}
	get().Render(kn, render("m"))
	get().Render(kn, render("m"))
	if calls != 2 {
		t.Fatalf("a non-comparable Names was cached (%d renders for 2 reads)", calls)
	}
	// Too large: rendered every time.
	calls = 0
	big := func(e *Entity) []byte { calls++; return make([]byte, maxViewBytes+1) }
	get().Render(ViewKey{Spec: "big"}, big)
	get().Render(ViewKey{Spec: "big"}, big)
	if calls != 2 {
		t.Fatalf("a view over %d bytes was cached", maxViewBytes)
	}
	// A new revision renders again.
	if _, err := b.Merge(ctx, "", id, mustParse(t, `{"id":"`+id+`","p":{"type":"Property","value":2}}`, ParseOptions{Fragment: true})); err != nil {
		t.Fatal(err)
	}
	calls = 0
	got := get().Render(k1, render("n"))
	if calls != 1 || !bytes.Contains(got, []byte(`"value":2`)) {
		t.Fatalf("after a write: %d calls, %s", calls, got)
	}
}

// TestEntityViewNoCache: with the entity cache off, GetView still answers
// and Render renders every time.
func TestEntityViewNoCache(t *testing.T) {
	b, _ := startBroker(t, Options{EntityCache: -1})
	ctx := context.Background()
	const id = "urn:ngsi-ld:T:nocache"
	if _, err := b.Create(ctx, "", mustParse(t, `{"id":"`+id+`","type":"T","p":{"type":"Property","value":1}}`, ParseOptions{})); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for range 2 {
		v, err := b.GetView(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		v.Render(ViewKey{Spec: "1"}, func(e *Entity) []byte { calls++; return AppendEntity(nil, e, RenderOptions{}) })
	}
	if calls != 2 {
		t.Fatalf("%d renders for 2 reads without a cache", calls)
	}
	if _, err := b.GetView(ctx, "", "urn:ngsi-ld:T:missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing entity: %v", err)
	}
	if _, err := b.GetView(ctx, "nosuchtenant", id); !errors.Is(err, ErrNonexistentTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// TestCacheEntryConcurrentViews adds views from many goroutines at once:
// every lookup finds either nothing or its own key's bytes, and the list
// never grows past maxViews.
func TestCacheEntryConcurrentViews(t *testing.T) {
	ce := &cacheEntry{e: &Entity{ID: "x"}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := ViewKey{Spec: fmt.Sprint((g + i) % 5)}
				if b := ce.view(k); b != nil && string(b) != k.Spec {
					t.Errorf("view %q holds %q", k.Spec, b)
					return
				}
				ce.addView(k, []byte(k.Spec))
			}
		}()
	}
	wg.Wait()
	if n := len(*ce.views.Load()); n > maxViews {
		t.Fatalf("%d views kept, at most %d", n, maxViews)
	}
}
