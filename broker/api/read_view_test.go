package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// readViewContext is a user @context served from testdata: it names
// temperature "t" and humidity "h", so that a cached core-context view
// would show under the wrong names.
const readViewContext = "https://example.org/piazza-test/readview.jsonld"

func readViewServer(t *testing.T) *server {
	t.Helper()
	loader := jsonld.NewLoader(jsonld.LoaderOptions{Offline: true, Files: map[string]string{readViewContext: "testdata/readview/context.jsonld"}})
	return newServer(t, api.Options{Contexts: loader})
}

// readRep is one representation of GET /entities/{id}: its query, its
// headers, and where it shows the temperature.
type readRep struct {
	name  string
	query string
	hdr   []string
	// temp is the name the temperature goes by in this representation.
	temp string
	// geo: the attributes are under "properties" (GeoJSON Feature).
	geo bool
	// sys: each attribute shows modifiedAt.
	sys bool
	// only: the one attribute the representation holds (attrs=).
	only string
}

var linkUser = []string{"Link", `<` + readViewContext + `>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`}

var readReps = []readRep{
	{name: "normalized", temp: "temperature"},
	{name: "normalized-query", query: "options=normalized", temp: "temperature"},
	{name: "concise", query: "options=concise", temp: "temperature"},
	{name: "format-concise", query: "format=concise", temp: "temperature"},
	{name: "keyValues", query: "options=keyValues", temp: "temperature"},
	{name: "simplified-sysAttrs", query: "format=simplified&options=sysAttrs", temp: "temperature"},
	{name: "sysAttrs", query: "options=sysAttrs", temp: "temperature", sys: true},
	{name: "concise-sysAttrs", query: "options=concise,sysAttrs", temp: "temperature", sys: true},
	{name: "attrs", query: "attrs=temperature", temp: "temperature", only: "temperature"},
	{name: "attrs-keyValues", query: "attrs=temperature&options=keyValues", temp: "temperature", only: "temperature"},
	{name: "ld", hdr: []string{"Accept", "application/ld+json"}, temp: "temperature"},
	{name: "ld-keyValues", query: "options=keyValues", hdr: []string{"Accept", "application/ld+json"}, temp: "temperature"},
	{name: "geojson", hdr: []string{"Accept", "application/geo+json"}, temp: "temperature", geo: true},
	{name: "geojson-keyValues", query: "options=keyValues", hdr: []string{"Accept", "application/geo+json"}, temp: "temperature", geo: true},
	{name: "user-context", hdr: linkUser, temp: "t"},
	{name: "user-context-keyValues", query: "options=keyValues", hdr: linkUser, temp: "t"},
	{name: "user-context-attrs", query: "attrs=t", hdr: linkUser, temp: "t", only: "t"},
	{name: "user-context-ld", hdr: append([]string{"Accept", "application/ld+json"}, linkUser...), temp: "t"},
	{name: "pick", query: "pick=id,temperature", temp: "temperature", only: "temperature"},
	{name: "omit", query: "omit=humidity,location&options=keyValues", temp: "temperature", only: "temperature"},
	{name: "datasetId", query: "datasetId=@none", temp: "temperature"},
	{name: "lang", query: "lang=en&options=concise", temp: "temperature"},
	{name: "user-context-pick", query: "pick=t", hdr: linkUser, temp: "t", only: "t"},
}

// readTemp reads one representation of id and returns its temperature and,
// with sysAttrs, the temperature's modifiedAt. It checks the names: only the
// representation's own names appear.
func (rep readRep) read(t *testing.T, s *server, tenant, id string) (temp float64, modified string) {
	t.Helper()
	path := "/ngsi-ld/v1/entities/" + url.PathEscape(id)
	if rep.query != "" {
		path += "?" + rep.query
	}
	hdr := append([]string{"NGSILD-Tenant", tenant}, rep.hdr...)
	res := s.do(t, "GET", path, "", hdr...)
	mustStatus(t, res, http.StatusOK)
	m := res.object(t)
	if rep.geo {
		m, _ = m["properties"].(map[string]any)
	}
	other := map[string]string{"temperature": "t", "t": "temperature"}[rep.temp]
	if _, ok := m[other]; ok {
		t.Fatalf("%s: the temperature shows as %q, want %q: %s", rep.name, other, rep.temp, res.body)
	}
	if rep.only != "" {
		for k := range m {
			if k != rep.only && k != "id" && k != "type" && k != "@context" {
				t.Fatalf("%s: attribute %q outside attrs=%s: %s", rep.name, k, rep.only, res.body)
			}
		}
	}
	v, ok := m[rep.temp]
	if !ok {
		t.Fatalf("%s: no %q in %s", rep.name, rep.temp, res.body)
	}
	if a, isAttr := v.(map[string]any); isAttr {
		v = a["value"]
		modified, _ = a["modifiedAt"].(string)
	}
	if rep.sys && modified == "" {
		t.Fatalf("%s: no modifiedAt in %s", rep.name, res.body)
	}
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%s: temperature %v is not a number: %s", rep.name, v, res.body)
	}
	f, _ := n.Float64()
	return f, modified
}

func sensor(id string, temp float64) string {
	return fmt.Sprintf(`{"id":%q,"type":"Sensor","temperature":{"type":"Property","value":%v},"humidity":{"type":"Property","value":0.5},`+
		`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.15]}}}`, id, temp)
}

// TestReadViewNeverStale writes, reads, writes and reads an entity in every
// representation of GET /entities/{id}, through every kind of write, and
// checks that each read shows the write before it: the cached
// representations of a revision must never outlive it. Two tenants hold the
// same id with other values, and every representation is read in both.
func TestReadViewNeverStale(t *testing.T) {
	s := readViewServer(t)
	for i, rep := range readReps {
		t.Run(rep.name, func(t *testing.T) {
			id := fmt.Sprintf("urn:ngsi-ld:Sensor:readview-%d", i)
			tenants := []string{"", "other"}
			// offset keeps the tenants' values apart.
			offset := map[string]float64{"": 0, "other": 1000}
			check := func(step string, want float64) {
				t.Helper()
				for _, tn := range tenants {
					// Twice: the first read may render, the second is served
					// from what the first kept.
					for range 2 {
						if got, _ := rep.read(t, s, tn, id); got != want+offset[tn] {
							t.Fatalf("tenant %q after %s: temperature %v, want %v", tn, step, got, want+offset[tn])
						}
					}
				}
			}
			type write struct {
				name string
				do   func(tn string, v float64)
			}
			writes := []write{
				{"PATCH attrs", func(tn string, v float64) {
					mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/entities/"+id+"/attrs", fmt.Sprintf(`{"temperature":{"type":"Property","value":%v}}`, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"PATCH attr", func(tn string, v float64) {
					mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/entities/"+id+"/attrs/temperature", fmt.Sprintf(`{"type":"Property","value":%v}`, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"merge", func(tn string, v float64) {
					mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/entities/"+id, fmt.Sprintf(`{"temperature":{"type":"Property","value":%v}}`, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"replace", func(tn string, v float64) {
					mustStatus(t, s.do(t, "PUT", "/ngsi-ld/v1/entities/"+id, sensor(id, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"append", func(tn string, v float64) {
					mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entities/"+id+"/attrs", fmt.Sprintf(`{"temperature":{"type":"Property","value":%v}}`, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"batch upsert", func(tn string, v float64) {
					mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", "["+sensor(id, v)+"]", "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"batch update", func(tn string, v float64) {
					mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entityOperations/update", fmt.Sprintf(`[{"id":%q,"type":"Sensor","temperature":{"type":"Property","value":%v}}]`, id, v), "NGSILD-Tenant", tn), http.StatusNoContent)
				}},
				{"delete and create", func(tn string, v float64) {
					mustStatus(t, s.do(t, "DELETE", "/ngsi-ld/v1/entities/"+id, "", "NGSILD-Tenant", tn), http.StatusNoContent)
					path := "/ngsi-ld/v1/entities/" + id + "?" + rep.query
					mustStatus(t, s.do(t, "GET", path, "", append([]string{"NGSILD-Tenant", tn}, rep.hdr...)...), http.StatusNotFound)
					mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entities", sensor(id, v), "NGSILD-Tenant", tn), http.StatusCreated)
				}},
			}
			for _, tn := range tenants {
				mustStatus(t, s.do(t, "POST", "/ngsi-ld/v1/entities", sensor(id, 1+offset[tn]), "NGSILD-Tenant", tn), http.StatusCreated)
			}
			check("create", 1)
			lastMod := ""
			for j, w := range writes {
				v := float64(10 + j)
				for _, tn := range tenants {
					w.do(tn, v+offset[tn])
				}
				check(w.name, v)
				if rep.sys {
					// The system times of the new revision, never older ones
					// (milliseconds: two writes may share one).
					_, mod := rep.read(t, s, "", id)
					if mod < lastMod {
						t.Fatalf("after %s: modifiedAt %s, before %s", w.name, mod, lastMod)
					}
					lastMod = mod
				}
			}
		})
	}
}

// TestReadViewConcurrent reads an entity in several representations while
// one writer raises its temperature: no reader may see the temperature go
// down (an older revision served after a newer one), and the writer reads
// its own writes. Under -race it also checks the cache's sharing.
func TestReadViewConcurrent(t *testing.T) {
	s := readViewServer(t)
	const id = "urn:ngsi-ld:Sensor:readview-concurrent"
	s.create(t, sensor(id, 0))
	const writes = 60
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, rep := range []readRep{readReps[0], readReps[4], readReps[6], readReps[14]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1.0
			for {
				select {
				case <-stop:
					return
				default:
				}
				path := "/ngsi-ld/v1/entities/" + id + "?" + rep.query
				req, _ := http.NewRequest("GET", s.url+path, nil)
				for i := 0; i+1 < len(rep.hdr); i += 2 {
					req.Header.Set(rep.hdr[i], rep.hdr[i+1])
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				var m map[string]any
				dec := json.NewDecoder(res.Body)
				dec.UseNumber()
				err = dec.Decode(&m)
				res.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				v := m[rep.temp]
				if a, ok := v.(map[string]any); ok {
					v = a["value"]
				}
				n, _ := v.(json.Number)
				f, err := n.Float64()
				if err != nil {
					errs <- fmt.Errorf("%s: temperature %v", rep.name, m[rep.temp])
					return
				}
				if f < last {
					errs <- fmt.Errorf("%s: temperature went from %v back to %v", rep.name, last, f)
					return
				}
				last = f
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; i <= writes && time.Now().Before(deadline); i++ {
		mustStatus(t, s.do(t, "PATCH", "/ngsi-ld/v1/entities/"+id+"/attrs", fmt.Sprintf(`{"temperature":{"type":"Property","value":%d}}`, i)), http.StatusNoContent)
		for _, rep := range readReps[:8] {
			if got, _ := rep.read(t, s, "", id); got != float64(i) {
				t.Fatalf("%s: read %v after writing %d", rep.name, got, i)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReadViewHeaders checks the headers of the cached path: the media type,
// the Link of the context (core or the user's), and a Content-Length for a
// body too large for net/http to measure itself.
func TestReadViewHeaders(t *testing.T) {
	s := readViewServer(t)
	const id = "urn:ngsi-ld:Sensor:readview-headers"
	var big strings.Builder
	for i := range 60 {
		fmt.Fprintf(&big, `,"attribute%02d":{"type":"Property","value":"some text to make the entity larger than two kilobytes"}`, i)
	}
	s.create(t, `{"id":"`+id+`","type":"Sensor","temperature":{"type":"Property","value":1}`+big.String()+`}`)
	coreLink := `<` + jsonld.CoreContextURL + `>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`
	cases := []struct {
		name     string
		hdr      []string
		ct, link string
	}{
		{"json", nil, "application/json", coreLink},
		{"ld", []string{"Accept", "application/ld+json"}, "application/ld+json", ""},
		{"geo", []string{"Accept", "application/geo+json"}, "application/geo+json", ""},
		{"user-context", linkUser, "application/json", linkUser[1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 2 {
				res := s.do(t, "GET", "/ngsi-ld/v1/entities/"+id, "", c.hdr...)
				mustStatus(t, res, http.StatusOK)
				if got := res.header.Get("Content-Type"); got != c.ct {
					t.Errorf("Content-Type %q, want %q", got, c.ct)
				}
				if got := res.header.Get("Link"); got != c.link {
					t.Errorf("Link %q, want %q", got, c.link)
				}
				if got, want := res.header.Get("Content-Length"), fmt.Sprint(len(res.body)); got != want {
					t.Errorf("Content-Length %q, body of %s bytes", got, want)
				}
				if len(res.body) <= 2048 {
					t.Fatalf("body of %d bytes: the test needs one over 2048", len(res.body))
				}
				res.object(t)
			}
		})
	}
}

// twinServers are two API handlers over two brokers on one NATS server, as
// two replicas: one with the entity cache (and so the kept
// representations), one without.
func twinServers(t testing.TB) (cached, fresh http.Handler) {
	t.Helper()
	ns, err := broker.StartEmbeddedNATS(broker.EmbeddedOptions{DataDir: t.TempDir(), ClientAddr: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	loader := jsonld.NewLoader(jsonld.LoaderOptions{Offline: true, Files: map[string]string{readViewContext: "testdata/readview/context.jsonld"}})
	var hs [2]http.Handler
	for i, size := range []int{0, -1} {
		nc, err := nats.Connect("", nats.InProcessServer(ns.Server()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		b, err := broker.New(context.Background(), broker.Options{Conn: nc, EntityCache: size})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		hs[i] = api.New(b, api.Options{Contexts: loader})
	}
	return hs[0], hs[1]
}

// FuzzGetEntityView reads an entity with two arbitrary requests (query
// string, Accept and Link headers) in turn from a replica that keeps
// rendered representations, and with the same requests from one that
// renders every read: whatever the requests, both replicas answer each
// the same status, media type, Link and bytes, so the key of a kept
// representation holds everything that shapes it (the first request's
// representation is never served for the second), and neither answers 5xx.
func FuzzGetEntityView(f *testing.F) {
	cached, fresh := twinServers(f)
	body := `[` + sensor("urn:ngsi-ld:Sensor:f1", 21.5) + `,` +
		`{"id":"urn:ngsi-ld:Sensor:f2","type":["Sensor","Thing"],"scope":"/a/b","name":{"type":"LanguageProperty","languageMap":{"en":"bridge","it":"ponte"}},` +
		`"temperature":[{"type":"Property","value":1,"datasetId":"urn:d:1"},{"type":"Property","value":2}],` +
		`"category":{"type":"VocabProperty","vocab":"humidity"},"near":{"type":"Relationship","object":"urn:ngsi-ld:Sensor:f1"},` +
		`"place":{"type":"GeoProperty","value":{"type":"Point","coordinates":[1,2]}},"t2":{"type":"Property","value":{"type":"Point","x":1}}}]`
	req := httptest.NewRequest("POST", "/ngsi-ld/v1/entityOperations/upsert", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	cached.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		f.Fatalf("load: %d %s", rec.Code, rec.Body)
	}
	// The other replica applies the writes from the stream.
	for deadline := time.Now().Add(10 * time.Second); ; {
		rec := httptest.NewRecorder()
		fresh.ServeHTTP(rec, httptest.NewRequest("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:f2", nil))
		if rec.Code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			f.Fatalf("the second replica does not see the entities: %d %s", rec.Code, rec.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	type get struct{ query, accept, link string }
	for _, seed := range []struct {
		id     string
		g1, g2 get
	}{
		{"urn:ngsi-ld:Sensor:f1", get{}, get{"attrs=temperature", "", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"options=keyValues", "", ""}, get{"options=keyValues", "application/ld+json", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"options=concise,sysAttrs", "", linkUser[1]}, get{"options=concise,sysAttrs&attrs=temperature,name", "", linkUser[1]}},
		{"urn:ngsi-ld:Sensor:f2", get{"", "application/geo+json", ""}, get{"geometryProperty=place", "application/geo+json", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"", "", ""}, get{"lang=it&datasetId=urn:d:1", "*/*", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"attrs=name", "", ""}, get{"pick=id,name&attrs=x", "application/json;q=0.5, application/ld+json", ""}},
		{"urn:ngsi-ld:Sensor:f1", get{"", "", ""}, get{"", "", linkUser[1]}},
		{"urn:ngsi-ld:Sensor:f1", get{"type=Sensor", "application/geo+json", linkUser[1]}, get{"join=inline&type=Sensor", "application/geo+json", linkUser[1]}},
		{"urn:ngsi-ld:Sensor:f2", get{"attrs=t", "application/ld+json", linkUser[1]}, get{"attrs=t,h&format=concise", "application/ld+json", linkUser[1]}},
		{"urn:ngsi-ld:Sensor:f2", get{"lang=it", "", ""}, get{"lang=en", "", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"pick=name,temperature", "", ""}, get{"omit=name,temperature", "application/ld+json", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"datasetId=urn:d:1", "", ""}, get{"datasetId=@none&options=keyValues", "", ""}},
		{"urn:ngsi-ld:Sensor:f2", get{"pick=near", "", ""}, get{"pick=near&join=inline", "", ""}},
		{"urn:ngsi-ld:Sensor:nope", get{}, get{}},
	} {
		f.Add(seed.id, seed.g1.query, seed.g1.accept, seed.g1.link, seed.g2.query, seed.g2.accept, seed.g2.link)
	}
	f.Fuzz(func(t *testing.T, id, q1, accept1, link1, q2, accept2, link2 string) {
		do := func(h http.Handler, g get) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/ngsi-ld/v1/entities/x", nil)
			req.URL.Path = "/ngsi-ld/v1/entities/" + id
			req.URL.RawQuery = g.query
			if g.accept != "" {
				req.Header.Set("Accept", g.accept)
			}
			if g.link != "" {
				req.Header.Set("Link", g.link)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			// 503 is right for an @context that cannot be fetched (offline).
			if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), "LdContextNotAvailable")) {
				t.Fatalf("GET %s %+v: %d %s", id, g, rec.Code, rec.Body)
			}
			return rec
		}
		for _, g := range []get{{q1, accept1, link1}, {q2, accept2, link2}} {
			a, b := do(cached, g), do(fresh, g)
			if a.Code != b.Code || a.Header().Get("Content-Type") != b.Header().Get("Content-Type") || a.Header().Get("Link") != b.Header().Get("Link") {
				t.Fatalf("GET %s %+v: cached %d %q %q, fresh %d %q %q", id, g,
					a.Code, a.Header().Get("Content-Type"), a.Header().Get("Link"), b.Code, b.Header().Get("Content-Type"), b.Header().Get("Link"))
			}
			if a.Code == http.StatusOK && !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
				t.Fatalf("GET %s %+v:\ncached %s\nfresh  %s", id, g, a.Body, b.Body)
			}
		}
	})
}
