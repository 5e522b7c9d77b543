package ngsiv2source_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/piazza-city/piazza/adapters"
	_ "github.com/piazza-city/piazza/adapters/all"
	"github.com/piazza-city/piazza/adapters/ngsiv2source"
)

// orion serves /v2/entities as FIWARE Orion does: limit/offset paging,
// options=count with Fiware-Total-Count, one entity list per
// Fiware-Service and Fiware-ServicePath.
type orion struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newOrion(t testing.TB, extra int) *orion {
	t.Helper()
	data, err := os.ReadFile("testdata/orion_entities.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixture []json.RawMessage
	if err := json.Unmarshal(data, &fixture); err != nil {
		t.Fatal(err)
	}
	var generated []json.RawMessage
	for i := 0; i < extra; i++ {
		generated = append(generated, json.RawMessage(fmt.Sprintf(
			`{"id":"Device-%05d","type":"Device","batteryLevel":{"type":"Number","value":0.%02d,"metadata":{}},"TimeInstant":{"type":"DateTime","value":"2024-01-10T10:00:00.000Z","metadata":{}}}`, i, i%100)))
	}
	o := &orion{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.requests = append(o.requests, r)
		o.mu.Unlock()
		if r.URL.Path != "/v2/entities" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"NotFound","description":"service not found"}`))
			return
		}
		if r.Header.Get("X-Auth-Token") == "scaduto" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"Unauthorized","description":"the token has expired"}`))
			return
		}
		q := r.URL.Query()
		limit, offset := 20, 0
		if v := q.Get("limit"); v != "" {
			limit, _ = strconv.Atoi(v)
		}
		if v := q.Get("offset"); v != "" {
			offset, _ = strconv.Atoi(v)
		}
		if limit < 1 || limit > 1000 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"BadRequest","description":"Bad pagination limit: /%d/ [a value between 1 and 1000 is allowed]"}`, limit)
			return
		}
		var all []json.RawMessage
		switch {
		case r.Header.Get("Fiware-Service") == "mantova" && r.Header.Get("Fiware-ServicePath") == "/ambiente":
			all = fixture
		case r.Header.Get("Fiware-Service") == "mantova" && r.Header.Get("Fiware-ServicePath") == "/dispositivi":
			all = generated
		}
		if t := q.Get("type"); t != "" {
			var keep []json.RawMessage
			for _, e := range all {
				var head struct{ Type string }
				_ = json.Unmarshal(e, &head)
				if head.Type == t {
					keep = append(keep, e)
				}
			}
			all = keep
		}
		page := all[min(offset, len(all)):min(offset+limit, len(all))]
		if strings.Contains(q.Get("options"), "count") {
			w.Header().Set("Fiware-Total-Count", strconv.Itoa(len(all)))
		}
		w.Header().Set("Content-Type", "application/json")
		if page == nil {
			page = []json.RawMessage{}
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(o.Close)
	return o
}

type collector struct {
	records  []adapters.Record
	rejected []adapters.Record
	errs     []error
}

func (c *collector) Emit(r adapters.Record) error { c.records = append(c.records, r); return nil }
func (c *collector) Reject(r adapters.Record, err error) error {
	c.rejected = append(c.rejected, r)
	c.errs = append(c.errs, err)
	return nil
}
func (c *collector) Sync() error { return nil }

func source(t *testing.T, settings map[string]any) adapters.Source {
	t.Helper()
	cfg, err := adapters.NewSourceConfig("ngsiv2", settings)
	if err != nil {
		t.Fatal(err)
	}
	src, err := adapters.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// entity maps a record through the ngsiv2 preset (passthrough) and returns
// the entity as JSON-decoded values.
func entity(t *testing.T, rec adapters.Record) map[string]any {
	t.Helper()
	p, err := adapters.LookupPreset("ngsiv2")
	if err != nil {
		t.Fatal(err)
	}
	es, err := p.Mapping.Map(&rec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(es[0])
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestConvertOrionEntities(t *testing.T) {
	o := newOrion(t, 0)
	c := &collector{}
	src := source(t, map[string]any{"url": o.URL, "service": "mantova", "servicePath": "/ambiente", "pageSize": 2})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != 4 || len(c.rejected) != 2 {
		t.Fatalf("%d records, %d rejected (%v); want 4 and 2", len(c.records), len(c.rejected), c.errs)
	}
	if len(o.requests) != 3 {
		t.Errorf("%d requests, want 3 pages of 2", len(o.requests))
	}
	for i, r := range o.requests {
		q := r.URL.Query()
		if q.Get("limit") != "2" || q.Get("offset") != strconv.Itoa(2*i) || q.Get("options") != "count" {
			t.Errorf("request %d: %s", i, r.URL.RawQuery)
		}
	}
	if !strings.Contains(c.errs[0].Error(), "location must be geographic") || !strings.Contains(c.errs[1].Error(), `"caldo" is not a number`) {
		t.Errorf("reject reasons: %v", c.errs)
	}
	if !strings.Contains(c.rejected[0].Raw, `"Piazza Sordello, Mantova"`) || c.rejected[0].Index != 5 {
		t.Errorf("rejected record kept as it came: %d %q", c.rejected[0].Index, c.rejected[0].Raw)
	}

	aq := entity(t, c.records[0])
	want := map[string]any{
		"id":   "urn:ngsi-ld:AirQualityObserved:AirQualityObserved-Mantova-SantAgnese",
		"type": "AirQualityObserved",
		"NO2":  map[string]any{"type": "Property", "value": 42.5, "unitCode": "GQ", "observedAt": "2024-01-10T10:00:00Z"},
		// its own TimeInstant wins over the entity's
		"PM10":               map[string]any{"type": "Property", "value": 31.0, "unitCode": "GQ", "observedAt": "2024-01-10T09:00:00Z"},
		"refPointOfInterest": map[string]any{"type": "Relationship", "object": "urn:ngsi-ld:PointOfInterest:PointOfInterest-Mantova-PiazzaSordello"},
		"location":           map[string]any{"type": "GeoProperty", "value": map[string]any{"type": "Point", "coordinates": []any{10.7914, 45.1564}}, "observedAt": "2024-01-10T10:00:00Z"},
		"dateObserved":       map[string]any{"type": "Property", "value": "2024-01-10T10:00:00Z", "observedAt": "2024-01-10T10:00:00Z"},
		"source":             map[string]any{"type": "Property", "value": "https://www.arpalombardia.it", "observedAt": "2024-01-10T10:00:00Z"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(aq[k], w) {
			t.Errorf("AirQualityObserved %s = %#v, want %#v", k, aq[k], w)
		}
	}
	if _, ok := aq["CO"]; ok {
		t.Error("a null attribute was kept")
	}
	if _, ok := aq["TimeInstant"]; ok {
		t.Error("TimeInstant kept as an attribute")
	}

	dev := entity(t, c.records[1])
	for k, w := range map[string]any{
		"id":             "urn:ngsi-ld:Device:Device-Mantova-0042",
		"location":       map[string]any{"type": "GeoProperty", "value": map[string]any{"type": "Point", "coordinates": []any{10.7972, 45.1602}}},
		"refDeviceModel": map[string]any{"type": "Relationship", "object": "urn:ngsi-ld:DeviceModel:DeviceModel-ThermoHygro-1"},
		"batteryLevel":   map[string]any{"type": "Property", "value": 0.75, "observedAt": "2024-01-10T09:58:12Z"},
		"serialNumber":   map[string]any{"type": "Property", "value": "000412"},
		"deviceState":    map[string]any{"type": "Property", "value": "ok"}, // dateModified left out
	} {
		if !reflect.DeepEqual(dev[k], w) {
			t.Errorf("Device %s = %#v, want %#v", k, dev[k], w)
		}
	}

	spot := entity(t, c.records[2])
	if spot["id"] != "urn:ngsi-ld:ParkingSpot:ParkingSpot:Mantova:viaRoma:12" {
		t.Errorf("ParkingSpot id %v", spot["id"])
	}
	if st := spot["status"].(map[string]any); st["source"] == nil || st["observedAt"] != "2024-01-10T09:30:00Z" {
		t.Errorf("metadata not carried as a sub-attribute and observedAt: %v", st)
	}

	light := entity(t, c.records[3])
	for k, w := range map[string]any{
		"id":                  "urn:ngsi-ld:Streetlight:Mantova:LP-1088",
		"illuminanceLevel":    map[string]any{"type": "Property", "value": 0.5},
		"location":            map[string]any{"type": "GeoProperty", "value": map[string]any{"type": "LineString", "coordinates": []any{[]any{10.794, 45.159}, []any{10.7949, 45.1593}}}},
		"refStreetlightGroup": map[string]any{"type": "Relationship", "object": []any{"urn:ngsi-ld:StreetlightGroup:StreetlightGroup-Centro", "urn:ngsi-ld:StreetlightGroup:Notte"}},
	} {
		if !reflect.DeepEqual(light[k], w) {
			t.Errorf("Streetlight %s = %#v, want %#v", k, light[k], w)
		}
	}
}

// TestPagingTotalCount reads 2,500 entities in pages of 1000 and stops at
// the Fiware-Total-Count without asking for an empty page.
func TestPagingTotalCount(t *testing.T) {
	o := newOrion(t, 2500)
	c := &collector{}
	src := source(t, map[string]any{"url": o.URL + "/v2/", "service": "mantova", "servicePath": "/dispositivi", "type": "Device", "token": "ok"})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != 2500 || len(o.requests) != 3 {
		t.Fatalf("%d records in %d requests, want 2500 in 3", len(c.records), len(o.requests))
	}
	r := o.requests[2]
	if r.URL.Query().Get("type") != "Device" || r.Header.Get("X-Auth-Token") != "ok" || r.Header.Get("Fiware-ServicePath") != "/dispositivi" {
		t.Errorf("request %s %v", r.URL, r.Header)
	}
	if c.records[2499].Index != 2500 {
		t.Errorf("last index %d", c.records[2499].Index)
	}
}

func TestDumpFile(t *testing.T) {
	c := &collector{}
	src := source(t, map[string]any{"path": "testdata/orion_entities.json"})
	if err := src.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.records) != 4 || len(c.rejected) != 2 || c.records[0].Input != "testdata/orion_entities.json" {
		t.Errorf("%d records, %d rejected, input %q", len(c.records), len(c.rejected), c.records[0].Input)
	}
}

func TestBrokerErrors(t *testing.T) {
	o := newOrion(t, 0)
	tests := []struct {
		name     string
		settings map[string]any
		want     string
	}{
		{"expired token", map[string]any{"url": o.URL, "token": "scaduto"}, "401 Unauthorized: Unauthorized: the token has expired"},
		{"wrong path", map[string]any{"url": o.URL + "/orion"}, "404 Not Found: NotFound"},
		{"unreachable", map[string]any{"url": "http://127.0.0.1:1"}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := source(t, tt.settings).Run(context.Background(), &collector{})
			if !errors.Is(err, ngsiv2source.ErrBroker) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     string
	}{
		{map[string]any{}, "url (the broker) or path"},
		{map[string]any{"url": "http://o:1026", "path": "x.json"}, "not both"},
		{map[string]any{"url": "orion:1026"}, "want http(s)"},
		{map[string]any{"url": "http://o:1026", "pageSize": 5000}, "pageSize"},
		{map[string]any{"url": "http://o:1026", "servicePath": "ambiente"}, "must start with /"},
		{map[string]any{"url": "http://o:1026", "tenant": "x"}, `unknown key "tenant"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			cfg, _ := adapters.NewSourceConfig("ngsiv2", tt.settings)
			_, err := adapters.NewSource(cfg)
			if !errors.Is(err, adapters.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`{"type":"Room"}`, "no id"},
		{`{"id":"R1","type":"Room","location":{"type":"geo:point","value":"91, 10"}}`, "within -90..90"},
		{`{"id":"R1","type":"Room","location":{"type":"geo:json","value":{"type":"Circle"}}}`, "not a GeoJSON geometry"},
		{`{"id":"R1","type":"Room","refBuilding":{"type":"Relationship","value":42}}`, "must be an id"},
		{`{"id":"R1","type":"Room","on":{"type":"Boolean","value":"forse"}}`, "not a boolean"},
		{`{"id":"R1","type":"Room","area":{"type":"geo:box","value":["45.1, 10.7"]}}`, "two corners"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var v2 map[string]any
			if err := json.Unmarshal([]byte(tt.in), &v2); err != nil {
				t.Fatal(err)
			}
			_, _, err := ngsiv2source.Convert(v2)
			if !errors.Is(err, ngsiv2source.ErrConvert) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzConvert: any JSON object converts or fails with ErrConvert, never
// panics, and a converted entity passes the passthrough mapping.
func FuzzConvert(f *testing.F) {
	data, err := os.ReadFile("testdata/orion_entities.json")
	if err != nil {
		f.Fatal(err)
	}
	var fixture []json.RawMessage
	_ = json.Unmarshal(data, &fixture)
	for _, e := range fixture {
		f.Add([]byte(e))
	}
	f.Add([]byte(`{"id":"a b","type":"T","x":{"type":"geo:polygon","value":["1,1","1,2","2,2","1,1"]}}`))
	p, err := adapters.LookupPreset("ngsiv2")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var v2 map[string]any
		if json.Unmarshal(in, &v2) != nil || v2 == nil {
			return
		}
		names, values, err := ngsiv2source.Convert(v2)
		if err != nil {
			if !errors.Is(err, ngsiv2source.ErrConvert) {
				t.Fatalf("error without ErrConvert: %v", err)
			}
			return
		}
		rec := adapters.Record{Input: "fuzz", Index: 1, Header: adapters.NewFieldsHeader(names), Values: values}
		if _, err := p.Mapping.Map(&rec); err != nil {
			t.Fatalf("converted entity refused by the passthrough mapping: %v\n%s", err, in)
		}
	})
}
