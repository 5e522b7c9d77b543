package jsonld

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// docServer is a real HTTP server serving context documents by path and
// counting requests per path.
type docServer struct {
	*httptest.Server
	mu   sync.Mutex
	docs map[string]string
	hits map[string]int
}

func newDocServer(t *testing.T, docs map[string]string) *docServer {
	t.Helper()
	s := &docServer{docs: docs, hits: make(map[string]int)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		body, ok := s.docs[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/ld+json")
		fmt.Fprint(w, strings.ReplaceAll(body, "$BASE", "http://"+r.Host))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *docServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *docServer) set(path, body string) {
	s.mu.Lock()
	s.docs[path] = body
	s.mu.Unlock()
}

// fakeClock drives a Loader's TTLs without waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(l *Loader) *fakeClock {
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l.now = c.now
	return c
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestRemoteNestedContexts(t *testing.T) {
	s := newDocServer(t, map[string]string{
		// A Smart-Data-Models-like top context that includes others,
		// relatively and absolutely, and the core.
		"/top.jsonld": `{"@context": ["env.jsonld", "$BASE/units/units.jsonld", {"local": "http://local.org/x"},
			"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld"]}`,
		"/env.jsonld":         `{"@context": {"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature", "sdm": "https://smartdatamodels.org/"}}`,
		"/units/units.jsonld": `{"@context": ["../common.jsonld", {"unit": "sdm:unit"}]}`,
		"/common.jsonld":      `{"@context": {"name": "https://schema.org/name"}}`,
	})
	l := NewLoader(LoaderOptions{Timeout: 5 * time.Second})
	c, err := l.Load(context.Background(), s.URL+"/top.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"temperature": sdmEnv + "temperature",
		"unit":        "https://smartdatamodels.org/unit",
		"name":        "https://schema.org/name",
		"local":       "http://local.org/x",
		"value":       ngsi + "hasValue",
		"other":       DefaultVocab + "other",
	} {
		if got := c.Expand(name); got != want {
			t.Errorf("Expand(%q) = %q, want %q", name, got, want)
		}
		if got := c.Compact(want); got != name {
			t.Errorf("Compact(%q) = %q, want %q", want, got, name)
		}
	}
	if c.Source() != s.URL+"/top.jsonld" || c.IsCoreOnly() {
		t.Errorf("Source = %v, IsCoreOnly = %v", c.Source(), c.IsCoreOnly())
	}
	// Everything is cached now: the Link header form gives the same Context.
	c2, err := l.LoadLink(context.Background(), `<`+s.URL+`/top.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`)
	if err != nil {
		t.Fatal(err)
	}
	if c2 != c {
		t.Error("LoadLink of the same URL processed the context again")
	}
	// An in-body array naming the same documents fetches nothing new.
	if _, err := l.Load(context.Background(), []any{s.URL + "/env.jsonld", s.URL + "/common.jsonld"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/top.jsonld", "/env.jsonld", "/units/units.jsonld", "/common.jsonld"} {
		if n := s.count(p); n != 1 {
			t.Errorf("%s fetched %d times, want 1", p, n)
		}
	}
}

func TestRemoteErrors(t *testing.T) {
	s := newDocServer(t, map[string]string{
		"/self.jsonld":    `{"@context": ["self.jsonld"]}`,
		"/a.jsonld":       `{"@context": ["b.jsonld"]}`,
		"/b.jsonld":       `{"@context": ["c.jsonld"]}`,
		"/imp1.jsonld":    `{"@context": {"@import": "imp1.jsonld"}}`,
		"/c.jsonld":       `{"@context": "a.jsonld"}`,
		"/diamond.jsonld": `{"@context": ["left.jsonld", "right.jsonld"]}`,
		"/left.jsonld":    `{"@context": ["leaf.jsonld", {"l": "http://x.org/l"}]}`,
		"/right.jsonld":   `{"@context": ["leaf.jsonld", {"r": "http://x.org/r"}]}`,
		"/leaf.jsonld":    `{"@context": {"leaf": "http://x.org/leaf"}}`,
		"/badjson.jsonld": `{"@context": {"a": `,
		"/nocontext.json": `{"a": "http://x.org/a"}`,
		"/array.json":     `[{"@context": {}}]`,
		"/badterm.jsonld": `{"@context": {"a": 42}}`,
		"/import.jsonld":  `{"@context": {"@import": "leaf.jsonld", "mine": "http://x.org/mine"}}`,
		"/importarr.json": `{"@context": {"@import": "self.jsonld"}}`,
		"/base.jsonld":    `{"@context": {"@base": "http://ignored.example/", "b": "http://x.org/b"}}`,
	})
	for i := 0; i <= MaxRemoteDepth+1; i++ {
		s.set(fmt.Sprintf("/chain%d.jsonld", i), fmt.Sprintf(`{"@context": ["chain%d.jsonld", {"c%d": "http://x.org/c%d"}]}`, i+1, i, i))
	}
	s.set(fmt.Sprintf("/chain%d.jsonld", MaxRemoteDepth+2), `{"@context": {}}`)
	s.set(fmt.Sprintf("/short%d.jsonld", MaxRemoteDepth-1), `{"@context": {}}`)
	for i := 0; i < MaxRemoteDepth-1; i++ {
		s.set(fmt.Sprintf("/short%d.jsonld", i), fmt.Sprintf(`{"@context": "short%d.jsonld"}`, i+1))
	}

	l := NewLoader(LoaderOptions{Timeout: 5 * time.Second})
	tests := []struct {
		path    string
		wantErr error
		wantMsg string
	}{
		{"/self.jsonld", ErrInvalidContext, "includes itself"},
		{"/a.jsonld", ErrInvalidContext, "includes itself"},
		{"/chain0.jsonld", ErrInvalidContext, "nested more than"},
		{"/short0.jsonld", nil, ""},
		{"/diamond.jsonld", nil, ""},
		{"/badjson.jsonld", ErrInvalidContext, "not JSON"},
		{"/nocontext.json", ErrInvalidContext, "no @context"},
		{"/array.json", ErrInvalidContext, "not an object"},
		{"/badterm.jsonld", ErrInvalidContext, `term "a"`},
		{"/import.jsonld", nil, ""},
		{"/importarr.json", ErrInvalidContext, "must be an object"},
		{"/imp1.jsonld", ErrInvalidContext, "recursive @import"},
		{"/base.jsonld", nil, ""},
		{"/missing.jsonld", ErrContextNotAvailable, "404"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			u := s.URL + tc.path
			c, err := l.Load(context.Background(), u)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load = %v, want %v", err, tc.wantErr)
			}
			if c != nil {
				t.Error("a Context came with the error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), s.URL) {
				t.Errorf("error %q should mention %q and the URL", err, tc.wantMsg)
			}
		})
	}
	c, err := l.Load(context.Background(), s.URL+"/diamond.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	if c.Expand("leaf") != "http://x.org/leaf" || c.Expand("l") != "http://x.org/l" || c.Expand("r") != "http://x.org/r" {
		t.Error("diamond context lost terms")
	}
	c, _ = l.Load(context.Background(), s.URL+"/import.jsonld")
	if c.Expand("leaf") != "http://x.org/leaf" || c.Expand("mine") != "http://x.org/mine" {
		t.Error("@import lost terms")
	}
	c, _ = l.Load(context.Background(), s.URL+"/base.jsonld")
	if c.Base() != "" {
		t.Errorf("@base of a remote context was kept: %q", c.Base())
	}
}

func TestHangingServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	l := NewLoader(LoaderOptions{Timeout: 50 * time.Millisecond})
	clock := withClock(l)
	start := time.Now()
	_, err := l.Load(context.Background(), srv.URL+"/ctx.jsonld")
	if !errors.Is(err, ErrContextNotAvailable) {
		t.Fatalf("Load = %v, want ErrContextNotAvailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Load took %v with a 50ms timeout", d)
	}
	// The failure is remembered: no second fetch, no second wait.
	start = time.Now()
	if _, err := l.LoadLink(context.Background(), "<"+srv.URL+"/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\""); !errors.Is(err, ErrContextNotAvailable) {
		t.Fatalf("second Load = %v", err)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("negatively cached Load took %v", d)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server hit %d times, want 1", n)
	}
	// After the negative TTL it is tried again.
	clock.advance(DefaultNegativeTTL + time.Second)
	if _, err := l.Load(context.Background(), srv.URL+"/ctx.jsonld"); !errors.Is(err, ErrContextNotAvailable) {
		t.Fatalf("third Load = %v", err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("server hit %d times after the negative TTL, want 2", n)
	}
}

func TestCallerDeadlineDoesNotPoisonCache(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
			fmt.Fprint(w, `{"@context": {"slow": "http://x.org/slow"}}`)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	l := NewLoader(LoaderOptions{Timeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := l.Load(ctx, srv.URL+"/slow.jsonld")
	if !errors.Is(err, ErrContextNotAvailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load = %v, want ErrContextNotAvailable and DeadlineExceeded", err)
	}
	// The shared fetch goes on; when the server answers, the document is
	// cached for everyone.
	once.Do(func() { close(release) })
	waitFor(t, "the fetch to finish", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.flights) == 0
	})
	c, err := l.Load(context.Background(), srv.URL+"/slow.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	if c.Expand("slow") != "http://x.org/slow" || hits.Load() != 1 {
		t.Errorf("Expand(slow) = %q, hits = %d", c.Expand("slow"), hits.Load())
	}
	// A caller whose context is already done gets an error at once.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := l.Load(done, map[string]any{"x": "http://x.org/x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = %v", err)
	}
}

func TestSingleflight(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		fmt.Fprint(w, `{"@context": {"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature"}}`)
	}))
	t.Cleanup(srv.Close)

	l := NewLoader(LoaderOptions{})
	u := srv.URL + "/shared.jsonld"
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	results := make(chan *Context, n)
	for i := range n {
		wg.Go(func() {
			// Half load the URL, half an in-body array naming it.
			var raw any = u
			if i%2 == 1 {
				raw = []any{u, map[string]any{"n": fmt.Sprint("http://x.org/", i)}}
			}
			c, err := l.Load(context.Background(), raw)
			if err != nil {
				errs <- err
				return
			}
			results <- c
		})
	}
	waitFor(t, "all loads to wait on one fetch", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		f := l.flights[u]
		return f != nil && f.waiters.Load() == n
	})
	close(release)
	wg.Wait()
	close(errs)
	close(results)
	for err := range errs {
		t.Error(err)
	}
	for c := range results {
		if c.Expand("temperature") != sdmEnv+"temperature" {
			t.Error("wrong context")
		}
	}
	if h := hits.Load(); h != 1 {
		t.Errorf("%d fetches, want 1", h)
	}
	if f := l.fetches.Load(); f != 1 {
		t.Errorf("loader started %d fetches, want 1", f)
	}
}

func TestConcurrentLoads(t *testing.T) {
	s := newDocServer(t, map[string]string{
		"/a.jsonld": `{"@context": {"a": "http://x.org/a"}}`,
		"/b.jsonld": `{"@context": {"b": "http://x.org/b"}}`,
	})
	l := NewLoader(LoaderOptions{CacheSize: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				raw := []any{s.URL + "/a.jsonld", s.URL + "/b.jsonld", map[string]any{"t": fmt.Sprintf("http://x.org/%d", (g*200+i)%10)}}
				c, err := l.Load(context.Background(), raw)
				if err != nil {
					t.Error(err)
					return
				}
				if c.Expand("a") != "http://x.org/a" || c.Compact("http://x.org/b") != "b" {
					t.Error("wrong expansion")
					return
				}
			}
		})
	}
	wg.Wait()
	if s.count("/a.jsonld") != 1 || s.count("/b.jsonld") != 1 {
		t.Errorf("fetches: a=%d b=%d, want 1 each", s.count("/a.jsonld"), s.count("/b.jsonld"))
	}
}

func TestTTLRefetchesAndRefreshesProcessedContexts(t *testing.T) {
	s := newDocServer(t, map[string]string{"/v.jsonld": `{"@context": {"t": "http://x.org/v1"}}`})
	l := NewLoader(LoaderOptions{TTL: time.Minute})
	clock := withClock(l)
	raw := []any{s.URL + "/v.jsonld"}
	c, err := l.Load(context.Background(), raw)
	if err != nil || c.Expand("t") != "http://x.org/v1" {
		t.Fatalf("Load = %v, %v", c, err)
	}
	s.set("/v.jsonld", `{"@context": {"t": "http://x.org/v2"}}`)
	clock.advance(30 * time.Second)
	c, _ = l.Load(context.Background(), raw)
	if c.Expand("t") != "http://x.org/v1" || s.count("/v.jsonld") != 1 {
		t.Errorf("within the TTL: %q after %d fetches", c.Expand("t"), s.count("/v.jsonld"))
	}
	clock.advance(31 * time.Second)
	c, _ = l.Load(context.Background(), raw)
	if c.Expand("t") != "http://x.org/v2" || s.count("/v.jsonld") != 2 {
		t.Errorf("after the TTL: %q after %d fetches", c.Expand("t"), s.count("/v.jsonld"))
	}
}

func TestOversizeDocuments(t *testing.T) {
	big := `{"@context": {"pad": "` + strings.Repeat("x", 400) + `"}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked.jsonld" {
			// No Content-Length: the limit must hold while reading.
			for i := 0; i < len(big); i += 50 {
				fmt.Fprint(w, big[i:min(i+50, len(big))])
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		fmt.Fprint(w, big)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "big.jsonld")
	if err := os.WriteFile(file, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLoader(LoaderOptions{MaxDocumentBytes: 256, Files: map[string]string{"https://files.example/big.jsonld": file}})
	for _, u := range []string{srv.URL + "/sized.jsonld", srv.URL + "/chunked.jsonld", "https://files.example/big.jsonld"} {
		_, err := l.Load(context.Background(), u)
		if !errors.Is(err, ErrInvalidContext) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s: Load = %v, want ErrInvalidContext over the limit", u, err)
		}
	}
	l = NewLoader(LoaderOptions{MaxDocumentBytes: 1024})
	if _, err := l.Load(context.Background(), srv.URL+"/chunked.jsonld"); err != nil {
		t.Errorf("under the limit: %v", err)
	}
}

func TestFilesAndBuiltins(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ctx.jsonld")
	if err := os.WriteFile(good, []byte(`{"@context": ["https://builtin.example/sdm.jsonld", {"site": "http://site.example/"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sdm, err := os.ReadFile("testdata/sdm-environment-context.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string][]byte{
		"https://builtin.example/sdm.jsonld": sdm,
		"https://builtin.example/bad.jsonld": []byte(`{"@context": `),
		// A builtin wins over the network even for a reachable-looking URL.
		"http://127.0.0.1:1/never.jsonld": []byte(`{"@context": {"never": "http://x.org/never"}}`),
	}
	l := offline(t, LoaderOptions{
		Builtin: builtin,
		Files: map[string]string{
			"https://site.example/ctx.jsonld":     good,
			"https://site.example/missing.jsonld": filepath.Join(dir, "missing.jsonld"),
		},
	})
	builtin["https://builtin.example/late.jsonld"] = []byte(`{"@context": {}}`) // the Loader copied the map

	c, err := l.Load(context.Background(), "https://site.example/ctx.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	if c.Expand("temperature") != sdmEnv+"temperature" || c.Expand("site:x") != "http://site.example/x" {
		t.Errorf("temperature -> %q, site:x -> %q", c.Expand("temperature"), c.Expand("site:x"))
	}
	if c, err := l.Load(context.Background(), "http://127.0.0.1:1/never.jsonld"); err != nil || c.Expand("never") != "http://x.org/never" {
		t.Errorf("builtin: %v", err)
	}
	for u, want := range map[string]error{
		"https://site.example/missing.jsonld": ErrContextNotAvailable,
		"https://builtin.example/bad.jsonld":  ErrInvalidContext,
		"https://builtin.example/late.jsonld": ErrContextNotAvailable,
		"https://unknown.example/x.jsonld":    ErrContextNotAvailable,
	} {
		if _, err := l.Load(context.Background(), u); !errors.Is(err, want) {
			t.Errorf("%s: Load = %v, want %v", u, err, want)
		}
	}
}

func TestLRUEviction(t *testing.T) {
	l := offline(t, LoaderOptions{CacheSize: 2})
	load := func(i int) *Context {
		c, err := l.Load(context.Background(), map[string]any{"t": fmt.Sprintf("http://x.org/%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c0 := load(0)
	load(1)
	if load(0) != c0 {
		t.Error("recently used context was evicted")
	}
	load(2) // evicts 1, the least recently used
	if load(0) != c0 {
		t.Error("context 0 was evicted instead of 1")
	}
	l.mu.Lock()
	n := l.contexts.len()
	l.mu.Unlock()
	if n != 2 {
		t.Errorf("cache holds %d contexts, want 2", n)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/ctx.jsonld"
	srv.Close() // nothing listens on that port any more
	l := NewLoader(LoaderOptions{Timeout: 2 * time.Second})
	_, err := l.Load(context.Background(), []any{u})
	if !errors.Is(err, ErrContextNotAvailable) || !strings.Contains(err.Error(), u) {
		t.Fatalf("Load = %v, want ErrContextNotAvailable naming the URL", err)
	}
	st := l.Stats()
	if st.Fetches != 1 || st.FetchFailures != 1 || st.ContextMisses != 1 || st.Contexts != 0 || st.Documents != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestStatsCountHits(t *testing.T) {
	l := offline(t, LoaderOptions{})
	raw := map[string]any{"a": "http://x.org/a"}
	for range 3 {
		if _, err := l.Load(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.ContextHits != 2 || st.ContextMisses != 1 || st.Contexts != 1 || st.Fetches != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
