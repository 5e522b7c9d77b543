package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sink receives batches of entities. Deliver is called from one goroutine
// at a time; it returns the fate of each entity, or an error when the batch
// could not be delivered at all (the pipeline then stops).
type Sink interface {
	Deliver(ctx context.Context, batch []Entity) (DeliveryResult, error)
	Close() error
}

// DeliveryResult is what the broker did with one batch.
type DeliveryResult struct {
	// Written counts entities stored (created or replaced).
	Written int
	// Unchanged counts entities identical to the stored state, which the
	// broker skipped (Piazza's Piazza-Unchanged-Count header).
	Unchanged int
	// Rejected lists the entities the broker refused, with its reason.
	Rejected []Rejection
}

// Rejection is one entity the broker refused.
type Rejection struct {
	ID      string  `json:"id"`
	Problem Problem `json:"problem"`
}

// Problem is an RFC 7807 / NGSI-LD ProblemDetails body.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// String renders the problem on one line.
func (p Problem) String() string {
	var parts []string
	if p.Status != 0 {
		parts = append(parts, strconv.Itoa(p.Status))
	}
	if p.Type != "" {
		parts = append(parts, p.Type[strings.LastIndexByte(p.Type, '/')+1:])
	}
	if p.Title != "" {
		parts = append(parts, p.Title)
	}
	if p.Detail != "" {
		parts = append(parts, p.Detail)
	}
	if len(parts) == 0 {
		return "rejected"
	}
	return strings.Join(parts, ": ")
}

// Duration is a time.Duration written in YAML as "5s", "250ms", "1m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 5s or 250ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Defaults of SinkConfig.
const (
	DefaultURL        = "http://localhost:1026"
	DefaultBatchSize  = 1000
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 6
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// SinkConfig configures delivery to a broker. Zero fields take the defaults.
type SinkConfig struct {
	// URL is the broker's base URL (without /ngsi-ld/v1).
	URL string `yaml:"url" json:"url"`
	// Tenant is sent as NGSILD-Tenant when not empty.
	Tenant string `yaml:"tenant" json:"tenant,omitempty"`
	// BatchSize is the number of entities per upsert request.
	BatchSize int `yaml:"batchSize" json:"batchSize"`
	// Timeout bounds one HTTP request.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// MaxRetries bounds the retries of one batch after network errors, 5xx
	// and 429 answers (0 means the default; -1 means no retry).
	MaxRetries int `yaml:"maxRetries" json:"maxRetries"`
	// Backoff is the first retry delay; it doubles each time (with jitter)
	// up to MaxBackoff. A Retry-After header is honoured up to MaxBackoff.
	Backoff    Duration `yaml:"backoff" json:"backoff"`
	MaxBackoff Duration `yaml:"maxBackoff" json:"maxBackoff"`
}

// UnmarshalYAML reads a sink block, rejecting unknown keys.
func (c *SinkConfig) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, c); err != nil {
		return err
	}
	type plain SinkConfig
	return n.Decode((*plain)(c))
}

// withDefaults fills zero fields and checks the rest.
func (c SinkConfig) withDefaults() (SinkConfig, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("%w: sink url %q: want http(s)://host[:port]", ErrInvalidConfig, c.URL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 0 || c.BatchSize > 100000 {
		return c, fmt.Errorf("%w: sink batchSize %d: want 1..100000", ErrInvalidConfig, c.BatchSize)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = -1 // stays -1, so that withDefaults can be applied twice
	}
	if c.Backoff == 0 {
		c.Backoff = Duration(DefaultBackoff)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = c.Backoff
	}
	return c, nil
}

// UnchangedHeader is the response header in which Piazza says how many
// entities of a batch were identical to their stored state.
const UnchangedHeader = "Piazza-Unchanged-Count"

// HTTPSink delivers entities through the NGSI-LD batch upsert operation
// (POST /ngsi-ld/v1/entityOperations/upsert, replace semantics). It is used
// by one goroutine at a time.
type HTTPSink struct {
	cfg      SinkConfig
	endpoint string
	client   *http.Client
	log      *slog.Logger
	buf      []byte
}

// NewHTTPSink checks cfg and returns a sink. client may be nil
// (http.DefaultClient's transport is used); logger may be nil.
func NewHTTPSink(cfg SinkConfig, client *http.Client, logger *slog.Logger) (*HTTPSink, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HTTPSink{cfg: cfg, endpoint: cfg.URL + "/ngsi-ld/v1/entityOperations/upsert", client: client,
		log: logger.With("component", "adapters.sink")}, nil
}

// Config returns the configuration in use, defaults filled in.
func (s *HTTPSink) Config() SinkConfig { return s.cfg }

// Close releases nothing; it exists to satisfy Sink.
func (s *HTTPSink) Close() error { return nil }

// Deliver upserts the batch. Network errors, 5xx and 429 are retried with
// exponential backoff; a 207 answer rejects entities one by one; a 400, 413
// or 422 on a batch of several entities splits it in halves to find the
// entities at fault; 401, 403, 404 and other 4xx stop with ErrBatchRefused.
// Entities without "@context" get the NGSI-LD core context.
func (s *HTTPSink) Deliver(ctx context.Context, batch []Entity) (DeliveryResult, error) {
	var res DeliveryResult
	if len(batch) == 0 {
		return res, nil
	}
	for _, e := range batch {
		if _, ok := e["@context"]; !ok {
			e["@context"] = CoreContext
		}
	}
	err := s.deliver(ctx, batch, &res, 0)
	return res, err
}

func (s *HTTPSink) deliver(ctx context.Context, batch []Entity, res *DeliveryResult, round int) error {
	body, err := appendJSON(s.buf[:0], batch)
	if err != nil {
		return fmt.Errorf("%w: encoding the batch: %v", ErrInvalidEntity, err)
	}
	s.buf = body
	status, header, respBody, err := s.post(ctx, body)
	if err != nil {
		return err
	}
	unchanged := 0
	if v := header.Get(UnchangedHeader); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			unchanged = n
		}
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusOK || status == http.StatusCreated:
		unchanged = min(unchanged, len(batch))
		res.Unchanged += unchanged
		res.Written += len(batch) - unchanged
		return nil
	case status == http.StatusMultiStatus:
		var r struct {
			Success []string `json:"success"`
			Errors  []struct {
				EntityID string          `json:"entityId"`
				Error    json.RawMessage `json:"error"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(respBody, &r); err != nil {
			return fmt.Errorf("%w: 207 answer is not a BatchOperationResult: %v", ErrBrokerUnavailable, err)
		}
		unchanged = min(unchanged, len(r.Success))
		res.Unchanged += unchanged
		res.Written += len(r.Success) - unchanged
		var again []Entity // entities the broker could not store for now
		for _, e := range r.Errors {
			p := parseProblem(e.Error, http.StatusBadRequest)
			if p.Status >= 500 || p.Status == http.StatusTooManyRequests {
				for _, ent := range batch {
					if ent.ID() == e.EntityID {
						again = append(again, ent)
						break
					}
				}
				continue
			}
			res.Rejected = append(res.Rejected, Rejection{ID: e.EntityID, Problem: p})
		}
		if len(again) > 0 {
			return s.retryLater(ctx, again, res, r.Errors[0].Error, round)
		}
		return nil
	case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity) && len(batch) > 1:
		half := len(batch) / 2
		s.log.Debug("splitting a refused batch", "status", status, "size", len(batch))
		if err := s.deliver(ctx, batch[:half], res, round); err != nil {
			return err
		}
		return s.deliver(ctx, batch[half:], res, round)
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		res.Rejected = append(res.Rejected, Rejection{ID: batch[0].ID(), Problem: parseProblem(respBody, status)})
		return nil
	}
	p := parseProblem(respBody, status)
	return fmt.Errorf("%w: %s answered %s", ErrBatchRefused, s.endpoint, p)
}

// retryLater delivers again, after a backoff, the entities of a 207 answer
// that failed with a server error (the broker's log was unavailable for
// them): they are not the data's fault. round counts these rounds; after
// MaxRetries of them it gives up with ErrBrokerUnavailable.
func (s *HTTPSink) retryLater(ctx context.Context, again []Entity, res *DeliveryResult, problem json.RawMessage, round int) error {
	if round >= max(s.cfg.MaxRetries, 0) {
		return fmt.Errorf("%w: %d entities still failing after %d attempts: %s", ErrBrokerUnavailable,
			len(again), round+1, parseProblem(problem, http.StatusServiceUnavailable))
	}
	delay := time.Duration(s.cfg.Backoff) << min(round, 20)
	wait := min(delay/2+rand.N(delay/2+1), time.Duration(s.cfg.MaxBackoff))
	s.log.Warn("broker failed entities of a batch, retrying them", "entities", len(again), "attempt", round+1, "wait", wait)
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	return s.deliver(ctx, again, res, round+1)
}

// post sends one request, retrying what a retry can fix.
func (s *HTTPSink) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	delay := time.Duration(s.cfg.Backoff)
	var lastErr error
	for attempt := 0; ; attempt++ {
		status, header, respBody, err := s.postOnce(ctx, body)
		retryAfter := time.Duration(0)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return 0, nil, nil, ctx.Err()
			}
			lastErr = err
		case status == http.StatusTooManyRequests || status >= 500:
			lastErr = fmt.Errorf("%s answered %s", s.endpoint, parseProblem(respBody, status))
			retryAfter = parseRetryAfter(header.Get("Retry-After"))
		default:
			return status, header, respBody, nil
		}
		if attempt >= max(s.cfg.MaxRetries, 0) {
			return 0, nil, nil, fmt.Errorf("%w after %d attempts: %v", ErrBrokerUnavailable, attempt+1, lastErr)
		}
		wait := delay/2 + rand.N(delay/2+1)
		if retryAfter > wait {
			wait = retryAfter
		}
		wait = min(wait, time.Duration(s.cfg.MaxBackoff))
		s.log.Warn("batch delivery failed, retrying", "attempt", attempt+1, "wait", wait, "error", lastErr)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, time.Duration(s.cfg.MaxBackoff))
	}
}

func (s *HTTPSink) postOnce(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	req.Header.Set("Content-Type", "application/ld+json")
	req.Header.Set("Accept", "application/json")
	if s.cfg.Tenant != "" {
		req.Header.Set("NGSILD-Tenant", s.cfg.Tenant)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, respBody, nil
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func parseProblem(body []byte, status int) Problem {
	var p Problem
	if len(body) > 0 && json.Unmarshal(body, &p) == nil && (p.Type != "" || p.Title != "" || p.Detail != "") {
		if p.Status == 0 {
			p.Status = status
		}
		return p
	}
	p = Problem{Status: status, Title: http.StatusText(status)}
	if t := strings.TrimSpace(string(body)); t != "" && len(t) < 300 && !json.Valid(body) {
		p.Detail = t
	}
	return p
}
