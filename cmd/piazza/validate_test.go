package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upstreamAQ is the Smart Data Models AirQualityObserved example, verbatim
// (see broker/testdata/sdm/SOURCES.md): it fails its own schema twice.
const upstreamAQ = "../../broker/testdata/sdm/AirQualityObserved.example.json"

// runValidate runs 'piazza validate args...' with stdin and returns the
// exit code and what it printed.
func runValidate(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := validate(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// writeFile writes a file in a temp dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemLines returns the lines of a report that name a JSON pointer.
func problemLines(out string) []string {
	var ps []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") {
			ps = append(ps, l)
		}
	}
	return ps
}

func TestValidateUpstreamExample(t *testing.T) {
	code, out, errs := runValidate(t, "", upstreamAQ)
	if code != 1 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := []string{
		`/dateObserved: must be a date-time with a UTC offset (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string "2016-03-15T11:00:00", which has no offset`,
		`/tsp: must be of type integer; got number 73.3`,
	}
	if got := problemLines(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant exactly:\n%s\nreport:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
	if !strings.Contains(out, "INVALID  Madrid-AmbientObserved-28079004-2016-03-15T11:00:00 (AirQualityObserved): 2 problems with the AirQualityObserved model") ||
		!strings.Contains(out, "1 file, 1 entity: 0 valid, 1 invalid") {
		t.Fatalf("report:\n%s", out)
	}

	// Fixed: an integer tsp, a UTC offset.
	data, err := os.ReadFile(upstreamAQ)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(strings.Replace(string(data), `"tsp": 73.3`, `"tsp": 73`, 1), `"dateObserved": "2016-03-15T11:00:00"`, `"dateObserved": "2016-03-15T11:00:00Z"`, 1)
	if fixed == string(data) {
		t.Fatal("the fix did not apply")
	}
	p := writeFile(t, t.TempDir(), "fixed.json", fixed)
	code, out, _ = runValidate(t, "", p)
	if code != 0 || !strings.Contains(out, "OK       Madrid-AmbientObserved-28079004-2016-03-15T11:00:00 (AirQualityObserved): matches AirQualityObserved") {
		t.Fatalf("exit %d:\n%s", code, out)
	}

	// The same through standard input, with the flags after the file.
	code, out, _ = runValidate(t, string(data), "-", "--json")
	var rep validateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != 1 || rep.OK || rep.ExitCode != 1 || rep.Entities != 1 || rep.Invalid != 1 || len(rep.Results) != 1 {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	r := rep.Results[0]
	if r.File != "-" || r.Status != statusInvalid || r.Form != "keyValues" || len(r.Violations) != 2 ||
		r.Violations[0].Pointer != "/dateObserved" || r.Violations[0].Keyword != "format" || r.Violations[0].Model != "AirQualityObserved" ||
		r.Violations[1].Pointer != "/tsp" || r.Violations[1].Keyword != "type" {
		t.Fatalf("result %+v", r)
	}
}

func TestValidateFiles(t *testing.T) {
	dir := t.TempDir()
	good := `{"id":"urn:ngsi-ld:AirQualityObserved:1","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z",
		"location":{"type":"Point","coordinates":[10.79,45.16]},"no2":41}`
	normalizedBad := `{"id":"urn:ngsi-ld:AirQualityObserved:2","type":"AirQualityObserved",
		"dateObserved":{"type":"Property","value":"2024-01-10T10:00:00Z"},
		"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[10.79,45.16]}},
		"tsp":{"type":"Property","value":1.5}}`
	withContext := `{"@context":"https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld",
		"id":"urn:ngsi-ld:AirQualityObserved:3","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z",
		"location":{"type":"Point","coordinates":[10.79,45.16]},"no2":"high"}`
	bench := `{"id":"urn:ngsi-ld:Bench:1","type":"Bench","seats":0}`
	files := map[string]string{
		"good.json":    good,
		"mixed.json":   "[" + good + "," + normalizedBad + "," + withContext + `,{"type":"X"}, 3]`,
		"bench.json":   bench,
		"kv-flag.json": `{"id":"urn:ngsi-ld:AirQualityObserved:4","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00Z","location":{"type":"Point","coordinates":[10.79,45.16]},"tsp":{"value":3}}`,
		"notjson.json": `{"id":`,
		"scalar.json":  `"urn:x"`,
		"remote.json":  `{"@context":"https://city.example/context.jsonld","id":"urn:ngsi-ld:Bench:2","type":"Bench"}`,
	}
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	models := t.TempDir()
	writeFile(t, models, "Bench.json", `{"type":"object","required":["seats"],"properties":{"seats":{"type":"integer","minimum":1}}}`)
	in := func(name string) string { return filepath.Join(dir, name) }

	cases := []struct {
		name string
		args []string
		code int
		out  []string // in the report, in this order
		err  string   // in stderr
	}{
		{"valid", []string{in("good.json")}, 0, []string{"OK       urn:ngsi-ld:AirQualityObserved:1 (AirQualityObserved): matches AirQualityObserved", "1 valid, 0 invalid"}, ""},
		{"mixed array", []string{in("mixed.json")}, 1, []string{
			"OK       urn:ngsi-ld:AirQualityObserved:1",
			"INVALID  urn:ngsi-ld:AirQualityObserved:2 (AirQualityObserved): 1 problem with the AirQualityObserved model",
			"/tsp: must be of type integer; got number 1.5",
			"INVALID  urn:ngsi-ld:AirQualityObserved:3 (https://smartdatamodels.org/dataModel.Environment/AirQualityObserved): 1 problem",
			`/no2: must be of type number; got string "high"`,
			"ERROR    entity #3 (no id): the entity has no id",
			"ERROR    entity #4 (no id): element 4 is a number, not an entity",
			"1 file, 5 entities: 1 valid, 2 invalid, 0 not checked, 2 unreadable"}, ""},
		{"unknown type allowed", []string{in("bench.json")}, 0, []string{"OK       urn:ngsi-ld:Bench:1 (Bench): no data model for this type, not checked", "1 not checked"}, ""},
		{"unknown type rejected", []string{"--unknown-types", "reject", in("bench.json")}, 1, []string{"INVALID  urn:ngsi-ld:Bench:1 (Bench): no data model for type Bench"}, ""},
		{"own models", []string{in("bench.json"), "--schemas-dir", models}, 1, []string{"INVALID  urn:ngsi-ld:Bench:1 (Bench): 1 problem with the Bench model", "/seats: must be"}, ""},
		{"concise detected", []string{in("kv-flag.json")}, 0, []string{"OK       urn:ngsi-ld:AirQualityObserved:4"}, ""},
		{"forced keyValues", []string{"--key-values", in("kv-flag.json")}, 1, []string{"/tsp: must be of type integer; got an object"}, ""},
		{"several files", []string{in("good.json"), in("bench.json")}, 0, []string{in("good.json"), in("bench.json"), "2 files, 2 entities: 1 valid, 0 invalid, 1 not checked"}, ""},
		{"not JSON", []string{in("good.json"), in("notjson.json")}, 2, []string{"OK       urn:ngsi-ld:AirQualityObserved:1"}, "notjson.json: not JSON"},
		{"not entities", []string{in("scalar.json")}, 2, nil, "scalar.json: a document must be an entity"},
		{"missing file", []string{in("nope.json")}, 2, nil, "nope.json"},
		{"no file", nil, 2, nil, "no file to validate"},
		{"bad flag", []string{"--nope", in("good.json")}, 2, nil, "flag provided but not defined"},
		{"bad unknown-types", []string{"--unknown-types", "maybe", in("good.json")}, 2, nil, "neither allow nor reject"},
		{"bad schemas dir", []string{"--schemas-dir", in("nope"), in("good.json")}, 2, nil, "nope"},
		{"stdin twice", []string{"-", "-"}, 2, nil, "twice"},
		{"unreachable context", []string{"--offline", in("remote.json")}, 1, []string{"ERROR    urn:ngsi-ld:Bench:2: @context"}, ""},
		{"bad context-files", []string{"--offline", in("good.json"), "--context-files", "x=" + in("missing.jsonld")}, 2, nil, "--context-files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runValidate(t, "", c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errs)
			}
			rest := out
			for _, w := range c.out {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("report lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if !strings.Contains(errs, c.err) || (c.err == "" && errs != "") {
				t.Fatalf("stderr %q, want %q", errs, c.err)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		code, _, errs := runValidate(t, "", "-h")
		if code != 0 || !strings.Contains(errs, "piazza validate [flags] FILE...") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("through run", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run([]string{"validate", upstreamAQ}, &out, &errb); code != 1 || len(problemLines(out.String())) != 2 {
			t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
		}
	})
}
