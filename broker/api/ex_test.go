package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
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
	_ = http.StatusOK
}
