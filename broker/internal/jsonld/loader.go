package jsonld

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of LoaderOptions.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultCacheSize        = 1024
	DefaultTTL              = time.Hour
	DefaultNegativeTTL      = 10 * time.Second
	DefaultMaxDocumentBytes = 1 << 20
)

// LoaderOptions configures a Loader. The zero value is usable: every field
// has a default.
type LoaderOptions struct {
	// Timeout bounds each fetch of a remote context (default 5s). A caller
	// whose context ends earlier stops waiting earlier.
	Timeout time.Duration
	// Files maps context URLs to local files served instead of the network
	// (checked after Builtin, before any fetch). Files are re-read after TTL.
	Files map[string]string
	// Builtin maps context URLs to documents compiled into the binary, such
	// as Smart Data Models contexts. The map is copied; the bytes are not and
	// must not be modified afterwards.
	Builtin map[string][]byte
	// CacheSize is the capacity of the LRU caches of processed contexts and
	// of fetched documents (default 1024 each).
	CacheSize int
	// TTL is how long a fetched remote document (or a file) is used before it
	// is fetched again (default 1h).
	TTL time.Duration
	// NegativeTTL is how long a failed fetch is remembered, so that a dead
	// URL does not cost a timeout per request (default 10s).
	NegativeTTL time.Duration
	// HTTPClient fetches remote contexts (default: a client with
	// http.DefaultTransport). Its own Timeout, if any, also applies.
	HTTPClient *http.Client
	// MaxDocumentBytes limits the size of a context document (default 1 MiB).
	MaxDocumentBytes int64
	// Offline forbids network fetches: URLs that are not core, builtin or in
	// Files fail with ErrContextNotAvailable.
	Offline bool
	// Logger receives fetch failures (Warn) and fetches (Debug). Default:
	// discard.
	Logger *slog.Logger
}

// Loader turns @context values into processed Contexts, fetching and caching
// remote context documents. A Loader is safe for concurrent use by any
// number of goroutines; it owns its caches and starts a goroutine per
// in-flight fetch, which ends with the fetch (after at most Timeout).
type Loader struct {
	opts   LoaderOptions
	client *http.Client
	log    *slog.Logger
	now    func() time.Time // replaced by tests

	builtin map[string]*builtinDoc // read-only after NewLoader

	mu       sync.Mutex
	contexts *lru[contextKey, cachedContext]
	docs     *lru[string, cachedDoc]
	flights  map[string]*flight

	hits, misses, fetches, failures atomic.Int64
}

// LoaderStats are a Loader's counters since NewLoader, for the broker's
// metrics.
type LoaderStats struct {
	ContextHits   int64 // Load/LoadLink answered from the processed-context cache
	ContextMisses int64 // Load/LoadLink that processed a context
	Fetches       int64 // documents read from the network or from Files
	FetchFailures int64 // of those, the ones that failed
	Contexts      int   // processed contexts held in the cache now
	Documents     int   // documents (and remembered failures) held now
}

// Stats returns a snapshot of the Loader's counters.
func (l *Loader) Stats() LoaderStats {
	l.mu.Lock()
	nc, nd := l.contexts.len(), l.docs.len()
	l.mu.Unlock()
	return LoaderStats{
		ContextHits:   l.hits.Load(),
		ContextMisses: l.misses.Load(),
		Fetches:       l.fetches.Load(),
		FetchFailures: l.failures.Load(),
		Contexts:      nc,
		Documents:     nd,
	}
}

// contextKey identifies a processed context: a URL (from Load of a string
// or from a Link header) or the hash of an in-body value.
type contextKey struct {
	url  string
	hash [32]byte // SHA-256 of the canonical encoding; zero for URLs
}

type cachedContext struct {
	ctx     *Context
	expires time.Time // zero: never
}

type cachedDoc struct {
	value   any
	err     error
	expires time.Time
}

type builtinDoc struct {
	url   string
	raw   []byte
	once  sync.Once
	value any
	err   error
}

// flight is one fetch that concurrent callers share.
type flight struct {
	done    chan struct{}
	value   any
	expires time.Time
	err     error
	waiters atomic.Int32
}

// NewLoader returns a Loader with the given options, defaults filled in. It
// does no I/O.
func NewLoader(o LoaderOptions) *Loader {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.MaxDocumentBytes <= 0 {
		o.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loader{
		opts:     o,
		client:   client,
		log:      log.With("component", "jsonld"),
		now:      time.Now,
		builtin:  make(map[string]*builtinDoc, len(o.Builtin)),
		contexts: newLRU[contextKey, cachedContext](o.CacheSize),
		docs:     newLRU[string, cachedDoc](o.CacheSize),
		flights:  make(map[string]*flight),
	}
	for u, raw := range o.Builtin {
		l.builtin[u] = &builtinDoc{url: u, raw: raw}
	}
	l.opts.Files = make(map[string]string, len(o.Files))
	for u, path := range o.Files {
		l.opts.Files[u] = path
	}
	l.opts.Builtin = nil
	return l
}

// Load processes an in-body "@context" value: a URL string, an object
// (map[string]any), an array ([]any of URLs, objects and nulls, or
// []string), or nil (the core context). The core context is applied first
// and last (see the package documentation). Results are cached: loading an
// equal value again is a hash and a map lookup.
//
// Errors wrap ErrContextNotAvailable (a remote context could not be
// retrieved, or ctx ended) or ErrInvalidContext (the value or a document is
// not a valid context).
func (l *Loader) Load(ctx context.Context, raw any) (*Context, error) {
	switch v := raw.(type) {
	case nil:
		return Core(), nil
	case string:
		return l.loadURL(ctx, v)
	case map[string]any, []any, []string:
		sum, ok := hashJSON(v)
		if !ok {
			return nil, invalid("the @context holds a value that is not JSON")
		}
		return l.load(ctx, contextKey{hash: sum}, raw)
	default:
		return nil, invalid("an @context must be a URL, an object, an array or null, not %s", jsonKind(raw))
	}
}

func (l *Loader) loadURL(ctx context.Context, u string) (*Context, error) {
	if u == CoreContextURL {
		return Core(), nil
	}
	return l.load(ctx, contextKey{url: u}, nil)
}

// load returns the cached Context for key or processes raw (key.url when
// raw is nil) and caches the result.
func (l *Loader) load(ctx context.Context, key contextKey, raw any) (*Context, error) {
	l.mu.Lock()
	cached, ok := l.contexts.get(key)
	if ok && !cached.expires.IsZero() && !l.now().Before(cached.expires) {
		l.contexts.remove(key)
		ok = false
	}
	l.mu.Unlock()
	if ok {
		l.hits.Add(1)
		return cached.ctx, nil
	}
	l.misses.Add(1)

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContextNotAvailable, err)
	}
	if raw == nil {
		raw = key.url
	}
	p := newProcessor(ctx, l)
	if err := p.process(raw, ""); err != nil {
		return nil, err
	}
	c := p.finish(deepCopy(raw))
	l.mu.Lock()
	l.contexts.put(key, cachedContext{ctx: c, expires: p.expires})
	l.mu.Unlock()
	return c, nil
}

// LoadLink processes the value of an HTTP Link header: the link whose rel is
// "http://www.w3.org/ns/json-ld#context" names the context. An empty header,
// or one without such a link, gives Core(). A malformed header is
// ErrInvalidLink; the rest is as for Load with the URL.
func (l *Loader) LoadLink(ctx context.Context, linkHeader string) (*Context, error) {
	if strings.TrimSpace(linkHeader) == "" {
		return Core(), nil
	}
	u, err := ParseLink(linkHeader)
	if err != nil {
		return nil, err
	}
	if u == "" {
		return Core(), nil
	}
	return l.loadURL(ctx, u)
}

// document returns the "@context" value of the document at u (core URLs are
// handled by the processor). Order: builtin, cache, files, network.
func (l *Loader) document(ctx context.Context, u string) (any, time.Time, error) {
	if b, ok := l.builtin[u]; ok {
		b.once.Do(func() { b.value, b.err = parseDocument(b.url, b.raw) })
		return b.value, time.Time{}, b.err
	}

	path, isFile := l.opts.Files[u]
	var fetch func(context.Context) (any, error)
	switch {
	case isFile:
		fetch = func(context.Context) (any, error) { return l.readFile(u, path) }
	default:
		pu, err := url.Parse(u)
		if err != nil {
			return nil, time.Time{}, invalid("context URL %q: %v", u, err)
		}
		if pu.Scheme != "http" && pu.Scheme != "https" {
			return nil, time.Time{}, invalid("context URL %q: only http and https contexts are fetched", u)
		}
		if pu.Host == "" {
			return nil, time.Time{}, invalid("context URL %q has no host", u)
		}
		if l.opts.Offline {
			return nil, time.Time{}, fmt.Errorf("%w: %s: offline and not a built-in or file context", ErrContextNotAvailable, u)
		}
		fetch = func(fctx context.Context) (any, error) { return l.get(fctx, u) }
	}

	l.mu.Lock()
	if d, ok := l.docs.get(u); ok {
		if l.now().Before(d.expires) {
			l.mu.Unlock()
			return d.value, d.expires, d.err
		}
		l.docs.remove(u)
	}
	f, joined := l.flights[u]
	if !joined {
		f = &flight{done: make(chan struct{})}
		l.flights[u] = f
	}
	f.waiters.Add(1)
	l.mu.Unlock()

	if !joined {
		l.fetches.Add(1)
		go l.run(ctx, u, f, fetch)
	}
	select {
	case <-f.done:
		return f.value, f.expires, f.err
	case <-ctx.Done():
		return nil, time.Time{}, fmt.Errorf("%w: %s: %w", ErrContextNotAvailable, u, context.Cause(ctx))
	}
}

// run performs one shared fetch. It is detached from the starting caller's
// cancellation (other callers may be waiting) but bounded by Timeout.
func (l *Loader) run(ctx context.Context, u string, f *flight, fetch func(context.Context) (any, error)) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.Timeout)
	defer cancel()
	start := l.now()
	value, err := fetch(fctx)
	now := l.now()
	d := cachedDoc{value: value, err: err, expires: now.Add(l.opts.TTL)}
	if err != nil {
		l.failures.Add(1)
		d.value = nil
		d.expires = now.Add(l.opts.NegativeTTL)
		l.log.Warn("context fetch failed", "url", u, "error", err)
	} else {
		l.log.Debug("context fetched", "url", u, "duration", now.Sub(start))
	}
	f.value, f.err, f.expires = d.value, d.err, d.expires
	l.mu.Lock()
	l.docs.put(u, d)
	delete(l.flights, u)
	l.mu.Unlock()
	close(f.done)
}

// get fetches a remote context document.
func (l *Loader) get(ctx context.Context, u string) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, invalid("context URL %q: %v", u, err)
	}
	req.Header.Set("Accept", "application/ld+json, application/json;q=0.9, */*;q=0.1")
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrContextNotAvailable, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%w: %s: HTTP status %d", ErrContextNotAvailable, u, resp.StatusCode)
	}
	limit := l.opts.MaxDocumentBytes
	if resp.ContentLength > limit {
		return nil, invalid("%s: document of %d bytes is over the %d-byte limit", u, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading body: %w", ErrContextNotAvailable, u, err)
	}
	if int64(len(body)) > limit {
		return nil, invalid("%s: document is over the %d-byte limit", u, limit)
	}
	return parseDocument(u, body)
}

// readFile reads a context document from the Files map.
func (l *Loader) readFile(u, path string) (any, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: file %s does not exist", ErrContextNotAvailable, u, path)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrContextNotAvailable, u, err)
	}
	defer f.Close()
	limit := l.opts.MaxDocumentBytes
	body, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading %s: %w", ErrContextNotAvailable, u, path, err)
	}
	if int64(len(body)) > limit {
		return nil, invalid("%s: file %s is over the %d-byte limit", u, path, limit)
	}
	return parseDocument(u, body)
}

// parseDocument returns the "@context" value of a context document.
func parseDocument(u string, body []byte) (any, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, invalid("%s: not JSON: %v", u, err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, invalid("%s: document is %s, not an object", u, jsonKind(doc))
	}
	v, ok := obj["@context"]
	if !ok {
		return nil, invalid("%s: document has no @context", u)
	}
	return v, nil
}

// deepCopy copies a JSON value so that a cached Context does not share maps
// or slices with the request that first sent it.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	case []string:
		return append([]string(nil), v...)
	}
	return v
}
