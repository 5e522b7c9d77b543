// Package ckansource is the "ckan" source kind of Piazza's adapters: a
// resource of a dataset published on a CKAN portal (the Italian national
// catalogue dati.gov.it and most regional and municipal portals are CKAN
// with the DCAT-AP_IT profile).
//
// The source calls package_show to find the dataset's resources and picks
// one: the configured resource (by id or name), else the first resource
// loaded in the portal's DataStore, else the first whose format the adapters
// read (CSV, JSON, GeoJSON). A DataStore resource is read page by page with
// datastore_search (limit/offset, sorted by _id so that pages do not
// overlap), its records' fields in the order of the answer's "fields"; any
// other resource is downloaded from its url and read in its format.
//
// With an interval the dataset is polled: when neither the resource's
// last_modified nor its metadata_modified changed since the last complete
// read, the poll does nothing.
//
// Config keys (beside kind: ckan):
//
//	url:      the portal's base URL (https://www.dati.gov.it/opendata); the
//	          API is {url}/api/3/action/...; required
//	dataset:  the dataset's name or id; required unless resource is an id
//	          of a DataStore resource
//	resource: a resource id or name (optional, see above)
//	filters:  DataStore filters, column: value (optional)
//	pageSize: records per datastore_search call (default 1000)
//	apiKey:   sent as the Authorization header (private datasets)
//	interval: poll every interval; absent or 0 reads once
//	timeout:  bound on waiting for each answer's headers (default 60s)
//	...       format keys for downloaded resources (separator, encoding...)
//
// Importing the package registers the kind with adapters.Register.
package ckansource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/piazza-city/piazza/adapters"
)

func init() {
	adapters.Register("ckan", func(cfg adapters.SourceConfig) (adapters.Source, error) {
		own, rest := cfg.Split(ownKeys...)
		var c Config
		if err := own.Decode(&c); err != nil {
			return nil, err
		}
		c.FormatConfig = rest
		return New(c)
	})
}

var ownKeys = []string{"url", "dataset", "resource", "filters", "pageSize", "apiKey", "interval", "timeout"}

// Defaults.
const (
	DefaultPageSize = 1000
	DefaultTimeout  = 60 * time.Second
	// MaxPageSize is CKAN's default ckan.datastore.search.rows_max.
	MaxPageSize = 32000
)

// Config is the configuration of a ckan source; see the package comment.
type Config struct {
	URL      string            `yaml:"url"`
	Dataset  string            `yaml:"dataset"`
	Resource string            `yaml:"resource"`
	Filters  map[string]any    `yaml:"filters"`
	PageSize int               `yaml:"pageSize"`
	APIKey   string            `yaml:"apiKey"`
	Interval adapters.Duration `yaml:"interval"`
	Timeout  adapters.Duration `yaml:"timeout"`
	// FormatConfig holds the settings for downloaded resources and the
	// logger for failed polls.
	FormatConfig adapters.SourceConfig `yaml:"-"`
	// Client, if set, makes the requests; nil means a default client.
	Client *http.Client `yaml:"-"`
}

// Source reads one resource of a CKAN portal. It is used by one goroutine
// at a time; Close may be called at any time and more than once.
type Source struct {
	cfg     Config
	api     string
	client  *http.Client
	filters string
	// version of the resource at the last complete read (Run only)
	lastVersion string

	mu   sync.Mutex
	body io.Closer
}

// New validates cfg and returns a source. It opens no connection.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: ckan: url is required (the portal's base URL)", adapters.ErrInvalidConfig)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: ckan: url %q: want http(s)://host[/path]", adapters.ErrInvalidConfig, cfg.URL)
	}
	if err := checkFormatKeys(cfg.FormatConfig); err != nil {
		return nil, err
	}
	if cfg.Dataset == "" && cfg.Resource == "" {
		return nil, fmt.Errorf("%w: ckan: dataset (or a DataStore resource id) is required", adapters.ErrInvalidConfig)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.PageSize < 1 || cfg.PageSize > MaxPageSize {
		return nil, fmt.Errorf("%w: ckan: pageSize %d: want 1..%d", adapters.ErrInvalidConfig, cfg.PageSize, MaxPageSize)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = adapters.Duration(DefaultTimeout)
	}
	s := &Source{cfg: cfg, api: strings.TrimRight(cfg.URL, "/") + "/api/3/action/", client: cfg.Client}
	if len(cfg.Filters) > 0 {
		b, err := json.Marshal(cfg.Filters)
		if err != nil {
			return nil, fmt.Errorf("%w: ckan: filters: %v", adapters.ErrInvalidConfig, err)
		}
		s.filters = string(b)
	}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Duration(cfg.Timeout)
		s.client = &http.Client{Transport: tr}
	}
	return s, nil
}

// checkFormatKeys checks the keys meant for downloaded resources: some
// registered format must accept them all (which one reads the resource is
// known only once the dataset is read).
func checkFormatKeys(rest adapters.SourceConfig) error {
	var first error
	for _, f := range adapters.Formats() {
		src, err := adapters.NewReaderSource(f, rest, "", strings.NewReader(""))
		if err == nil {
			_ = src.Close()
			return nil
		}
		if first == nil || f == "csv" {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%w: ckan: %v (ckan's own keys: %s)", adapters.ErrInvalidConfig, first, strings.Join(ownKeys, ", "))
}

// Close closes a download being read, if any.
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

// Run reads the resource once, or on every tick of the interval.
func (s *Source) Run(ctx context.Context, out adapters.Emitter) error {
	return adapters.Poll(ctx, time.Duration(s.cfg.Interval), s.cfg.FormatConfig.Log(), out, s.poll)
}

// resource is the part of a CKAN resource the source uses.
type resource struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Format           string `json:"format"`
	URL              string `json:"url"`
	DatastoreActive  bool   `json:"datastore_active"`
	LastModified     string `json:"last_modified"`
	MetadataModified string `json:"metadata_modified"`
}

func (s *Source) poll(ctx context.Context, out adapters.Emitter) error {
	res := resource{ID: s.cfg.Resource, DatastoreActive: true}
	if s.cfg.Dataset != "" {
		var pkg struct {
			Name      string     `json:"name"`
			Resources []resource `json:"resources"`
		}
		if err := s.call(ctx, "package_show", url.Values{"id": {s.cfg.Dataset}}, &pkg); err != nil {
			return err
		}
		r, err := s.pick(pkg.Resources)
		if err != nil {
			return err
		}
		res = r
	}
	version := res.ID + "|" + res.LastModified + "|" + res.MetadataModified
	if s.cfg.Dataset != "" && s.lastVersion == version {
		s.cfg.FormatConfig.Log().Debug("resource not modified", "dataset", s.cfg.Dataset, "resource", res.ID)
		return nil
	}
	var err error
	if res.DatastoreActive {
		err = s.readDatastore(ctx, res, out)
	} else {
		err = s.download(ctx, res, out)
	}
	if err != nil {
		return err
	}
	s.lastVersion = version
	return nil
}

// pick chooses the resource to read.
func (s *Source) pick(rs []resource) (resource, error) {
	if want := s.cfg.Resource; want != "" {
		for _, r := range rs {
			if r.ID == want || strings.EqualFold(strings.TrimSpace(r.Name), strings.TrimSpace(want)) {
				return r, nil
			}
		}
		return resource{}, fmt.Errorf("%w: dataset %q has no resource %q (resources: %s)", ErrNoResource, s.cfg.Dataset, want, list(rs))
	}
	for _, r := range rs {
		if r.DatastoreActive {
			return r, nil
		}
	}
	for _, r := range rs {
		if adapters.IsFormat(formatOf(r.Format)) {
			return r, nil
		}
	}
	return resource{}, fmt.Errorf("%w: dataset %q has no DataStore resource and none in a format the adapters read (resources: %s)",
		ErrNoResource, s.cfg.Dataset, list(rs))
}

func list(rs []resource) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%q (%s, id %s)", r.Name, r.Format, r.ID)
	}
	return strings.Join(parts, ", ")
}

// formatOf maps a CKAN resource format to an adapters format name.
func formatOf(f string) string {
	switch strings.ToLower(strings.TrimSpace(f)) {
	case "csv", "text/csv":
		return "csv"
	case "json", "application/json":
		return "json"
	case "geojson", "application/geo+json":
		return "geojson"
	case "jsonl", "ndjson":
		return "jsonl"
	}
	return ""
}

// readDatastore pages through datastore_search.
func (s *Source) readDatastore(ctx context.Context, res resource, out adapters.Emitter) error {
	input := s.api + "datastore_search?resource_id=" + url.QueryEscape(res.ID)
	var header *adapters.Header
	for offset := 0; ; {
		q := url.Values{"resource_id": {res.ID}, "limit": {strconv.Itoa(s.cfg.PageSize)},
			"offset": {strconv.Itoa(offset)}, "sort": {"_id"}}
		if s.filters != "" {
			q.Set("filters", s.filters)
		}
		var page struct {
			Fields []struct {
				ID string `json:"id"`
			} `json:"fields"`
			Records []json.RawMessage `json:"records"`
			Total   *int              `json:"total"`
		}
		if err := s.call(ctx, "datastore_search", q, &page); err != nil {
			return err
		}
		if header == nil {
			names := make([]string, 0, len(page.Fields))
			for _, f := range page.Fields {
				if f.ID != "_full_text" {
					names = append(names, f.ID)
				}
			}
			header = adapters.NewHeader(names, "")
		}
		for i, raw := range page.Records {
			rec := adapters.Record{Input: input, Index: offset + i + 1, Header: header}
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err == nil {
				rec.Raw = compact.String()
			} else {
				rec.Raw = string(raw)
			}
			obj, err := decodeObject(raw)
			if err != nil {
				if err := out.Reject(rec, fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)); err != nil {
					return err
				}
				continue
			}
			rec.Values = make([]any, header.Len())
			for j := range rec.Values {
				rec.Values[j] = obj[header.Name(j)]
			}
			if err := out.Emit(rec); err != nil {
				return err
			}
		}
		offset += len(page.Records)
		if len(page.Records) == 0 || (page.Total != nil && offset >= *page.Total) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("record is not a JSON object")
	}
	return obj, nil
}

// download reads a resource that is not in the DataStore from its url.
func (s *Source) download(ctx context.Context, res resource, out adapters.Emitter) error {
	format := formatOf(res.Format)
	if !adapters.IsFormat(format) {
		return fmt.Errorf("%w: resource %q has format %q and is not in the DataStore", ErrNoResource, res.Name, res.Format)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, res.URL, nil)
	if err != nil {
		return fmt.Errorf("%w: resource %q: url %q: %v", ErrPortal, res.Name, res.URL, err)
	}
	if s.cfg.APIKey != "" {
		req.Header.Set("Authorization", s.cfg.APIKey)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: GET %s: %v", ErrPortal, res.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", ErrPortal, res.URL, resp.Status)
	}
	src, err := adapters.NewReaderSource(format, s.cfg.FormatConfig, res.URL, resp.Body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.body = resp.Body
	s.mu.Unlock()
	err = src.Run(ctx, out)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	s.mu.Lock()
	s.body = nil
	s.mu.Unlock()
	return err
}

// MaxAnswerBytes bounds one API answer (a page of the DataStore).
const MaxAnswerBytes = 256 << 20

// call makes one action API request and decodes its result into v.
func (s *Source) call(ctx context.Context, action string, q url.Values, v any) error {
	u := s.api + action + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPortal, err)
	}
	req.Header.Set("Accept", "application/json")
	if s.cfg.APIKey != "" {
		req.Header.Set("Authorization", s.cfg.APIKey)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: %v", ErrPortal, action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrPortal, action, err)
	}
	var env struct {
		Success bool            `json:"success"`
		Result  json.RawMessage `json:"result"`
		Error   struct {
			Type    string `json:"__type"`
			Message any    `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		snippet := strings.TrimSpace(string(body[:min(len(body), 200)]))
		return fmt.Errorf("%w: %s %s: %s answered with no CKAN JSON: %q", ErrPortal, action, describe(q), resp.Status, snippet)
	}
	if !env.Success || resp.StatusCode != http.StatusOK {
		msg := env.Error.Type
		if env.Error.Message != nil {
			msg += ": " + fmt.Sprint(env.Error.Message)
		}
		return fmt.Errorf("%w: %s %s: %s: %s", ErrPortal, action, describe(q), resp.Status, strings.TrimPrefix(msg, ": "))
	}
	if err := json.Unmarshal(env.Result, v); err != nil {
		return fmt.Errorf("%w: %s %s: unexpected result: %v", ErrPortal, action, describe(q), err)
	}
	return nil
}

func describe(q url.Values) string {
	if id := q.Get("id"); id != "" {
		return "id=" + id
	}
	return "resource_id=" + q.Get("resource_id") + " offset=" + q.Get("offset")
}
