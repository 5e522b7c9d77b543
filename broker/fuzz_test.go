package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addFixtureSeeds adds the entities of testdata (good fixtures, the inputs
// of bad ones, Smart Data Models examples) to a fuzzer's corpus.
func addFixtureSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/entities/*.json")
	sdm, _ := filepath.Glob("testdata/sdm/*.json")
	for _, p := range append(files, sdm...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Input json.RawMessage `json:"input"`
		}
		if json.Unmarshal(data, &fx) == nil && len(fx.Input) > 0 {
			data = fx.Input
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `"x"`, `{"id":"urn:a:b","type":"T"}`,
		`{"id":"urn:a:b","type":"T","p":[{"value":1},{"value":2,"datasetId":"urn:d:1"}]}`,
		`{"id":"urn:a:b","type":"T","p":{"value":"urn:ngsi-ld:null"}}`,
		`{"id":"urn:a:b","type":"T","p":{"value":[{"value":1}]}}`,
		`{"id":"urn:a:b","type":"T","p":{"value":{"type":"Point","coordinates":[1,2]}}}`,
		`{"p":null,"q":{"value":1,"r":null}}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseEntity feeds arbitrary JSON to ParseEntity in every combination
// of options. It must never panic; every refusal must be a BadRequestData
// *Error with a detail; the input must not be modified; every rendering must
// be valid JSON; and a whole entity must survive the round trip through
// every rendering the broker reads back (see roundTrip).
func FuzzParseEntity(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(data)
		if err != nil {
			return
		}
		before := appendValue(nil, v)
		for mask := range 8 {
			o := ParseOptions{KeyValues: mask&1 != 0, Fragment: mask&2 != 0, AllowNull: mask&4 != 0}
			e, err := ParseEntity(v, o)
			if err != nil {
				var be *Error
				if !errors.As(err, &be) || !errors.Is(err, ErrBadRequestData) || be.Detail == "" {
					t.Fatalf("%+v: error %v (%T) is not a BadRequestData *Error with a detail", o, err, err)
				}
				continue
			}
			for _, ro := range []RenderOptions{{Format: Normalized}, {Format: Concise}, {Format: Simplified}, storedOptions} {
				if out := AppendEntity(nil, e, ro); !json.Valid(out) {
					t.Fatalf("%+v: rendering %+v is not valid JSON: %s", o, ro, out)
				}
			}
			if e.ID == "" || len(e.Types) == 0 || hasDeletions(e) {
				continue
			}
			if err := roundTrip(e); err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
		}
		if after := appendValue(nil, v); !bytes.Equal(before, after) {
			t.Fatalf("ParseEntity modified its input:\n%s\n%s", before, after)
		}
	})
}
