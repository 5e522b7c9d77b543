package adapters_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-city/piazza/adapters"
)

// fakeBroker is a test double of Piazza's batch upsert endpoint: it decodes
// and records each batch, keeps the last state of every entity, answers
// with the Piazza-Unchanged-Count header, and lets a test script failures.
type fakeBroker struct {
	t      testing.TB
	mu     sync.Mutex
	store  map[string]string // id -> canonical JSON of the entity
	posts  []postedBatch
	script func(n int, ids []string) (status int, body string, reject map[string]bool)
}

type postedBatch struct {
	ids         []string
	contentType string
	tenant      string
	path        string
	contexts    int
}

func newFakeBroker(t testing.TB) (*fakeBroker, *httptest.Server) {
	fb := &fakeBroker{t: t, store: map[string]string{}}
	srv := httptest.NewServer(fb)
	t.Cleanup(srv.Close)
	return fb, srv
}

func (fb *fakeBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/ngsi-ld/v1/entityOperations/upsert" {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"type":"https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound","title":"no such endpoint"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var batch []map[string]any
	if err := json.Unmarshal(body, &batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"type":"https://uri.etsi.org/ngsi-ld/errors/InvalidRequest","title":"not a JSON array"}`)
		return
	}
	pb := postedBatch{contentType: r.Header.Get("Content-Type"), tenant: r.Header.Get("NGSILD-Tenant"), path: r.URL.Path}
	for _, e := range batch {
		id, _ := e["id"].(string)
		pb.ids = append(pb.ids, id)
		if e["@context"] != nil {
			pb.contexts++
		}
	}
	fb.mu.Lock()
	fb.posts = append(fb.posts, pb)
	n := len(fb.posts)
	fb.mu.Unlock()
	status, rbody, reject := http.StatusNoContent, "", map[string]bool(nil)
	if fb.script != nil {
		status, rbody, reject = fb.script(n, pb.ids)
	}
	if status != http.StatusNoContent && status != http.StatusMultiStatus {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(status)
		io.WriteString(w, rbody)
		return
	}
	type problem struct {
		Type  string `json:"type"`
		Title string `json:"title"`
	}
	type batchErr struct {
		EntityID string  `json:"entityId"`
		Error    problem `json:"error"`
	}
	var res struct {
		Success []string   `json:"success"`
		Errors  []batchErr `json:"errors"`
	}
	res.Success, res.Errors = []string{}, []batchErr{}
	unchanged := 0
	fb.mu.Lock()
	for _, e := range batch {
		id := e["id"].(string)
		if reject[id] {
			res.Errors = append(res.Errors, batchErr{id, problem{"https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "attribute obsValue: not valid against the schema"}})
			continue
		}
		canon, _ := json.Marshal(e)
		if fb.store[id] == string(canon) {
			unchanged++
		}
		fb.store[id] = string(canon)
		res.Success = append(res.Success, id)
	}
	fb.mu.Unlock()
	w.Header().Set(adapters.UnchangedHeader, fmt.Sprint(unchanged))
	if len(res.Errors) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMultiStatus)
	json.NewEncoder(w).Encode(res)
}

func (fb *fakeBroker) batches() []postedBatch {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return append([]postedBatch(nil), fb.posts...)
}

func entities(n int) []adapters.Entity {
	out := make([]adapters.Entity, n)
	for i := range out {
		out[i] = adapters.Entity{"id": fmt.Sprintf("urn:ngsi-ld:T:%d", i), "type": "T",
			"v": map[string]any{"type": "Property", "value": i}}
	}
	return out
}

func fastSink(t *testing.T, url string) *adapters.HTTPSink {
	t.Helper()
	s, err := adapters.NewHTTPSink(adapters.SinkConfig{URL: url, Tenant: "mantova", Backoff: adapters.Duration(time.Millisecond),
		MaxBackoff: adapters.Duration(2 * time.Millisecond), MaxRetries: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeliver(t *testing.T) {
	ctx := context.Background()
	t.Run("204 with unchanged count", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		s := fastSink(t, srv.URL+"/")
		res, err := s.Deliver(ctx, entities(5))
		if err != nil || res.Written != 5 || res.Unchanged != 0 {
			t.Fatalf("first delivery: %+v %v", res, err)
		}
		batch := entities(5)
		batch[4]["v"] = map[string]any{"type": "Property", "value": 40}
		res, err = s.Deliver(ctx, batch)
		if err != nil || res.Written != 1 || res.Unchanged != 4 || len(res.Rejected) != 0 {
			t.Fatalf("second delivery: %+v %v", res, err)
		}
		b := fb.batches()[0]
		if b.contentType != "application/ld+json" || b.tenant != "mantova" || b.contexts != 5 || len(b.ids) != 5 {
			t.Errorf("request = %+v", b)
		}
	})
	t.Run("207 rejects entities one by one", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(int, []string) (int, string, map[string]bool) {
			return http.StatusMultiStatus, "", map[string]bool{"urn:ngsi-ld:T:1": true, "urn:ngsi-ld:T:3": true}
		}
		res, err := fastSink(t, srv.URL).Deliver(ctx, entities(5))
		if err != nil || res.Written != 3 || len(res.Rejected) != 2 {
			t.Fatalf("%+v %v", res, err)
		}
		if r := res.Rejected[0]; r.ID != "urn:ngsi-ld:T:1" || !strings.Contains(r.Problem.String(), "BadRequestData") {
			t.Errorf("rejection = %+v (%s)", r, r.Problem)
		}
	})
	t.Run("503 then 204 is retried", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(n int, _ []string) (int, string, map[string]bool) {
			if n == 1 {
				return http.StatusServiceUnavailable, `{"title":"starting"}`, nil
			}
			return http.StatusNoContent, "", nil
		}
		res, err := fastSink(t, srv.URL).Deliver(ctx, entities(3))
		if err != nil || res.Written != 3 || len(fb.batches()) != 2 {
			t.Fatalf("%+v %v after %d requests", res, err, len(fb.batches()))
		}
	})
	t.Run("429 is retried", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(n int, _ []string) (int, string, map[string]bool) {
			if n <= 2 {
				return http.StatusTooManyRequests, "", nil
			}
			return http.StatusNoContent, "", nil
		}
		if res, err := fastSink(t, srv.URL).Deliver(ctx, entities(2)); err != nil || res.Written != 2 || len(fb.batches()) != 3 {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("persistent 500 gives up", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(int, []string) (int, string, map[string]bool) { return 500, "boom", nil }
		_, err := fastSink(t, srv.URL).Deliver(ctx, entities(2))
		if !errors.Is(err, adapters.ErrBrokerUnavailable) || len(fb.batches()) != 4 {
			t.Fatalf("err %v after %d requests, want ErrBrokerUnavailable after 4", err, len(fb.batches()))
		}
	})
	t.Run("404 is not retried", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(int, []string) (int, string, map[string]bool) {
			return 404, `{"type":"https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound","title":"wrong path"}`, nil
		}
		_, err := fastSink(t, srv.URL).Deliver(ctx, entities(2))
		if !errors.Is(err, adapters.ErrBatchRefused) || !strings.Contains(err.Error(), "wrong path") || len(fb.batches()) != 1 {
			t.Fatalf("err %v after %d requests", err, len(fb.batches()))
		}
	})
	t.Run("400 splits the batch to find the bad entity", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		fb.script = func(_ int, ids []string) (int, string, map[string]bool) {
			for _, id := range ids {
				if id == "urn:ngsi-ld:T:5" {
					return 400, `{"type":"https://uri.etsi.org/ngsi-ld/errors/BadRequestData","title":"bad"}`, nil
				}
			}
			return http.StatusNoContent, "", nil
		}
		res, err := fastSink(t, srv.URL).Deliver(ctx, entities(8))
		if err != nil || res.Written != 7 || len(res.Rejected) != 1 || res.Rejected[0].ID != "urn:ngsi-ld:T:5" {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("unreachable broker", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := fastSink(t, url).Deliver(ctx, entities(1))
		if !errors.Is(err, adapters.ErrBrokerUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancel during backoff", func(t *testing.T) {
		fb, srv := newFakeBroker(t)
		cctx, cancel := context.WithCancel(ctx)
		fb.script = func(int, []string) (int, string, map[string]bool) { cancel(); return 503, "", nil }
		s, _ := adapters.NewHTTPSink(adapters.SinkConfig{URL: srv.URL, Backoff: adapters.Duration(time.Hour)}, nil, nil)
		start := time.Now()
		_, err := s.Deliver(cctx, entities(1))
		if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, c := range []adapters.SinkConfig{{URL: "localhost:1026"}, {URL: "ftp://x"}, {BatchSize: -1}} {
			if _, err := adapters.NewHTTPSink(c, nil, nil); !errors.Is(err, adapters.ErrInvalidConfig) {
				t.Errorf("%+v: %v", c, err)
			}
		}
	})
}

// TestSinkConfigNoRetryKept: "maxRetries: -1" (no retry) survives the
// defaults being applied again, as when a loaded pipeline's sink is
// handed to NewHTTPSink.
func TestSinkConfigNoRetryKept(t *testing.T) {
	s, err := adapters.NewHTTPSink(adapters.SinkConfig{MaxRetries: -1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := adapters.NewHTTPSink(s.Config(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Config().MaxRetries; got != -1 {
		t.Errorf("MaxRetries after defaults twice = %d, want -1 (no retry)", got)
	}
}

// TestDeliverRetriesServerErrorsIn207: entities a 207 answer failed with a
// 5xx (the broker's log unavailable) are sent again, not rejected; those
// failed with a 4xx are rejected; a broker that keeps failing stops the run.
func TestDeliverRetriesServerErrorsIn207(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	failing := 1 // rounds in which entity b fails with a 503
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		fail := failing > 0 && strings.Contains(string(b), "urn:x:b")
		if fail {
			failing--
		}
		mu.Unlock()
		if !strings.Contains(string(b), "urn:x:a") { // the retry carries b alone
			if fail {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusMultiStatus)
				_, _ = w.Write([]byte(`{"success":[],"errors":[{"entityId":"urn:x:b","error":{"type":"https://uri.etsi.org/ngsi-ld/errors/InternalError","title":"Service unavailable","status":503}}]}`))
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMultiStatus)
		errB := `{"entityId":"urn:x:b","error":{"type":"https://uri.etsi.org/ngsi-ld/errors/InternalError","title":"Service unavailable","status":503}}`
		if !fail {
			errB = ""
		}
		sep := ""
		if errB != "" {
			sep = ","
		}
		_, _ = w.Write([]byte(`{"success":["urn:x:a"],"errors":[{"entityId":"urn:x:c","error":{"type":"https://uri.etsi.org/ngsi-ld/errors/BadRequestData","title":"bad","status":400}}` + sep + errB + `]}`))
	}))
	defer srv.Close()
	batch := func() []adapters.Entity {
		return []adapters.Entity{{"id": "urn:x:a", "type": "T"}, {"id": "urn:x:b", "type": "T"}, {"id": "urn:x:c", "type": "T"}}
	}
	s, err := adapters.NewHTTPSink(adapters.SinkConfig{URL: srv.URL, Backoff: adapters.Duration(time.Millisecond), MaxRetries: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Deliver(context.Background(), batch())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(bodies)
	mu.Unlock()
	if res.Written != 2 || len(res.Rejected) != 1 || res.Rejected[0].ID != "urn:x:c" || n != 2 {
		t.Errorf("result %+v after %d requests; want a and b written, c rejected, 2 requests", res, n)
	}
	mu.Lock()
	failing = 100
	mu.Unlock()
	_, err = s.Deliver(context.Background(), batch())
	if !errors.Is(err, adapters.ErrBrokerUnavailable) || !strings.Contains(err.Error(), "Service unavailable") {
		t.Errorf("a broker that keeps failing: %v", err)
	}
}
