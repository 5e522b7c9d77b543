package api_test

import (
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

// TestQueryLanguages runs the q, geo, scope and type-selection languages
// through GET /entities on a few real entities.
func TestQueryLanguages(t *testing.T) {
	s := newServer(t, api.Options{})
	body := `[
	 {"id":"urn:ngsi-ld:AirQualityObserved:MN1","type":"AirQualityObserved","scope":"/Lombardia/Mantova",
	  "no2":{"type":"Property","value":41,"observedAt":"2024-01-10T10:00:00Z"},"level":"moderate",
	  "location":{"type":"Point","coordinates":[10.7914,45.1564]}},
	 {"id":"urn:ngsi-ld:AirQualityObserved:MN2","type":["AirQualityObserved","Station"],"scope":"/Lombardia/Mantova/Centro",
	  "no2":{"type":"Property","value":12,"observedAt":"2024-01-11T10:00:00Z"},"level":"good",
	  "location":{"type":"Point","coordinates":[10.80,45.16]}},
	 {"id":"urn:ngsi-ld:AirQualityObserved:ME1","type":"AirQualityObserved","scope":"/Sicilia/Messina",
	  "no2":{"type":"Property","value":60},"level":"poor",
	  "location":{"type":"Point","coordinates":[15.5540,38.1938]}}]`
	if r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", body, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("load: %v", r)
	}
	for _, tc := range []struct {
		query string
		want  string // sorted ids' suffixes
	}{
		{"type=AirQualityObserved&q=no2>20", "ME1 MN1"},
		{"type=AirQualityObserved&q=no2>20;level==%22moderate%22", "MN1"},
		{"type=AirQualityObserved&q=no2<20|level==%22poor%22", "ME1 MN2"},
		{"type=AirQualityObserved&q=no2==10..45", "MN1 MN2"},
		{"type=AirQualityObserved&q=no2.observedAt>=2024-01-11T00:00:00Z", "MN2"},
		{"q=level==%22good%22", "MN2"},
		{"type=(AirQualityObserved;Station)", "MN2"},
		{"type=AirQualityObserved&scopeQ=/Lombardia/%23", "MN1 MN2"},
		{"type=AirQualityObserved&scopeQ=/Lombardia/Mantova", "MN1"},
		{"type=AirQualityObserved&georel=near;maxDistance==2000&geometry=Point&coordinates=[10.7914,45.1564]", "MN1 MN2"},
		{"type=AirQualityObserved&georel=within&geometry=Polygon&coordinates=[[[15,38],[16,38],[16,39],[15,39],[15,38]]]", "ME1"},
		{"local=true&q=no2>50", "ME1"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+tc.query, "")
			if r.status != 200 {
				t.Fatalf("%v", r)
			}
			var got []string
			for _, e := range r.json(t).([]any) {
				id := e.(map[string]any)["id"].(string)
				got = append(got, id[strings.LastIndex(id, ":")+1:])
			}
			sort.Strings(got)
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}
	for _, bad := range []string{
		"q=no2>>1", "q=" + url.QueryEscape("(no2>1"), "type=AirQualityObserved&georel=invalid&geometry=Point&coordinates=[1,2]",
		"type=X&georel=near;maxDistance==10&geometry=Point&coordinates=[1000,2]", "scopeQ=nope", "type=(A;", "id=urn:x:1&q=" + url.QueryEscape(`a~="("`),
	} {
		t.Run("bad "+bad, func(t *testing.T) {
			r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+bad, "")
			if r.status != 400 {
				t.Fatalf("want 400, got %v", r)
			}
			p := r.object(t)
			if !strings.Contains(p["type"].(string), "BadRequestData") && !strings.Contains(p["type"].(string), "InvalidRequest") {
				t.Fatalf("problem %v", p)
			}
		})
	}
}

func TestQueryParamsKeepSemicolonsAndPlus(t *testing.T) {
	s := newServer(t, api.Options{})
	body := `[{"id":"urn:ngsi-ld:T:1","type":"T","scope":"/a/b","t":{"type":"Property","value":{"@type":"DateTime","@value":"x"},"observedAt":"2024-01-10T10:00:00+01:00"}}]`
	if r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", body, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("load: %v", r)
	}
	for _, q := range []string{"type=T&scopeQ=/a/+", "type=T&q=t.observedAt>=2024-01-10T08:30:00+01:00;t"} {
		r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+q, "")
		if r.status != 200 || len(r.json(t).([]any)) != 1 {
			t.Fatalf("%s: %v", q, r)
		}
	}
}

// TestFormEncodedQueries sends what Python's requests sends: spaces as '+'.
func TestFormEncodedQueries(t *testing.T) {
	s := newServer(t, api.Options{})
	body := `[{"id":"urn:ngsi-ld:Place:1","type":"Place","name":"Eiffel Tower","location":{"type":"Point","coordinates":[2.2945,48.8584]}}]`
	if r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert", body, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("load: %v", r)
	}
	for _, q := range []string{
		"q=name%3D%3D%22Eiffel+Tower%22",
		"type=Place&georel=near%3BmaxDistance%3D%3D1000&coordinates=%5B2.2945%2C+48.8584%5D&geometry=Point",
	} {
		r := s.do(t, "GET", "/ngsi-ld/v1/entities?"+q, "")
		if r.status != 200 || len(r.json(t).([]any)) != 1 {
			t.Fatalf("%s: %v", q, r)
		}
	}
}
