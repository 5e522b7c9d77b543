// Package ngsiv2source is the "ngsiv2" source kind of Piazza's adapters:
// the entities of an NGSI-v2 broker such as FIWARE Orion, read through
// GET /v2/entities and turned into NGSI-LD (see Convert), for cities moving
// from Orion to Piazza. It can also read a JSON file holding an array of
// NGSI-v2 entities (a dump made with curl .../v2/entities).
//
// Entities are read page by page with limit and offset; options=count asks
// Orion for the total in the Fiware-Total-Count header, and reading stops
// when the total is reached (or at an empty page). Fiware-Service and
// Fiware-ServicePath select the tenant and the service path; X-Auth-Token
// carries a Keystone token. Each entity is one record whose fields are the
// NGSI-LD entity's (id, type, attributes); use it with a passthrough
// mapping (the "ngsiv2" preset). An entity that cannot be converted is
// rejected, as it came, and the others go on.
//
// Config keys (beside kind: ngsiv2):
//
//	url:         the broker's base URL (http://orion:1026); or
//	path:        a JSON file with an array of NGSI-v2 entities
//	service:     Fiware-Service (tenant), optional
//	servicePath: Fiware-ServicePath, optional (e.g. /ambiente)
//	type:        only entities of this type (comma-separated list allowed)
//	idPattern:   only ids matching this regular expression
//	q:           an NGSI-v2 simple query (temperature>40)
//	pageSize:    entities per request, 1..1000 (default 1000, Orion's maximum)
//	token:       X-Auth-Token
//	interval:    poll every interval; absent or 0 reads once
//	timeout:     bound on waiting for each answer's headers (default 60s)
//
// Importing the package registers the kind with adapters.Register.
package ngsiv2source

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/piazza-city/piazza/adapters"
)

func init() {
	adapters.Register("ngsiv2", func(cfg adapters.SourceConfig) (adapters.Source, error) {
		var c Config
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		c.Path = cfg.Resolve(c.Path)
		c.Logger = cfg.Logger
		return New(c)
	})
}

// Defaults and bounds.
const (
	DefaultPageSize = 1000
	MaxPageSize     = 1000 // Orion refuses larger limits
	DefaultTimeout  = 60 * time.Second
	// MaxPageBytes bounds one answer.
	MaxPageBytes = 256 << 20
)

// Config is the configuration of an ngsiv2 source; see the package comment.
type Config struct {
	URL         string            `yaml:"url"`
	Path        string            `yaml:"path"`
	Service     string            `yaml:"service"`
	ServicePath string            `yaml:"servicePath"`
	Type        string            `yaml:"type"`
	IDPattern   string            `yaml:"idPattern"`
	Q           string            `yaml:"q"`
	PageSize    int               `yaml:"pageSize"`
	Token       string            `yaml:"token"`
	Interval    adapters.Duration `yaml:"interval"`
	Timeout     adapters.Duration `yaml:"timeout"`
	// Logger receives failed polls; nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// Client, if set, makes the requests; nil means a default client.
	Client *http.Client `yaml:"-"`
}

// Source reads the entities of one NGSI-v2 broker (or dump file). It is
// used by one goroutine at a time; Close may be called at any time.
type Source struct {
	cfg    Config
	client *http.Client
	input  string
}

// New validates cfg and returns a source. It opens no connection.
func New(cfg Config) (*Source, error) {
	switch {
	case cfg.URL == "" && cfg.Path == "":
		return nil, fmt.Errorf("%w: ngsiv2: url (the broker) or path (a dump file) is required", adapters.ErrInvalidConfig)
	case cfg.URL != "" && cfg.Path != "":
		return nil, fmt.Errorf("%w: ngsiv2: give url or path, not both", adapters.ErrInvalidConfig)
	}
	s := &Source{cfg: cfg, client: cfg.Client, input: cfg.Path}
	if cfg.URL != "" {
		u, err := url.Parse(cfg.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: ngsiv2: url %q: want http(s)://host[:port]", adapters.ErrInvalidConfig, cfg.URL)
		}
		base := strings.TrimSuffix(strings.TrimRight(cfg.URL, "/"), "/v2")
		s.cfg.URL = base
		s.input = base + "/v2/entities"
	}
	if cfg.ServicePath != "" && !strings.HasPrefix(cfg.ServicePath, "/") {
		return nil, fmt.Errorf("%w: ngsiv2: servicePath %q must start with /", adapters.ErrInvalidConfig, cfg.ServicePath)
	}
	if s.cfg.PageSize == 0 {
		s.cfg.PageSize = DefaultPageSize
	}
	if s.cfg.PageSize < 1 || s.cfg.PageSize > MaxPageSize {
		return nil, fmt.Errorf("%w: ngsiv2: pageSize %d: want 1..%d", adapters.ErrInvalidConfig, cfg.PageSize, MaxPageSize)
	}
	if s.cfg.Timeout == 0 {
		s.cfg.Timeout = adapters.Duration(DefaultTimeout)
	}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Duration(s.cfg.Timeout)
		s.client = &http.Client{Transport: tr}
	}
	return s, nil
}

// Close releases nothing: requests end with each page.
func (s *Source) Close() error { return nil }

// Run reads every entity once, or on every tick of the interval.
func (s *Source) Run(ctx context.Context, out adapters.Emitter) error {
	return adapters.Poll(ctx, time.Duration(s.cfg.Interval), s.cfg.Logger, out, s.poll)
}

func (s *Source) poll(ctx context.Context, out adapters.Emitter) error {
	if s.cfg.Path != "" {
		data, err := os.ReadFile(s.cfg.Path)
		if err != nil {
			return fmt.Errorf("ngsiv2: %w", err)
		}
		var page []json.RawMessage
		if err := json.Unmarshal(data, &page); err != nil {
			return fmt.Errorf("%w: ngsiv2: %s: want a JSON array of NGSI-v2 entities: %v", adapters.ErrMalformedRecord, s.cfg.Path, err)
		}
		return s.emit(page, 0, out)
	}
	for offset := 0; ; {
		page, total, err := s.fetch(ctx, offset)
		if err != nil {
			return err
		}
		if err := s.emit(page, offset, out); err != nil {
			return err
		}
		offset += len(page)
		if len(page) == 0 || (total >= 0 && offset >= total) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// emit converts and hands over one page of entities.
func (s *Source) emit(page []json.RawMessage, offset int, out adapters.Emitter) error {
	var header *adapters.Header
	for i, raw := range page {
		rec := adapters.Record{Input: s.input, Index: offset + i + 1}
		var compact bytes.Buffer
		if json.Compact(&compact, raw) == nil {
			rec.Raw = compact.String()
		} else {
			rec.Raw = string(raw)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v2 map[string]any
		if err := dec.Decode(&v2); err != nil || v2 == nil {
			if err == nil {
				err = fmt.Errorf("not an object")
			}
			if err := out.Reject(rec, fmt.Errorf("%w: entity %d: %v", adapters.ErrMalformedRecord, rec.Index, err)); err != nil {
				return err
			}
			continue
		}
		names, values, err := Convert(v2)
		if err != nil {
			if err := out.Reject(rec, err); err != nil {
				return err
			}
			continue
		}
		if !header.SameNames(names) {
			header = adapters.NewFieldsHeader(names)
		}
		rec.Header, rec.Values = header, values
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// fetch reads one page; total is -1 when the broker did not say.
func (s *Source) fetch(ctx context.Context, offset int) ([]json.RawMessage, int, error) {
	q := url.Values{"limit": {strconv.Itoa(s.cfg.PageSize)}, "offset": {strconv.Itoa(offset)}, "options": {"count"}}
	if s.cfg.Type != "" {
		q.Set("type", s.cfg.Type)
	}
	if s.cfg.IDPattern != "" {
		q.Set("idPattern", s.cfg.IDPattern)
	}
	if s.cfg.Q != "" {
		q.Set("q", s.cfg.Q)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.input+"?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBroker, err)
	}
	req.Header.Set("Accept", "application/json")
	if s.cfg.Service != "" {
		req.Header.Set("Fiware-Service", s.cfg.Service)
	}
	if s.cfg.ServicePath != "" {
		req.Header.Set("Fiware-ServicePath", s.cfg.ServicePath)
	}
	if s.cfg.Token != "" {
		req.Header.Set("X-Auth-Token", s.cfg.Token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("%w: GET %s: %v", ErrBroker, s.input, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPageBytes))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: GET %s: %v", ErrBroker, s.input, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"description"`
		}
		msg := strings.TrimSpace(string(body[:min(len(body), 200)]))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error + ": " + e.Description
		}
		return nil, 0, fmt.Errorf("%w: GET %s (offset %d): %s: %s", ErrBroker, s.input, offset, resp.Status, msg)
	}
	var page []json.RawMessage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, 0, fmt.Errorf("%w: GET %s (offset %d): the answer is not an array of entities: %v", ErrBroker, s.input, offset, err)
	}
	total := -1
	if v := resp.Header.Get("Fiware-Total-Count"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			total = n
		}
	}
	return page, total, nil
}
