package api_test

import (
	"net/url"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

// TestIDsInPaths checks that any valid entity id, escaped in the path as
// RFC 3986 asks, names its entity: ids holding '%', '/', '#', '?', spaces
// escaped, and non-ASCII.
func TestIDsInPaths(t *testing.T) {
	s := newServer(t, api.Options{})
	for _, id := range []string{
		"urn:ngsi-ld:Room:plain",
		"urn:ngsi-ld:Room:a%20b",
		"urn:ngsi-ld:Room:100%",
		"https://example.org/rooms/1",
		"https://example.org/rooms#2",
		"urn:ngsi-ld:Room:q?x=1",
		"urn:ngsi-ld:Room:città",
		"urn:ngsi-ld:Room:a.b*c",
	} {
		t.Run(id, func(t *testing.T) {
			s.create(t, `{"id":"`+id+`","type":"Room","p":{"type":"Property","value":1}}`)
			path := "/ngsi-ld/v1/entities/" + url.PathEscape(id)
			e := s.get(t, path)
			if e["id"] != id {
				t.Fatalf("GET %s gives id %v", path, e["id"])
			}
			runSteps(t, s, []step{
				{name: "patch attr", method: "PATCH", path: path + "/attrs/p", body: `{"value":2}`, status: 204},
				{name: "append", method: "POST", path: path + "/attrs", body: `{"q":{"type":"Property","value":3}}`, status: 204},
				{name: "delete attr", method: "DELETE", path: path + "/attrs/q", status: 204},
				{name: "delete", method: "DELETE", path: path, status: 204},
				{name: "gone", method: "GET", path: path, status: 404, problem: "ResourceNotFound", detail: []string{id}},
			})
		})
	}
}

// TestAttrOpsWithBodyContext runs the attribute operations with the
// @context in the body (application/ld+json): the attribute of the path is
// named in that context.
func TestAttrOpsWithBodyContext(t *testing.T) {
	base, _ := contextServer(t)
	ctxURL := base + "/ctx.jsonld"
	s := newServer(t, api.Options{})
	link := []string{"Link", linkHeader(ctxURL)}
	ld := []string{"Content-Type", "application/ld+json"}
	s.create(t, `{"id":"urn:ngsi-ld:Room:1","type":"Room","temperature":{"type":"Property","value":21}}`, link...)
	path := "/ngsi-ld/v1/entities/urn:ngsi-ld:Room:1"
	temp := func(want string) func(t *testing.T, r response) {
		return func(t *testing.T, _ response) {
			e := s.get(t, path+"?options=keyValues", link...)
			if got := canon(t, e["temperature"]); got != want {
				t.Errorf("temperature %s, want %s (entity %v)", got, want, e)
			}
		}
	}
	runSteps(t, s, []step{
		{name: "patch attr", method: "PATCH", path: path + "/attrs/temperature", hdr: ld, status: 204,
			body: `{"value":22,"@context":"` + ctxURL + `"}`, check: temp("22")},
		{name: "put attr", method: "PUT", path: path + "/attrs/temperature", hdr: ld, status: 204,
			body: `{"type":"Property","value":23,"@context":"` + ctxURL + `"}`, check: temp("23")},
		{name: "append noOverwrite names the attribute in the body's context", method: "POST", path: path + "/attrs?options=noOverwrite", hdr: ld, status: 207,
			body: `{"temperature":{"type":"Property","value":24},"@context":"` + ctxURL + `"}`,
			check: func(t *testing.T, r response) {
				nu, _ := r.object(t)["notUpdated"].([]any)
				if len(nu) != 1 || nu[0].(map[string]any)["attributeName"] != "temperature" {
					t.Errorf("notUpdated %s", r.body)
				}
				temp("23")(t, r)
			}},
		{name: "update attrs", method: "PATCH", path: path + "/attrs", hdr: ld, status: 204,
			body: `{"temperature":{"type":"Property","value":25},"@context":"` + ctxURL + `"}`, check: temp("25")},
	})
}
