package api_test

import (
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker/api"
)

// TestRequestErrors checks that every kind of bad request answers the right
// status with an NGSI-LD ProblemDetails whose detail names what is wrong.
func TestRequestErrors(t *testing.T) {
	s := newServer(t, api.Options{MaxBodyBytes: 4096})
	s.create(t, aq1)
	const ents = "/ngsi-ld/v1/entities"
	const one = ents + "/urn:ngsi-ld:AirQualityObserved:MN-1"
	ent := func(attrs string) string {
		return `{"id":"urn:ngsi-ld:T:x","type":"T",` + attrs + `}`
	}
	core := linkHeader("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld")
	tests := []step{
		// Media types.
		{name: "415 text/plain", method: "POST", path: ents, body: ent(`"p":1`), hdr: []string{"Content-Type", "text/plain"},
			status: 415, problem: "InvalidRequest", detail: []string{"text/plain"}},
		{name: "415 no content type", method: "POST", path: ents, body: ent(`"p":1`), hdr: []string{"Content-Type", ""},
			status: 415, problem: "InvalidRequest", detail: []string{"Content-Type"}},
		{name: "415 garbage content type", method: "POST", path: ents, body: ent(`"p":1`), hdr: []string{"Content-Type", ";;;"},
			status: 415, problem: "InvalidRequest"},
		{name: "415 merge-patch on create", method: "POST", path: ents, body: ent(`"p":1`), hdr: []string{"Content-Type", "application/merge-patch+json"},
			status: 415, problem: "InvalidRequest"},
		{name: "415 on attrs", method: "POST", path: one + "/attrs", body: `{"p":1}`, hdr: []string{"Content-Type", "text/xml"},
			status: 415, problem: "InvalidRequest"},
		{name: "406 text/html", method: "GET", path: one, hdr: []string{"Accept", "text/html"},
			status: 406, problem: "InvalidRequest", detail: []string{"text/html"}},
		{name: "406 query text/html", method: "GET", path: ents + "?type=T", hdr: []string{"Accept", "text/html, image/png"},
			status: 406, problem: "InvalidRequest"},
		{name: "406 q=0 json", method: "GET", path: one, hdr: []string{"Accept", "application/json;q=0"},
			status: 406, problem: "InvalidRequest"},
		{name: "413 body too large", method: "POST", path: ents, body: ent(`"p":"` + strings.Repeat("x", 5000) + `"`),
			status: 413, problem: "BadRequestData", detail: []string{"4096"}},
		{name: "413 batch too large", method: "POST", path: "/ngsi-ld/v1/entityOperations/upsert", body: "[" + ent(`"p":"`+strings.Repeat("x", 5000)+`"`) + "]",
			status: 413, problem: "BadRequestData"},
		// @context placement.
		{name: "@context with application/json", method: "POST", path: ents,
			body:   ent(`"p":1,"@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"`),
			status: 400, problem: "BadRequestData", detail: []string{"@context", "application/json"}},
		{name: "ld+json with Link", method: "POST", path: ents,
			body: ent(`"p":1,"@context":"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"`),
			hdr:  []string{"Content-Type", "application/ld+json", "Link", core}, status: 400, problem: "BadRequestData", detail: []string{"Link"}},
		{name: "ld+json without @context", method: "POST", path: ents, body: ent(`"p":1`),
			hdr: []string{"Content-Type", "application/ld+json"}, status: 400, problem: "BadRequestData", detail: []string{"@context"}},
		{name: "malformed Link", method: "GET", path: one, hdr: []string{"Link", "<no-end"}, status: 400, problem: "BadRequestData"},
		{name: "@context not a context", method: "POST", path: ents, body: ent(`"p":1,"@context":42`),
			hdr: []string{"Content-Type", "application/ld+json"}, status: 400, problem: "BadRequestData"},
		// JSON.
		{name: "bad JSON", method: "POST", path: ents, body: "{\n  \"id\": \"urn:a:b\",\n  \"type\": \n}",
			status: 400, problem: "InvalidRequest", detail: []string{"line 4", "column 1"}},
		{name: "bad JSON line 1", method: "POST", path: ents, body: `{"id" "urn:a:b"}`,
			status: 400, problem: "InvalidRequest", detail: []string{"line 1, column 7"}},
		{name: "truncated JSON", method: "POST", path: ents, body: `{"id":"urn:a:b"`,
			status: 400, problem: "InvalidRequest", detail: []string{"end of JSON input"}},
		{name: "trailing data", method: "POST", path: ents, body: ent(`"p":1`) + ` {}`,
			status: 400, problem: "InvalidRequest", detail: []string{"after"}},
		{name: "empty body", method: "POST", path: ents, body: "", hdr: jsonHeaders,
			status: 400, problem: "InvalidRequest", detail: []string{"empty"}},
		{name: "array body", method: "POST", path: ents, body: `[` + ent(`"p":1`) + `]`,
			status: 400, problem: "InvalidRequest", detail: []string{"object"}},
		// Ids and types.
		{name: "id not a URI", method: "POST", path: ents, body: `{"id":"not a uri","type":"T"}`,
			status: 400, problem: "BadRequestData", detail: []string{"not a uri", "URI"}},
		{name: "id without scheme", method: "POST", path: ents, body: `{"id":"abc","type":"T"}`,
			status: 400, problem: "BadRequestData", detail: []string{`"abc"`}},
		{name: "id a number", method: "POST", path: ents, body: `{"id":12,"type":"T"}`,
			status: 400, problem: "BadRequestData", detail: []string{"id"}},
		{name: "no id", method: "POST", path: ents, body: `{"type":"T"}`,
			status: 400, problem: "BadRequestData", detail: []string{"id"}},
		{name: "no type", method: "POST", path: ents, body: `{"id":"urn:ngsi-ld:T:x"}`,
			status: 400, problem: "BadRequestData", detail: []string{"urn:ngsi-ld:T:x", "type"}},
		{name: "bad type", method: "POST", path: ents, body: `{"id":"urn:ngsi-ld:T:x","type":"a b"}`,
			status: 400, problem: "BadRequestData", detail: []string{"type"}},
		{name: "path id not a URI", method: "GET", path: ents + "/abc", status: 400, problem: "BadRequestData", detail: []string{"abc"}},
		{name: "path id not a URI on delete", method: "DELETE", path: ents + "/abc", status: 400, problem: "BadRequestData", detail: []string{"abc"}},
		{name: "path id not a URI on attrs", method: "POST", path: ents + "/abc/attrs", body: `{"p":1}`, status: 400, problem: "BadRequestData", detail: []string{"abc"}},
		// Attribute shapes.
		{name: "relationship without object", method: "POST", path: ents, body: ent(`"refDevice":{"type":"Relationship","value":"urn:ngsi-ld:Device:1"}`),
			status: 400, problem: "BadRequestData", detail: []string{"refDevice", "object"}},
		{name: "relationship object not a URI", method: "POST", path: ents, body: ent(`"refDevice":{"type":"Relationship","object":"device 1"}`),
			status: 400, problem: "BadRequestData", detail: []string{"refDevice", "device 1"}},
		{name: "geoproperty bad longitude", method: "POST", path: ents, body: ent(`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[200,45]}}`),
			status: 400, problem: "BadRequestData", detail: []string{"location", "longitude"}},
		{name: "geoproperty bad coordinates", method: "POST", path: ents, body: ent(`"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":"10,45"}}`),
			status: 400, problem: "BadRequestData", detail: []string{"location"}},
		{name: "geoproperty open ring", method: "POST", path: ents, body: ent(`"area":{"type":"GeoProperty","value":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}}`),
			status: 400, problem: "BadRequestData", detail: []string{"area", "closed"}},
		{name: "geoproperty not geometry", method: "POST", path: ents, body: ent(`"area":{"type":"GeoProperty","value":"somewhere"}`),
			status: 400, problem: "BadRequestData", detail: []string{"area"}},
		{name: "unknown attribute type", method: "POST", path: ents, body: ent(`"p":{"type":"Propperty","value":1}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "Propperty"}},
		{name: "location not a GeoProperty", method: "POST", path: ents, body: ent(`"location":{"type":"Property","value":"here"}`),
			status: 400, problem: "BadRequestData", detail: []string{"location", "GeoProperty"}},
		{name: "location bare string", method: "POST", path: ents, body: ent(`"location":"here"`),
			status: 400, problem: "BadRequestData", detail: []string{"location"}},
		{name: "property without value", method: "POST", path: ents, body: ent(`"p":{"type":"Property","unitCode":"CEL"}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "value"}},
		{name: "property null", method: "POST", path: ents, body: ent(`"p":null`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "null"}},
		{name: "mixed members", method: "POST", path: ents, body: ent(`"p":{"type":"Property","value":1,"object":"urn:a:b"}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "object"}},
		{name: "bad observedAt", method: "POST", path: ents, body: ent(`"p":{"type":"Property","value":1,"observedAt":"yesterday"}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "observedAt"}},
		{name: "bad datasetId", method: "POST", path: ents, body: ent(`"p":{"type":"Property","value":1,"datasetId":"ds 1"}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "datasetId"}},
		{name: "duplicate datasetId", method: "POST", path: ents, body: ent(`"p":[{"type":"Property","value":1},{"type":"Property","value":2}]`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "datasetId"}},
		{name: "bad language map", method: "POST", path: ents, body: ent(`"name":{"type":"LanguageProperty","languageMap":{"it":3}}`),
			status: 400, problem: "BadRequestData", detail: []string{"name", "it"}},
		{name: "bad language tag", method: "POST", path: ents, body: ent(`"name":{"type":"LanguageProperty","languageMap":{"i t":"x"}}`),
			status: 400, problem: "BadRequestData", detail: []string{"name"}},
		{name: "listproperty not a list", method: "POST", path: ents, body: ent(`"l":{"type":"ListProperty","valueList":3}`),
			status: 400, problem: "BadRequestData", detail: []string{"l", "valueList"}},
		{name: "listrelationship bad object", method: "POST", path: ents, body: ent(`"l":{"type":"ListRelationship","objectList":[{"object":"x y"}]}`),
			status: 400, problem: "BadRequestData", detail: []string{"l", "objectList"}},
		{name: "bad sub-attribute", method: "POST", path: ents, body: ent(`"p":{"type":"Property","value":1,"quality":{"type":"Relationship","object":3}}`),
			status: 400, problem: "BadRequestData", detail: []string{"p", "quality"}},
		{name: "bad attribute name", method: "POST", path: ents, body: ent(`"a b":1`),
			status: 400, problem: "BadRequestData", detail: []string{"a b"}},
		{name: "bad scope", method: "POST", path: ents, body: ent(`"scope":"no-slash"`),
			status: 400, problem: "BadRequestData", detail: []string{"scope"}},
		// Existence.
		{name: "409", method: "POST", path: ents, body: aq1, status: 409, problem: "AlreadyExists", detail: []string{"urn:ngsi-ld:AirQualityObserved:MN-1"}},
		{name: "404", method: "GET", path: ents + "/urn:ngsi-ld:T:none", status: 404, problem: "ResourceNotFound", detail: []string{"urn:ngsi-ld:T:none"}},
		// Bad input never stores anything.
		{name: "nothing half-written", method: "GET", path: ents + "/urn:ngsi-ld:T:x", status: 404, problem: "ResourceNotFound"},
	}
	runCases(t, s, tests, false)
}
