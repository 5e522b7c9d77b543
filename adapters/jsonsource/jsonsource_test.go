package jsonsource

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
)

type collect struct {
	recs    []adapters.Record
	rejects []adapters.Record
	errs    []error
}

func (c *collect) Emit(r adapters.Record) error { c.recs = append(c.recs, r); return nil }
func (c *collect) Reject(r adapters.Record, err error) error {
	c.rejects = append(c.rejects, r)
	c.errs = append(c.errs, err)
	return nil
}
func (c *collect) Sync() error { return nil }

func run(t *testing.T, in string, cfg Config) (*collect, error) {
	t.Helper()
	s, err := FromReader("in", strings.NewReader(in), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	return &c, s.Run(context.Background(), &c)
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		records string
		names   [][]string
		rejects int
		err     string
	}{
		{"top-level array", `[{"b":1,"a":"x"},{"a":"y"}]`, "", [][]string{{"b", "a"}, {"a"}}, 0, ""},
		{"ckan datastore", `{"help":"...","success":true,"result":{"fields":[{"id":"a"}],"records":[{"_id":1,"COMUNE":"MANTOVA"}],"total":1}}`,
			"result.records", [][]string{{"_id", "COMUNE"}}, 0, ""},
		{"bom", "\xEF\xBB\xBF[{\"a\":1}]", "", [][]string{{"a"}}, 0, ""},
		{"non-object member", `[{"a":1}, 5, {"a":2}]`, "", [][]string{{"a"}, {"a"}}, 1, ""},
		{"empty array", `[]`, "", nil, 0, ""},
		{"object without path", `{"records":[]}`, "", nil, 0, "set records:"},
		{"wrong path", `{"result":{"rows":[]}}`, "result.records", nil, 0, `no key "records" in result (keys: rows)`},
		{"path to a scalar", `{"result":5}`, "result.records", nil, 0, "not inside an object"},
		{"broken document", `[{"a":1},{"a":`, "", [][]string{{"a"}}, 0, "record 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := run(t, tt.in, Config{Records: tt.records})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, adapters.ErrMalformedRecord) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(c.recs) != len(tt.names) || len(c.rejects) != tt.rejects {
				t.Fatalf("%d records, %d rejects (%v)", len(c.recs), len(c.rejects), c.errs)
			}
			for i, r := range c.recs {
				if got := r.Header.Names(); !reflect.DeepEqual(got, tt.names[i]) {
					t.Errorf("record %d names %v, want %v", i, got, tt.names[i])
				}
				if r.Header.Tabular() {
					t.Error("JSON headers must not be tabular")
				}
			}
		})
	}
}

func TestJSONValuesAndRaw(t *testing.T) {
	c, err := run(t, "[\n  {\"code\": \"020030\",\n   \"n\": 49787, \"nested\": {\"k\": true}}\n]", Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := c.recs[0]
	if r.Values[0] != "020030" || r.Values[1] != json.Number("49787") || !reflect.DeepEqual(r.Values[2], map[string]any{"k": true}) {
		t.Errorf("values %#v", r.Values)
	}
	if r.Raw != `{"code":"020030","n":49787,"nested":{"k":true}}` || r.Index != 1 || r.Offset == 0 {
		t.Errorf("raw %q index %d offset %d", r.Raw, r.Index, r.Offset)
	}
}

func TestJSONLines(t *testing.T) {
	in := "{\"a\":1}\n\n{\"a\":2,\"b\":3}\r\nnot json\n[1]\n{\"a\":1} {\"a\":2}\n{\"a\":4}\n{\"a\":5}"
	c, err := run(t, in, Config{Format: Lines})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 4 || len(c.rejects) != 3 {
		t.Fatalf("%d records, %d rejects", len(c.recs), len(c.rejects))
	}
	if lines := []int{c.recs[0].Line, c.recs[1].Line, c.recs[2].Line, c.recs[3].Line}; !reflect.DeepEqual(lines, []int{1, 3, 7, 8}) {
		t.Errorf("lines %v", lines)
	}
	if c.rejects[0].Raw != "not json" || c.rejects[0].Line != 4 || !errors.Is(c.errs[0], adapters.ErrMalformedRecord) {
		t.Errorf("reject %+v %v", c.rejects[0], c.errs[0])
	}
	if c.recs[2].Header != c.recs[3].Header || c.recs[1].Header == c.recs[2].Header {
		t.Error("records with the same keys should share a header")
	}
}

func TestGeoJSON(t *testing.T) {
	in := `{"type":"FeatureCollection","name":"fermate","features":[
	 {"type":"Feature","id":7,"properties":{"NOME":"Piazza Sordello","CODICE":"0042"},"geometry":{"type":"Point","coordinates":[10.7925,45.1603]}},
	 {"type":"Feature","properties":null,"geometry":null},
	 {"type":"Point","coordinates":[1,2]}
	]}`
	c, err := run(t, in, Config{Format: GeoJSON})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 2 || len(c.rejects) != 1 {
		t.Fatalf("%d records, %d rejects", len(c.recs), len(c.rejects))
	}
	r := c.recs[0]
	if got := r.Header.Names(); !reflect.DeepEqual(got, []string{"NOME", "CODICE", "$id", "$geometry"}) {
		t.Errorf("names %v", got)
	}
	g, _ := r.Values[3].(map[string]any)
	if g["type"] != "Point" || r.Values[1] != "0042" || r.Values[2] != json.Number("7") {
		t.Errorf("values %#v", r.Values)
	}
	if !strings.Contains(c.errs[0].Error(), "not Feature") {
		t.Errorf("reject reason %v", c.errs[0])
	}
	if _, err := run(t, `{"type":"FeatureCollection"}`, Config{Format: GeoJSON}); err == nil || !strings.Contains(err.Error(), `no key "features"`) {
		t.Errorf("missing features: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, adapters.ErrInvalidConfig) {
		t.Errorf("no path: %v", err)
	}
	if _, err := New(Config{Path: "x", Records: "a..b"}); !errors.Is(err, adapters.ErrInvalidConfig) {
		t.Errorf("empty segment: %v", err)
	}
	if _, err := New(Config{Path: "x", Records: "a", Format: Lines}); !errors.Is(err, adapters.ErrInvalidConfig) {
		t.Errorf("records on jsonl: %v", err)
	}
	for _, kind := range []string{"json", "jsonl", "geojson"} {
		cfg, _ := adapters.NewSourceConfig(kind, map[string]any{"path": "x", "recs": "a"})
		if _, err := adapters.NewSource(cfg); !errors.Is(err, adapters.ErrInvalidConfig) || !strings.Contains(err.Error(), `"recs"`) {
			t.Errorf("%s unknown key: %v", kind, err)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x.json")
	os.WriteFile(p, []byte(`[{"a":1}]`), 0o644)
	s, _ := New(Config{Path: p})
	var c collect
	if err := s.Run(context.Background(), &c); err != nil || len(c.recs) != 1 || s.Size() != 9 {
		t.Errorf("file: %v %d %d", err, len(c.recs), s.Size())
	}
	if s.Close() != nil || s.Close() != nil {
		t.Error("close")
	}
}

// FuzzJSON checks that no input makes the three formats panic, and that
// records are objects with as many names as values.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`[{"a":1}]`, `{"result":{"records":[{"x":[1,{"y":null}]}]}}`, "{\"a\":1}\n{", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":1},"geometry":{"type":"Point","coordinates":[1,2]}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, cfg := range []Config{{}, {Records: "result.records"}, {Format: Lines}, {Format: GeoJSON}} {
			s, err := FromReader("fuzz", strings.NewReader(string(data)), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var c collect
			if err := s.Run(context.Background(), &c); err != nil && !errors.Is(err, adapters.ErrMalformedRecord) {
				t.Fatalf("%+v: %v", cfg, err)
			}
			for _, r := range c.recs {
				if r.Header.Len() != len(r.Values) {
					t.Fatalf("%d names, %d values", r.Header.Len(), len(r.Values))
				}
			}
		}
	})
}
