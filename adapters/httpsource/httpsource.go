// Package httpsource is the "http" source kind of Piazza's adapters: a file
// served over HTTP(S) (a CSV export on a municipal site, a JSON feed),
// fetched once or polled on a schedule.
//
// Polling is conditional: the ETag and Last-Modified of the last complete
// read are sent back as If-None-Match and If-Modified-Since, and a 304 Not
// Modified answer means there is nothing to do. A poll whose body could not
// be read to the end keeps the previous validators, so the next poll reads
// the whole file again.
//
// The body is read by a format registered with adapters.RegisterFormat
// ("csv", "json", "jsonl", "geojson"): the format's own settings
// (separator, encoding, records...) sit beside the http keys.
//
// Config keys (in a pipeline's source block, beside kind: http):
//
//	url:      the http(s) URL to fetch; required
//	format:   csv, json, jsonl or geojson; default from the URL's extension,
//	          else from the answer's Content-Type
//	interval: poll every interval ("15m"); absent or 0 fetches once
//	timeout:  bound on waiting for the answer's headers (default 60s)
//	headers:  extra request headers ({Authorization: "Bearer ..."})
//	...       the format's keys (separator: ";", records: result.records...)
//
// Importing the package registers the kind with adapters.Register.
package httpsource

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/piazza-city/piazza/adapters"
)

func init() {
	adapters.Register("http", func(cfg adapters.SourceConfig) (adapters.Source, error) {
		own, rest := cfg.Split(ownKeys...)
		var c Config
		if err := own.Decode(&c); err != nil {
			return nil, err
		}
		c.FormatConfig = rest
		return New(c)
	})
}

var ownKeys = []string{"url", "format", "interval", "timeout", "headers"}

// DefaultTimeout bounds the wait for an answer's headers.
const DefaultTimeout = 60 * time.Second

// Config is the configuration of an http source; see the package comment.
type Config struct {
	URL      string            `yaml:"url"`
	Format   string            `yaml:"format"`
	Interval adapters.Duration `yaml:"interval"`
	Timeout  adapters.Duration `yaml:"timeout"`
	Headers  map[string]string `yaml:"headers"`
	// FormatConfig holds the settings handed to the format (the keys of the
	// source block that are not http's own) and the logger for failed polls.
	FormatConfig adapters.SourceConfig `yaml:"-"`
	// Client, if set, makes the requests (tests with TLS servers, proxies);
	// nil means a client with the default transport and Timeout on headers.
	Client *http.Client `yaml:"-"`
}

// Source fetches one URL. It is used by one goroutine at a time; Close may
// be called at any time and more than once.
type Source struct {
	cfg    Config
	client *http.Client

	// validators of the last complete read (touched by Run only)
	etag, lastModified string

	mu   sync.Mutex
	size int64
	body io.Closer
}

// New validates cfg and returns a source. It opens no connection.
func New(cfg Config) (*Source, error) {
	u, err := url.Parse(cfg.URL)
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: http: url is required", adapters.ErrInvalidConfig)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: http: url %q: want http(s)://host/path", adapters.ErrInvalidConfig, cfg.URL)
	}
	if cfg.Format == "" {
		cfg.Format = formatFromPath(u.Path)
	}
	if cfg.Format != "" {
		// Check the format's settings now, without reading anything.
		src, err := adapters.NewReaderSource(cfg.Format, cfg.FormatConfig, cfg.URL, strings.NewReader(""))
		if err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
		_ = src.Close()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = adapters.Duration(DefaultTimeout)
	}
	for k := range cfg.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			return nil, fmt.Errorf("%w: http: header name %q", adapters.ErrInvalidConfig, k)
		}
	}
	s := &Source{cfg: cfg, client: cfg.Client}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Duration(cfg.Timeout)
		s.client = &http.Client{Transport: tr}
	}
	return s, nil
}

// Size returns the Content-Length of the answer being read (0 if unknown).
func (s *Source) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Close closes the body being read, if any.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.body == nil {
		return nil
	}
	err := s.body.Close()
	s.body = nil
	return err
}

// Run fetches the URL once, or on every tick of the interval until ctx ends.
func (s *Source) Run(ctx context.Context, out adapters.Emitter) error {
	return adapters.Poll(ctx, time.Duration(s.cfg.Interval), s.cfg.FormatConfig.Log(), out, s.poll)
}

// poll makes one conditional request and reads the body, if any.
func (s *Source) poll(ctx context.Context, out adapters.Emitter) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFetch, err)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.etag != "" {
		req.Header.Set("If-None-Match", s.etag)
	}
	if s.lastModified != "" {
		req.Header.Set("If-Modified-Since", s.lastModified)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: GET %s: %v", ErrFetch, s.cfg.URL, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		s.cfg.FormatConfig.Log().Debug("not modified", "url", s.cfg.URL)
		return nil
	case http.StatusOK:
	default:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		msg := strings.TrimSpace(string(snippet))
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("%w: GET %s: %s%s", ErrFetch, s.cfg.URL, resp.Status, msg)
	}
	format := s.cfg.Format
	if format == "" {
		format = formatFromContentType(resp.Header.Get("Content-Type"))
		if format == "" {
			return fmt.Errorf("%w: %s answered Content-Type %q; set format: csv, json, jsonl or geojson",
				ErrUnknownFormat, s.cfg.URL, resp.Header.Get("Content-Type"))
		}
	}
	src, err := adapters.NewReaderSource(format, s.cfg.FormatConfig, s.cfg.URL, resp.Body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.body, s.size = resp.Body, max(resp.ContentLength, 0)
	s.mu.Unlock()
	err = src.Run(ctx, out)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	s.body = nil
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Only a complete read moves the validators on.
	s.etag, s.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return nil
}

func formatFromPath(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".csv", ".tsv", ".txt":
		return "csv"
	case ".json":
		return "json"
	case ".jsonl", ".ndjson":
		return "jsonl"
	case ".geojson":
		return "geojson"
	}
	return ""
}

func formatFromContentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	switch mt {
	case "text/csv", "application/csv", "text/tab-separated-values":
		return "csv"
	case "application/geo+json", "application/vnd.geo+json":
		return "geojson"
	case "application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return "jsonl"
	case "application/json", "text/json":
		return "json"
	}
	return ""
}
