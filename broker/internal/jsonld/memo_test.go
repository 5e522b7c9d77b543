package jsonld

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// memoContext is a user context with terms, a prefix and a redefinition of
// a default-vocabulary name.
func memoContext(t testing.TB) *Context {
	t.Helper()
	c, err := NewLoader(LoaderOptions{Offline: true}).Load(context.Background(), map[string]any{
		"t":     "https://uri.etsi.org/ngsi-ld/default-context/temperature",
		"sdm":   sdmEnv,
		"no2":   sdmEnv + "no2",
		"Thing": "https://example.org/Thing",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMemoAnswers checks that FromCore and ToCore answer as the expansion
// and compaction they keep, the first time and from memory, for the core
// context and a user context, past the bound of the memory too.
func TestMemoAnswers(t *testing.T) {
	names := []string{"temperature", "no2", "location", "sdm:pm10", sdmEnv + "o3", "https://example.org/Thing", "Thing",
		"t", "ngsi-ld:default-context/x", "urn:x:y", "a b", "", "@id", "observedAt", "x:y:z"}
	for i := range maxMemoNames + 10 {
		names = append(names, fmt.Sprintf("attr%d", i))
	}
	for _, c := range []*Context{Core(), memoContext(t)} {
		for pass := range 2 {
			for _, n := range names {
				if got, want := c.FromCore(n), c.Compact(Core().Expand(n)); got != want {
					t.Fatalf("pass %d: FromCore(%q) = %q, want %q", pass, n, got, want)
				}
				if got, want := c.ToCore(n), Core().Compact(c.Expand(n)); got != want {
					t.Fatalf("pass %d: ToCore(%q) = %q, want %q", pass, n, got, want)
				}
			}
		}
		if n := len(c.memo.from); n != maxMemoNames {
			t.Fatalf("the memory holds %d names, want the bound %d", n, maxMemoNames)
		}
	}
	// A user context reads the stored names in its terms and back.
	c := memoContext(t)
	if got := c.FromCore("temperature"); got != "t" {
		t.Errorf("FromCore(temperature) = %q, want t", got)
	}
	if got := c.ToCore("t"); got != "temperature" {
		t.Errorf("ToCore(t) = %q, want temperature", got)
	}
}

// TestMemoConcurrent asks one context from many goroutines at once (run
// with -race).
func TestMemoConcurrent(t *testing.T) {
	c := memoContext(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				n := fmt.Sprintf("attr%d", (i*7+g)%600)
				if got, want := c.FromCore(n), c.Compact(Core().Expand(n)); got != want {
					t.Errorf("FromCore(%q) = %q, want %q", n, got, want)
					return
				}
				if got, want := c.ToCore(n), Core().Compact(c.Expand(n)); got != want {
					t.Errorf("ToCore(%q) = %q, want %q", n, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzMemo: for any name, the answers kept are the answers computed.
func FuzzMemo(f *testing.F) {
	for _, s := range []string{"temperature", "t", "sdm:no2", "https://example.org/Thing", "x:", ":x", "_:b", "@type", ""} {
		f.Add(s)
	}
	c := memoContext(f)
	f.Fuzz(func(t *testing.T, n string) {
		for range 2 {
			if got, want := c.FromCore(n), c.Compact(Core().Expand(n)); got != want {
				t.Fatalf("FromCore(%q) = %q, want %q", n, got, want)
			}
			if got, want := c.ToCore(n), Core().Compact(c.Expand(n)); got != want {
				t.Fatalf("ToCore(%q) = %q, want %q", n, got, want)
			}
		}
	})
}
