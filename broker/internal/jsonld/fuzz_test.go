package jsonld

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func FuzzParseLink(f *testing.F) {
	for _, s := range []string{
		`<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`,
		`<a>; rel=next, <b>; rel=http://www.w3.org/ns/json-ld#context`,
		`<a>; title="x\"y"; rel="alternate http://www.w3.org/ns/json-ld#context"`,
		`<`, `<>`, `;`, `,,`, `<a>;`, `<a>; rel="`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		u, err := ParseLink(h)
		if err != nil {
			if !errors.Is(err, ErrInvalidLink) || u != "" {
				t.Fatalf("ParseLink(%q) = %q, %v", h, u, err)
			}
			return
		}
		if u == "" {
			return
		}
		// A target that was found can be written back and found again.
		again, err := ParseLink("<" + u + `>; rel="http://www.w3.org/ns/json-ld#context"`)
		if err != nil || again != u {
			t.Fatalf("re-parsing %q gave %q, %v", u, again, err)
		}
	})
}

// FuzzLoadInBody feeds arbitrary JSON as an in-body @context value: Load
// must never panic and must give exactly one of a Context or an error, and
// compaction in the result must be lossless.
func FuzzLoadInBody(f *testing.F) {
	for _, s := range []string{
		`null`, `{}`, `[]`, `"` + CoreContextURL + `"`,
		`{"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature"}`,
		`{"a": "b", "b": "a"}`, `{"a": "a:x"}`, `{"ex": "http://ex.org/", "t": "ex:t", "ex:y": "http://o/"}`,
		`[{"@vocab": "http://v/"}, {"x": {"@type": "@id"}}, null, {"x": null}]`,
		`{"@version": 1.1, "@protected": true, "id": "@id", "k": {"@id": "@type"}}`,
		`{"p": {"@id": "http://p.org/", "@prefix": true}, "q": {"@reverse": "p:q", "@type": "p:t"}}`,
		`{"@import": "` + CoreContextURL + `"}`, `["https://offline.example/x"]`, `[[]]`, `5`,
	} {
		f.Add([]byte(s))
	}
	if sdm, err := os.ReadFile("testdata/sdm-environment-context.jsonld"); err == nil {
		var doc map[string]any
		if json.Unmarshal(sdm, &doc) == nil {
			b, _ := json.Marshal(doc["@context"])
			f.Add(b)
		}
	}
	l := NewLoader(LoaderOptions{Offline: true, CacheSize: 64})
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		c, err := l.Load(context.Background(), raw)
		if (c == nil) == (err == nil) {
			t.Fatalf("Load(%s) = %v, %v: want exactly one", data, c, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidContext) && !errors.Is(err, ErrContextNotAvailable) {
				t.Fatalf("Load(%s): error %v of an unknown kind", data, err)
			}
			return
		}
		names := []string{"value", "temperature", "x", "ex:y", "p:q", "a/b", "urn:x"}
		if m, ok := raw.(map[string]any); ok {
			for k := range m {
				names = append(names, k)
			}
		}
		for _, name := range names {
			e := c.Expand(name)
			if back := c.Expand(c.Compact(e)); back != e {
				t.Fatalf("context %s: Expand(%q) = %q, Compact gives %q, which expands to %q", data, name, e, c.Compact(e), back)
			}
		}
		if c.Expand("value") != ngsi+"hasValue" {
			t.Fatalf("context %s redefined the core term value", data)
		}
	})
}

// FuzzExpandCompact checks that compaction is lossless for any name in a
// context with prefixes, terms with colons and vocab-relative terms.
func FuzzExpandCompact(f *testing.F) {
	l := NewLoader(LoaderOptions{Offline: true})
	c, err := l.Load(context.Background(), map[string]any{
		"ex": "http://ex.org/", "exx": "http://ex.org/x/", "ex:a": "http://other.org/a",
		"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature",
		"foo":         "https://uri.etsi.org/ngsi-ld/default-context/bar",
		"h":           "http:",
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"ex:a", "ex:b", "exx:c", "ex:x/c", "bar", "foo", "http://x", "h://x", "h:x", "@id", "_:b", "a:b:c", "ngsi-ld:default-context/foo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ctx := range []*Context{c, Core()} {
			e := ctx.Expand(s)
			if back := ctx.Expand(ctx.Compact(e)); back != e {
				t.Fatalf("Expand(%q) = %q, Compact gives %q, which expands to %q", s, e, ctx.Compact(e), back)
			}
			if strings.HasPrefix(s, "@") && e != s {
				t.Fatalf("keyword-like %q expanded to %q", s, e)
			}
		}
	})
}
