package api_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/api"
	"github.com/piazza-city/piazza/broker/node"
)

// validatingNode starts a node as piazza serve does, with the validation
// policy of each tenant: the default tenant enforces, "warn" warns,
// "quarantine" quarantines.
func validatingNode(t *testing.T) *server {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir(), Version: "test",
		Validation: broker.ValidationConfig{Tenants: map[string]broker.PolicySet{
			"warn":       {Default: broker.PolicyWarn},
			"quarantine": {Default: broker.PolicyQuarantine},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &server{url: "http://" + n.HTTPAddr(), b: n.Broker()}
}

// The upstream AirQualityObserved example's two faults, on a valid entity.
const (
	badAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-9","type":"AirQualityObserved",
	"dateObserved":"2024-01-10T10:00:00","tsp":73.3,"no2":41,
	"location":{"type":"Point","coordinates":[10.79,45.16]}}`
	goodAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-9","type":"AirQualityObserved",
	"dateObserved":"2024-01-10T10:00:00Z","tsp":73,"no2":41,
	"location":{"type":"Point","coordinates":[10.79,45.16]}}`
)

// problemBody is a ProblemDetails with Piazza's validation members.
type problemBody struct {
	Type       string `json:"type"`
	Detail     string `json:"detail"`
	Violations []struct {
		Pointer, Message, Keyword string
	} `json:"violations"`
	Quarantine uint64 `json:"quarantine"`
}

func decodeProblem(t *testing.T, r response) problemBody {
	t.Helper()
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return p
}

// pointers lists the violations' pointers and keywords, in order.
func (p problemBody) pointers() string {
	var s []string
	for _, v := range p.Violations {
		if v.Message == "" {
			return "violation without a message"
		}
		s = append(s, v.Pointer+" "+v.Keyword)
	}
	return strings.Join(s, ", ")
}

const twoFaults = "/dateObserved format, /tsp type"

func TestValidationAnswers(t *testing.T) {
	s := validatingNode(t)
	kv := "?options=keyValues"
	ent := "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:MN-9"
	warn := []string{"NGSILD-Tenant", "warn"}

	t.Run("enforce: violations member", func(t *testing.T) {
		r := s.do(t, "POST", "/ngsi-ld/v1/entities"+kv, badAQ)
		checkProblem(t, r, 400, "BadRequestData", "/tsp", "/dateObserved")
		p := decodeProblem(t, r)
		if p.pointers() != twoFaults || p.Quarantine != 0 {
			t.Fatalf("problem %s", r.body)
		}
		if r.header.Get("Piazza-Validation") != "" {
			t.Fatal("Piazza-Validation on a rejection")
		}
	})
	t.Run("enforce: valid entity, no header", func(t *testing.T) {
		r := s.do(t, "POST", "/ngsi-ld/v1/entities"+kv, goodAQ)
		mustStatus(t, r, 201)
		if h := r.header.Get("Piazza-Validation"); h != "" {
			t.Fatalf("Piazza-Validation %q on a valid entity", h)
		}
		// A merge that breaks the model is refused with the violation.
		r = s.do(t, "PATCH", ent+kv, `{"tsp":1.5}`)
		checkProblem(t, r, 400, "BadRequestData")
		if p := decodeProblem(t, r); p.pointers() != "/tsp type" {
			t.Fatalf("problem %s", r.body)
		}
	})

	const header = "warn; model=AirQualityObserved; violations="
	t.Run("warn: every single write says so", func(t *testing.T) {
		steps := []struct {
			name, method, path, body string
			status                   int
			violations               string // "" for no header
		}{
			{"create", "POST", "/ngsi-ld/v1/entities" + kv, badAQ, 201, "2"},
			{"merge", "PATCH", ent + kv, `{"tsp":73}`, 204, "1"},
			{"replace", "PUT", ent + kv, `{"type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z","tsp":73,
				"location":{"type":"Point","coordinates":[10.79,45.16]}}`, 204, ""},
			{"append", "POST", ent + "/attrs" + kv, `{"tsp":0.5}`, 204, "1"},
			{"update attrs", "PATCH", ent + "/attrs" + kv, `{"tsp":7}`, 204, ""},
			{"patch attr", "PATCH", ent + "/attrs/tsp", `{"value":7.5}`, 204, "1"},
			{"replace attr", "PUT", ent + "/attrs/dateObserved", `{"type":"Property","value":"yesterday"}`, 204, "2"},
			{"patch attr delete", "PATCH", ent + "/attrs/dateObserved", `{"value":null}`, 204, "2"},
		}
		for _, st := range steps {
			r := s.do(t, st.method, st.path, st.body, warn...)
			if r.status != st.status {
				t.Fatalf("%s: %s", st.name, r)
			}
			want := ""
			if st.violations != "" {
				want = header + st.violations
			}
			if got := r.header.Get("Piazza-Validation"); got != want {
				t.Errorf("%s: Piazza-Validation %q, want %q", st.name, got, want)
			}
		}
	})
	t.Run("batch: per entity, and a count of warnings", func(t *testing.T) {
		batch := `[` + strings.Replace(badAQ, "MN-9", "B-1", 1) + `,` + strings.Replace(goodAQ, "MN-9", "B-2", 1) + `]`
		r := s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert"+kv, batch, warn...)
		mustStatus(t, r, 201)
		if got := r.header.Get("Piazza-Validation-Warnings"); got != "1" {
			t.Fatalf("Piazza-Validation-Warnings %q", got)
		}
		r = s.do(t, "POST", "/ngsi-ld/v1/entityOperations/upsert"+kv, strings.ReplaceAll(batch, "B-", "C-"))
		mustStatus(t, r, 207)
		if got := r.header.Get("Piazza-Validation-Warnings"); got != "" {
			t.Fatalf("Piazza-Validation-Warnings %q under enforce", got)
		}
		var res struct {
			Success []string
			Errors  []struct {
				EntityID string
				Error    json.RawMessage
			}
		}
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Success) != 1 || len(res.Errors) != 1 || res.Errors[0].EntityID != "urn:ngsi-ld:AirQualityObserved:C-1" {
			t.Fatalf("batch result %s", r.body)
		}
		if p := decodeProblem(t, response{body: res.Errors[0].Error}); p.pointers() != twoFaults {
			t.Fatalf("batch error %s", res.Errors[0].Error)
		}
	})
	t.Run("quarantine: the entry's sequence", func(t *testing.T) {
		r := s.do(t, "POST", "/ngsi-ld/v1/entities"+kv, badAQ, "NGSILD-Tenant", "quarantine")
		checkProblem(t, r, 400, "BadRequestData", "quarantine")
		p := decodeProblem(t, r)
		if p.pointers() != twoFaults || p.Quarantine == 0 {
			t.Fatalf("problem %s", r.body)
		}
		r = s.do(t, "GET", ent, "", "NGSILD-Tenant", "quarantine")
		checkProblem(t, r, 404, "ResourceNotFound")
	})
}

// A city's own model, with a $ref to the Smart Data Models common schema
// (resolved offline).
const benchSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"https://city.example/Bench/schema.json",
	"title":"Bench","type":"object","required":["id","type","seats"],
	"allOf":[{"$ref":"https://smart-data-models.github.io/data-models/common-schema.json#/definitions/GSMA-Commons"}],
	"properties":{"seats":{"type":"integer","minimum":1}}}`

func TestSchemasAPI(t *testing.T) {
	s := validatingNode(t)
	root := "/ngsi-ld/ex/v1/schemas"
	kv := "/ngsi-ld/v1/entities?options=keyValues"

	t.Run("list", func(t *testing.T) {
		r := s.do(t, "GET", root+"/", "")
		mustStatus(t, r, 200)
		var list []map[string]string
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		byName := map[string]map[string]string{}
		for _, m := range list {
			byName[m["name"]] = m
		}
		aq := byName["AirQualityObserved"]
		if len(list) < 7 || aq["typeIRI"] != "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved" ||
			aq["source"] != "embedded" || aq["id"] == "" || aq["title"] == "" {
			t.Fatalf("list %s", r.body)
		}
	})
	t.Run("get", func(t *testing.T) {
		r := s.do(t, "GET", root+"/AirQualityObserved", "")
		mustStatus(t, r, 200)
		if ct := r.header.Get("Content-Type"); ct != "application/schema+json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if m := r.object(t); m["$id"] == nil || m["allOf"] == nil {
			t.Fatalf("schema %.200s", r.body)
		}
		checkProblem(t, s.do(t, "GET", root+"/Nope", ""), 404, "ResourceNotFound", "Nope")
	})
	t.Run("put, use, replace, delete", func(t *testing.T) {
		bench := `{"id":"urn:ngsi-ld:Bench:1","type":"Bench","seats":0}`
		mustStatus(t, s.do(t, "POST", kv, bench), 201) // no model yet: allowed
		r := s.do(t, "PUT", root+"/Bench", benchSchema, "Content-Type", "application/schema+json")
		mustStatus(t, r, 201)
		if loc := r.header.Get("Location"); loc != root+"/Bench" {
			t.Fatalf("Location %q", loc)
		}
		if m := r.object(t); m["typeIRI"] != "https://uri.etsi.org/ngsi-ld/default-context/Bench" || m["source"] != "api" {
			t.Fatalf("created %s", r.body)
		}
		r = s.do(t, "POST", kv, strings.Replace(bench, ":1", ":2", 1))
		checkProblem(t, r, 400, "BadRequestData")
		if p := decodeProblem(t, r); p.pointers() != "/seats minimum" {
			t.Fatalf("problem %s", r.body)
		}
		// Replaced: the next write sees the new model at once.
		r = s.do(t, "PUT", root+"/Bench", strings.Replace(benchSchema, `"minimum":1`, `"minimum":0`, 1))
		mustStatus(t, r, 204)
		mustStatus(t, s.do(t, "POST", kv, strings.Replace(bench, ":1", ":2", 1)), 201)
		if got := string(s.do(t, "GET", root+"/Bench", "").body); !strings.Contains(got, `"minimum":0`) {
			t.Fatalf("schema after replace %s", got)
		}
		mustStatus(t, s.do(t, "DELETE", root+"/Bench", ""), 204)
		checkProblem(t, s.do(t, "DELETE", root+"/Bench", ""), 404, "ResourceNotFound", "Bench")
		mustStatus(t, s.do(t, "POST", kv, `{"id":"urn:ngsi-ld:Bench:3","type":"Bench","seats":-1}`), 201)
	})
	t.Run("refused with the reason", func(t *testing.T) {
		type putCase struct {
			name, path, body string
			hdr              []string
			status           int
			typ, reason      string
		}
		cases := []putCase{
			{"not JSON", "/Bad", `{"type":`, nil, 400, "BadRequestData", "schemas: invalid schema"},
			{"not an object", "/Bad", `[1]`, nil, 400, "BadRequestData", "schemas: invalid schema"},
			{"recursive", "/Bad", `{"$ref":"#"}`, nil, 400, "BadRequestData", "schemas: recursive schema"},
			{"remote ref", "/Bad", `{"$ref":"https://example.org/other.json"}`, nil, 400, "BadRequestData", "schemas: unresolved $ref"},
			{"bad regex", "/Bad", `{"properties":{"a":{"type":"string","pattern":"(?<=x)a"}}}`, nil, 400, "BadRequestData", "pattern"},
			{"unsupported keyword", "/Bad", `{"unevaluatedProperties":false}`, nil, 400, "BadRequestData", "unevaluatedProperties"},
			{"bad name", "/a%20b", `{}`, nil, 400, "BadRequestData", "schemas: invalid model name"},
			{"bad typeIRI", "/Bad?typeIRI=notaniri", `{}`, nil, 400, "BadRequestData", "notaniri"},
			{"type of another model", "/Other?typeIRI=https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", `{}`, nil, 409, "AlreadyExists", "AirQualityObserved"},
			{"media type", "/Bad", `{}`, []string{"Content-Type", "text/plain"}, 415, "InvalidRequest", "text/plain"},
		}
		huge := `{"description":"` + strings.Repeat("x", 3<<20) + `"}`
		cases = append(cases, putCase{"over the schema limit", "/Bad", huge, nil, 413, "BadRequestData", "schemas: schema too large"})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				checkProblem(t, s.do(t, "PUT", root+c.path, c.body, c.hdr...), c.status, c.typ, c.reason)
			})
		}
		r := s.do(t, "GET", root, "")
		if strings.Contains(string(r.body), `"Bad"`) || strings.Contains(string(r.body), `"Other"`) {
			t.Fatalf("a refused schema was kept: %s", r.body)
		}
		checkProblem(t, s.do(t, "POST", root, `{}`), 405, "InvalidRequest")
	})
	t.Run("no registry", func(t *testing.T) {
		bare := newServer(t, api.Options{})
		checkProblem(t, bare.do(t, "GET", root, ""), 422, "OperationNotSupported", "registry")
	})
}

// quarantineEntry is what the API shows of a quarantine entry.
type quarantineEntry struct {
	Seq        uint64
	Tenant, ID string
	Model      string
	Violations []struct{ Pointer string }
	Entity     json.RawMessage
}

func TestQuarantineAPI(t *testing.T) {
	s := validatingNode(t)
	root := "/ngsi-ld/ex/v1/quarantine"
	q := []string{"NGSILD-Tenant", "quarantine"}
	kv := "/ngsi-ld/v1/entities?options=keyValues"
	ent := "/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:MN-9"

	list := func(t *testing.T, hdr ...string) []quarantineEntry {
		t.Helper()
		r := s.do(t, "GET", root, "", hdr...)
		mustStatus(t, r, 200)
		var es []quarantineEntry
		if err := json.Unmarshal(r.body, &es); err != nil || es == nil {
			t.Fatalf("list %s: %v", r.body, err)
		}
		if c := r.header.Get("NGSILD-Results-Count"); c != strconv.Itoa(len(es)) {
			t.Fatalf("count %q for %d entries", c, len(es))
		}
		return es
	}
	quarantine := func(t *testing.T, body string) uint64 {
		t.Helper()
		r := s.do(t, "POST", kv, body, q...)
		checkProblem(t, r, 400, "BadRequestData")
		p := decodeProblem(t, r)
		if p.Quarantine == 0 {
			t.Fatalf("not quarantined: %s", r.body)
		}
		return p.Quarantine
	}
	path := func(seq uint64) string { return root + "/" + strconv.FormatUint(seq, 10) }

	seq := quarantine(t, badAQ)
	t.Run("list, per tenant", func(t *testing.T) {
		es := list(t, q...)
		if len(es) != 1 || es[0].Seq != seq || es[0].ID != "urn:ngsi-ld:AirQualityObserved:MN-9" || es[0].Tenant != "quarantine" ||
			es[0].Model != "AirQualityObserved" || len(es[0].Violations) != 2 || es[0].Entity != nil {
			t.Fatalf("entries %+v", es)
		}
		if es := list(t); len(es) != 0 {
			t.Fatalf("the default tenant sees %+v", es)
		}
	})
	t.Run("bad tenant", func(t *testing.T) {
		checkProblem(t, s.do(t, "GET", root, "", "NGSILD-Tenant", "a b"), 400, "BadRequestData", "NGSILD-Tenant")
	})
	t.Run("show", func(t *testing.T) {
		r := s.do(t, "GET", path(seq), "", q...)
		mustStatus(t, r, 200)
		var e quarantineEntry
		if err := json.Unmarshal(r.body, &e); err != nil || e.Seq != seq || !strings.Contains(string(e.Entity), "73.3") {
			t.Fatalf("entry %s: %v", r.body, err)
		}
		checkProblem(t, s.do(t, "GET", path(seq), ""), 404, "ResourceNotFound")
		checkProblem(t, s.do(t, "GET", path(seq+1000), "", q...), 404, "ResourceNotFound")
		for _, bad := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
			checkProblem(t, s.do(t, "GET", root+"/"+bad, "", q...), 400, "BadRequestData", "sequence")
		}
	})
	t.Run("replay while still invalid", func(t *testing.T) {
		r := s.do(t, "POST", path(seq)+"/replay", "", q...)
		checkProblem(t, r, 400, "BadRequestData")
		p := decodeProblem(t, r)
		if p.pointers() != twoFaults || p.Quarantine == 0 {
			t.Fatalf("replay %s", r.body)
		}
		// It stays in quarantine, as the newer entry.
		es := list(t, q...)
		if len(es) != 1 || es[0].Seq != p.Quarantine {
			t.Fatalf("entries after a failed replay %+v", es)
		}
		seq = p.Quarantine
		checkProblem(t, s.do(t, "GET", ent, "", q...), 404, "ResourceNotFound")
	})
	t.Run("replay after the model changed", func(t *testing.T) {
		// The operator relaxes the model, then replays.
		mustStatus(t, s.do(t, "PUT", "/ngsi-ld/ex/v1/schemas/AirQualityObserved", `{"type":"object","required":["id","type"]}`), 204)
		mustStatus(t, s.do(t, "POST", path(seq)+"/replay", "", q...), 204)
		if e := s.get(t, ent+"?options=keyValues", q...); canon(t, e["tsp"]) != "73.3" {
			t.Fatalf("replayed entity %v", e)
		}
		if es := list(t, q...); len(es) != 0 {
			t.Fatalf("entries after the replay %+v", es)
		}
		checkProblem(t, s.do(t, "POST", path(seq)+"/replay", "", q...), 404, "ResourceNotFound")
		mustStatus(t, s.do(t, "DELETE", "/ngsi-ld/ex/v1/schemas/AirQualityObserved", ""), 204)
	})
	t.Run("drop", func(t *testing.T) {
		mustStatus(t, s.do(t, "PUT", "/ngsi-ld/ex/v1/schemas/AirQualityObserved?typeIRI=https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",
			`{"type":"object","properties":{"tsp":{"type":"integer"}}}`), 201)
		seq := quarantine(t, strings.Replace(badAQ, "MN-9", "MN-10", 1))
		checkProblem(t, s.do(t, "DELETE", path(seq), ""), 404, "ResourceNotFound") // another tenant's
		mustStatus(t, s.do(t, "DELETE", path(seq), "", q...), 204)
		checkProblem(t, s.do(t, "DELETE", path(seq), "", q...), 404, "ResourceNotFound")
		checkProblem(t, s.do(t, "GET", path(seq), "", q...), 404, "ResourceNotFound")
		if es := list(t, q...); len(es) != 0 {
			t.Fatalf("entries after the drop %+v", es)
		}
	})
}
