package fastjson

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode checks that for any input Decode agrees with encoding/json
// (UseNumber, nothing after the document): both fail, or both succeed with
// deeply equal values; syntax errors point at the same byte (see diverge).
// The one allowed difference is nesting deeper than MaxDepth, which only
// Decode rejects.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		``, ` `, `null`, `true`, `false`, `0`, `-0.5e+10`, `"a\u00e9\ud83d\ude00\ud800"`,
		`{"a":1,"a":2}`, `[1,[2,{"b":[]}],{}]`, `"\xff\xfe"`, `{"a" 1}`, `[1,]`, `01`, `1 2`,
		`{"type":"Property","value":22,"unitCode":"GQ","observedAt":"2016-03-15T11:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.json")
	more, _ := filepath.Glob("testdata/smartdatamodels/*.example.json")
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if d := diverge(data); d != "" {
			t.Fatalf("Decode(%q): %s", data, d)
		}
	})
}
