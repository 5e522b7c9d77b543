package api_test

import (
	"net/http/httptest"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

// FuzzQueryParams sends arbitrary query strings to GET /entities (and the
// discovery routes) through the real handler on a real broker holding a few
// entities. Whatever the parameters, the handler never panics and never
// answers 500: bad input is a 4xx ProblemDetails.
func FuzzQueryParams(f *testing.F) {
	s := newServer(f, api.Options{})
	r := s.do(f, "POST", "/ngsi-ld/v1/entityOperations/upsert", featureEntities)
	if r.status != 201 {
		f.Fatalf("load: %v", r)
	}
	for _, seed := range []string{
		"type=Building&q=height>15;name==%22Duomo%22",
		"type=Building&pick=id,owner{name}&join=inline&joinLevel=2",
		"type=Building&omit=name&lang=en,it&datasetId=@none",
		"id=urn:ngsi-ld:Building:B1&join=flat&orderBy=height;desc,name",
		"georel=near;maxDistance==2000&geometry=Point&coordinates=[10.79,45.15]",
		"georel=within&geometry=Polygon&coordinates=[[[179,0],[-179,0],[-179,1],[179,0]]]",
		"type=(Building;Person)|X&limit=0&count=true",
		"type=Building&limit=1&offset=1&count=true",
		"q=(a|b);c~=%22x(%22&scopeQ=/a/+",
		"idPattern=(a*)*b&attrs=x,y&options=keyValues,sysAttrs",
		"pick=a{b{c{d{e{f{g{h{i{j{k{l}}}}}}}}}}}&join=inline&joinLevel=10",
		"local=true&orderBy=dist-asc",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/ngsi-ld/v1/entities", "/ngsi-ld/v1/types", "/ngsi-ld/v1/attributes"} {
			req := httptest.NewRequest("GET", path, nil)
			req.URL.RawQuery = raw
			rec := httptest.NewRecorder()
			s.h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("GET %s?%s: %d %s", path, raw, rec.Code, rec.Body)
			}
		}
	})
}
