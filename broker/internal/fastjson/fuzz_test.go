package fastjson

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode checks that for any input Decode agrees with encoding/json
// (UseNumber, nothing after the document): both fail, or both succeed with
// deeply equal values. The one allowed difference is nesting deeper than
// MaxDepth, which only Decode rejects.
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
		got, err := Decode(data)
		want, stdErr := stdDecode(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Decode(%q) error %v (%T) is not a *SyntaxError wrapping ErrSyntax", data, err, err)
			}
			if se.Offset < 0 || se.Offset > int64(len(data)) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("Decode(%q) error position out of range: %+v", data, se)
			}
			if strings.HasPrefix(se.Msg, "nesting deeper than") {
				if stdErr == nil && depth(want) <= MaxDepth {
					t.Fatalf("Decode(%q) rejected depth %d <= MaxDepth", data, depth(want))
				}
				return
			}
			if stdErr == nil {
				t.Fatalf("Decode(%q) failed (%v), encoding/json succeeded with %#v", data, err, want)
			}
			return
		}
		if stdErr != nil {
			t.Fatalf("Decode(%q) = %#v, encoding/json failed: %v", data, got, stdErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json gives %#v", data, got, want)
		}
	})
}
