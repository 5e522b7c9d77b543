package jsonld

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

const (
	ngsi    = "https://uri.etsi.org/ngsi-ld/"
	sdmEnv  = "https://smartdatamodels.org/dataModel.Environment/"
	geojson = "https://purl.org/geojson/vocab#"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

// offline returns a Loader that never touches the network.
func offline(t testing.TB, o LoaderOptions) *Loader {
	t.Helper()
	o.Offline = true
	return NewLoader(o)
}

// checkRoundTrip asserts that compaction is lossless for the expansion of x.
func checkRoundTrip(t *testing.T, c *Context, x string) {
	t.Helper()
	e := c.Expand(x)
	if got := c.Expand(c.Compact(e)); got != e {
		t.Errorf("Expand(Compact(Expand(%q))) = %q via %q, want %q", x, got, c.Compact(e), e)
	}
}

func TestCoreDocument(t *testing.T) {
	c := Core()
	if c.Len() != 181 {
		t.Errorf("core has %d terms, want 181", c.Len())
	}
	if c.Vocab() != DefaultVocab {
		t.Errorf("core @vocab = %q", c.Vocab())
	}
	if !c.IsCoreOnly() || c.Source() != CoreContextURL {
		t.Errorf("IsCoreOnly = %v, Source = %v", c.IsCoreOnly(), c.Source())
	}
	if Core() != c {
		t.Error("Core() is not processed once")
	}
	// Terms the spec added after v1.5 must be there.
	for term, iri := range map[string]string{
		"VocabProperty":       ngsi + "VocabProperty",
		"vocab":               ngsi + "hasVocab",
		"ListProperty":        ngsi + "ListProperty",
		"valueList":           ngsi + "hasValueList",
		"ListRelationship":    ngsi + "ListRelationship",
		"objectList":          ngsi + "hasObjectList",
		"JsonProperty":        ngsi + "JsonProperty",
		"json":                ngsi + "hasJSON",
		"jsonKeys":            ngsi + "jsonKeys",
		"LanguageProperty":    ngsi + "LanguageProperty",
		"languageMap":         ngsi + "hasLanguageMap",
		"objectType":          ngsi + "hasObjectType",
		"notificationTrigger": ngsi + "notificationTrigger",
		"expiresAt":           ngsi + "expiresAt",
		"datasetId":           ngsi + "datasetId",
		"scope":               ngsi + "scope",
		"value":               ngsi + "hasValue",
		"object":              ngsi + "hasObject",
		"location":            ngsi + "location",
		"containedBy":         ngsi + "isContainedBy",
		"description":         "http://purl.org/dc/terms/description",
		"Point":               geojson + "Point",
		"coordinates":         geojson + "coordinates",
		"id":                  "@id",
		"type":                "@type",
		"attributeCount":      DefaultVocab + "attributeCount",
	} {
		if got := c.Expand(term); got != iri {
			t.Errorf("Expand(%q) = %q, want %q", term, got, iri)
		}
		if got := c.Compact(iri); got != term {
			t.Errorf("Compact(%q) = %q, want %q", iri, got, term)
		}
	}
	// Every core term round-trips exactly.
	for term := range c.terms {
		if got := c.Compact(c.Expand(term)); got != term {
			t.Errorf("Compact(Expand(%q)) = %q", term, got)
		}
	}
}

func TestCoreTypeOf(t *testing.T) {
	c := Core()
	for term, want := range map[string]string{
		"createdAt":         ngsi + "DateTime",
		"observedAt":        ngsi + "DateTime",
		"object":            "@id",
		"datasetId":         "@id",
		"vocab":             "@vocab",
		"objectType":        "@vocab",
		"json":              "@json",
		"watchedAttributes": "@vocab",
		"value":             "",
		"languageMap":       "",
		"notDefined":        "",
	} {
		if got := c.TypeOf(term); got != want {
			t.Errorf("TypeOf(%q) = %q, want %q", term, got, want)
		}
	}
}

func TestCoreURLs(t *testing.T) {
	l := offline(t, LoaderOptions{})
	urls := []string{
		CoreContextURL,
		"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
		"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
		"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.5.jsonld",
		"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
		"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
		"http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			if !IsCoreURL(u) {
				t.Fatal("IsCoreURL = false")
			}
			c, err := l.Load(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if !c.IsCoreOnly() || c.Source() != u || c.Expand("value") != ngsi+"hasValue" {
				t.Errorf("IsCoreOnly=%v Source=%v", c.IsCoreOnly(), c.Source())
			}
			c, err = l.LoadLink(context.Background(), `<`+u+`>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`)
			if err != nil || !c.IsCoreOnly() {
				t.Errorf("LoadLink: %v", err)
			}
		})
	}
	for _, u := range []string{"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.2.jsonld", "https://uri.etsi.org/ngsi-ld/v1/other.jsonld"} {
		if IsCoreURL(u) {
			t.Errorf("IsCoreURL(%q) = true", u)
		}
	}
}

// expandCase is one expansion to check in a context; canonical means the
// name is the form Compact must give back.
type expandCase struct {
	name, iri string
	canonical bool
}

func TestExpandCompact(t *testing.T) {
	sdmFile, err := os.ReadFile("testdata/sdm-environment-context.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	const sdmURL = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
	l := offline(t, LoaderOptions{Builtin: map[string][]byte{sdmURL: sdmFile}})

	tests := []struct {
		name    string
		context string // JSON @context value
		cases   []expandCase
		types   map[string]string
	}{
		{
			name:    "core only",
			context: `null`,
			cases: []expandCase{
				{"temperature", DefaultVocab + "temperature", true},
				{"Building", DefaultVocab + "Building", true},
				{"ngsi-ld:hasValue", ngsi + "hasValue", false},
				{"ngsi-ld:other", ngsi + "other", true},
				{"geojson:thing", geojson + "thing", true},
				{"https://example.org/p", "https://example.org/p", true},
				{"urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:1", true},
				{"_:b0", "_:b0", true},
				{"@id", "@id", false},
				{"@foo", "@foo", true},
				{"", "", true},
				{"sub/path", DefaultVocab + "sub/path", false},
				{"frag#x", DefaultVocab + "frag#x", false},
				{"1bad:scheme", DefaultVocab + "1bad:scheme", false},
				{":x", DefaultVocab + ":x", false},
				{"unknownprefix:x", "unknownprefix:x", true},
				{"ngsi-ld://x", "ngsi-ld://x", true},
			},
		},
		{
			name:    "smart data models context (builtin URL)",
			context: `["` + sdmURL + `", "` + CoreContextURL + `"]`,
			cases: []expandCase{
				{"temperature", sdmEnv + "temperature", true},
				{"AirQualityObserved", sdmEnv + "AirQualityObserved", true},
				{"no2", sdmEnv + "no2", true},
				{"location", ngsi + "location", true},
				{"description", "http://purl.org/dc/terms/description", true},
				{"undefinedThing", DefaultVocab + "undefinedThing", true},
			},
		},
		{
			name:    "inline term to a Smart Data Models IRI",
			context: `{"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature"}`,
			cases: []expandCase{
				{"temperature", sdmEnv + "temperature", true},
				{"humidity", DefaultVocab + "humidity", true},
			},
		},
		{
			name:    "prefix and compact IRI terms",
			context: `{"sdm": "https://smartdatamodels.org/", "temperature": "sdm:temperature", "env": "sdm:dataModel.Environment/"}`,
			cases: []expandCase{
				{"temperature", "https://smartdatamodels.org/temperature", true},
				{"sdm:humidity", "https://smartdatamodels.org/humidity", true},
				{"env:no2", sdmEnv + "no2", true},
				{"sdm", "https://smartdatamodels.org/", true},
			},
		},
		{
			name:    "terms referring to terms, any order",
			context: `{"t1": "t2", "t3": "ex:v", "t2": "t3", "ex": "http://ex.org/"}`,
			cases: []expandCase{
				{"t1", "http://ex.org/v", true},
				{"t2", "http://ex.org/v", false},
				{"t3", "http://ex.org/v", false},
			},
		},
		{
			name:    "core prefixes usable in user contexts",
			context: `{"speed": "ngsi-ld:speed", "shape": "geojson:shape"}`,
			cases: []expandCase{
				{"speed", ngsi + "speed", true},
				{"shape", geojson + "shape", true},
			},
		},
		{
			name:    "keyword aliases",
			context: `{"myid": "@id", "kind": "@type", "weird": "@unknownKeyword"}`,
			cases: []expandCase{
				{"myid", "@id", false},
				{"kind", "@type", false},
				{"weird", DefaultVocab + "weird", true},
			},
		},
		{
			name: "object definitions keep @type",
			context: `{"xsd": "http://www.w3.org/2001/XMLSchema#",
				"speed": {"@id": "http://x.org/speed", "@type": "@vocab"},
				"when": {"@id": "http://x.org/when", "@type": "DateTime"},
				"day": {"@id": "http://x.org/day", "@type": "xsd:date", "@container": "@set"},
				"ref": {"@type": "@id"},
				"blob": {"@id": "http://x.org/blob", "@type": "@json"},
				"parent": {"@reverse": "http://x.org/child"}}`,
			cases: []expandCase{
				{"speed", "http://x.org/speed", true},
				{"ref", DefaultVocab + "ref", true},
				{"parent", "http://x.org/child", true},
				{"xsd:int", "http://www.w3.org/2001/XMLSchema#int", true},
			},
			types: map[string]string{
				"speed":  "@vocab",
				"when":   ngsi + "DateTime",
				"day":    "http://www.w3.org/2001/XMLSchema#date",
				"ref":    "@id",
				"blob":   "@json",
				"parent": "",
			},
		},
		{
			name:    "null undefines an earlier definition",
			context: `[{"foo": "http://x.org/foo", "bar": "http://x.org/bar"}, {"foo": null, "bar": {"@id": null}}]`,
			cases: []expandCase{
				{"foo", DefaultVocab + "foo", true},
				{"bar", DefaultVocab + "bar", true},
			},
		},
		{
			name:    "later contexts win",
			context: `[{"foo": "http://x.org/one"}, {"foo": "http://x.org/two"}]`,
			cases:   []expandCase{{"foo", "http://x.org/two", true}},
		},
		{
			name:    "null in an array resets to the core",
			context: `[{"foo": "http://x.org/one"}, null, {"bar": "http://x.org/bar"}]`,
			cases: []expandCase{
				{"foo", DefaultVocab + "foo", true},
				{"bar", "http://x.org/bar", true},
			},
		},
		{
			name:    "core terms cannot be redefined",
			context: `{"value": "http://evil.org/value", "location": {"@id": "http://evil.org/loc"}, "ngsi-ld": "http://evil.org/"}`,
			cases: []expandCase{
				{"value", ngsi + "hasValue", true},
				{"location", ngsi + "location", true},
				{"ngsi-ld:x", ngsi + "x", true},
			},
		},
		{
			name:    "user @vocab applies while processing, the core @vocab after",
			context: `[{"@vocab": "http://my.org/vocab#"}, {"foo": "foo2", "self": "self"}]`,
			cases: []expandCase{
				{"foo", "http://my.org/vocab#foo2", true},
				{"self", "http://my.org/vocab#self", true},
				{"other", DefaultVocab + "other", true},
			},
		},
		{
			name:    "@vocab as a compact IRI",
			context: `[{"@vocab": "ngsi-ld:custom/"}, {"foo": {"@type": "@id"}}]`,
			cases:   []expandCase{{"foo", ngsi + "custom/foo", true}},
		},
		{
			name:    "JSON-LD 1.1 prefix rule",
			context: `{"ex": "http://example.org/ns", "ex2": {"@id": "http://example.org/ns", "@prefix": true}, "obj": {"@id": "http://obj.org/"}}`,
			cases: []expandCase{
				{"ex:foo", "ex:foo", true},
				{"ex2:foo", "http://example.org/nsfoo", true},
				{"obj:foo", "obj:foo", true},
			},
		},
		{
			name:    "compact IRI terms",
			context: `{"ex": "http://ex.org/", "ex:special": "http://other.org/special", "foo:bar": {"@type": "@id"}}`,
			cases: []expandCase{
				{"ex:special", "http://other.org/special", true},
				{"ex:plain", "http://ex.org/plain", true},
				{"foo:bar", "foo:bar", true},
			},
		},
		{
			name:    "@base is kept",
			context: `{"@base": "http://base.example/dir/"}`,
			cases:   []expandCase{{"x", DefaultVocab + "x", true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.Load(context.Background(), decode(t, tc.context))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, ec := range tc.cases {
				if got := c.Expand(ec.name); got != ec.iri {
					t.Errorf("Expand(%q) = %q, want %q", ec.name, got, ec.iri)
				}
				if ec.canonical {
					if got := c.Compact(ec.iri); got != ec.name {
						t.Errorf("Compact(%q) = %q, want %q", ec.iri, got, ec.name)
					}
				}
				checkRoundTrip(t, c, ec.name)
			}
			for term, want := range tc.types {
				if got := c.TypeOf(term); got != want {
					t.Errorf("TypeOf(%q) = %q, want %q", term, got, want)
				}
			}
			for term := range c.terms {
				checkRoundTrip(t, c, term)
			}
		})
	}
}

func TestCompactChoices(t *testing.T) {
	l := offline(t, LoaderOptions{})
	tests := []struct {
		name, context, iri, want string
	}{
		{"shortest term", `{"temperature": "http://x.org/t", "temp": "http://x.org/t"}`, "http://x.org/t", "temp"},
		{"least of equal length", `{"b": "http://x.org/t", "a": "http://x.org/t"}`, "http://x.org/t", "a"},
		{"vocab-relative name that is a term is not used", `{"foo": "http://x.org/foo"}`, DefaultVocab + "foo", "ngsi-ld:default-context/foo"},
		{"vocab rest with a slash", `null`, DefaultVocab + "a/b", "ngsi-ld:default-context/a/b"},
		{"vocab rest with a colon", `null`, DefaultVocab + "a:b", "ngsi-ld:default-context/a:b"},
		{"vocab rest starting with @", `null`, DefaultVocab + "@x", "ngsi-ld:default-context/@x"},
		{"vocab itself", `null`, DefaultVocab, "ngsi-ld:default-context/"},
		{"shortest compact IRI", `{"a": "http://x.org/", "abc": "http://x.org/long/"}`, "http://x.org/long/z", "abc:z"},
		{"least compact IRI of equal length", `{"q": "http://x.org/", "p": "http://x.org/"}`, "http://x.org/z", "p:z"},
		{"compact IRI that is a term is skipped", `{"ex": "http://ex.org/", "ex:a": "http://other.org/a"}`, "http://ex.org/a", "http://ex.org/a"},
		{"suffix starting with // is skipped", `{"h": "http:"}`, "http://host/x", "http://host/x"},
		{"prefix IRI alone", `{"ex": "http://ex.org/"}`, "http://ex.org/", "ex"},
		{"unknown IRI unchanged", `null`, "http://unknown.org/a", "http://unknown.org/a"},
		{"keyword", `null`, "@type", "type"},
		{"user term for a core IRI", `{"v": "https://uri.etsi.org/ngsi-ld/hasValue"}`, ngsi + "hasValue", "v"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.Load(context.Background(), decode(t, tc.context))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Compact(tc.iri); got != tc.want {
				t.Errorf("Compact(%q) = %q, want %q", tc.iri, got, tc.want)
			}
			if got := c.Expand(c.Compact(tc.iri)); got != tc.iri {
				t.Errorf("Expand(Compact(%q)) = %q", tc.iri, got)
			}
		})
	}
}

func TestInvalidContexts(t *testing.T) {
	l := offline(t, LoaderOptions{})
	tests := []struct {
		name, context, wantMsg string
	}{
		{"cycle of two terms", `{"a": "b", "b": "a"}`, "cyclic"},
		{"term cycling through its own prefix", `{"a": "a:x"}`, "cyclic"},
		{"cycle of three", `{"a": "b", "b": "c", "c": {"@id": "a"}}`, "cyclic"},
		{"number as definition", `{"a": 5}`, "definition must be"},
		{"array as definition", `{"a": ["http://x"]}`, "definition must be"},
		{"number as @id", `{"a": {"@id": 5}}`, "@id must be a string"},
		{"empty term", `{"": "http://x.org/"}`, "empty string"},
		{"number as @type", `{"a": {"@id": "http://x.org/a", "@type": 5}}`, "@type must be a string"},
		{"unknown keyword as @type", `{"a": {"@id": "http://x.org/a", "@type": "@foo"}}`, "invalid @type"},
		{"alias of @context", `{"a": "@context"}`, "may not be aliased"},
		{"@context inside a context", `{"@context": {"a": "http://x.org/a"}}`, "keyword redefinition"},
		{"@version 1.0", `{"@version": 1.0}`, "@version"},
		{"@version as a string", `{"@version": "1.1"}`, "@version"},
		{"@protected not boolean", `{"@protected": "yes"}`, "@protected"},
		{"@propagate not boolean", `{"@propagate": 1}`, "@propagate"},
		{"@prefix not boolean", `{"a": {"@id": "http://x.org/", "@prefix": "yes"}}`, "@prefix"},
		{"@vocab a number", `{"@vocab": 3}`, "@vocab"},
		{"@vocab a keyword", `{"@vocab": "@id"}`, "@vocab"},
		{"@base a number", `{"@base": 3}`, "@base"},
		{"relative @base without base", `{"@base": "dir/"}`, "relative"},
		{"relative IRI without @vocab", `{"@vocab": null, "a": "b"}`, "not an absolute IRI"},
		{"vocab-relative term without @vocab", `{"@vocab": null, "a": {"@type": "@id"}}`, "no @vocab"},
		{"number", `5`, "not a number"},
		{"boolean", `true`, "not a boolean"},
		{"nested array", `[["http://x.org/c"]]`, "may not hold an array"},
		{"number in array", `[5]`, "not a number"},
		{"relative URL in body", `"context.jsonld"`, "not an absolute URL"},
		{"empty URL", `""`, "empty context URL"},
		{"unsupported scheme", `"ftp://example.org/c.jsonld"`, "only http and https"},
		{"file scheme", `"file:///etc/passwd"`, "only http and https"},
		{"URL without host", `"http:///c.jsonld"`, "no host"},
		{"bad URL", `"http://[::1"`, "context URL"},
		{"@import not a string", `{"@import": 5}`, "@import must be"},
		{"@import of the core", `{"@import": "` + CoreContextURL + `", "foo": "http://x.org/foo"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.Load(context.Background(), decode(t, tc.context))
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded (%d terms), want an error containing %q", c.Len(), tc.wantMsg)
			}
			if !errors.Is(err, ErrInvalidContext) {
				t.Errorf("error %v is not ErrInvalidContext", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
	if _, err := l.Load(context.Background(), 3.5); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("Load(3.5) = %v", err)
	}
	if _, err := l.Load(context.Background(), map[string]any{"a": make(chan int)}); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("Load(non-JSON map) = %v", err)
	}
}

func TestIsCoreOnly(t *testing.T) {
	l := offline(t, LoaderOptions{})
	for _, tc := range []struct {
		context string
		want    bool
	}{
		{`null`, true},
		{`"` + CoreContextURL + `"`, true},
		{`["` + CoreContextURL + `"]`, true},
		{`{}`, true},
		{`[]`, true},
		{`{"value": "http://evil.org/v"}`, true},
		{`{"@vocab": "http://my.org/"}`, true},
		{`{"temperature": "http://x.org/t"}`, false},
		{`{"@base": "http://x.org/"}`, false},
	} {
		c, err := l.Load(context.Background(), decode(t, tc.context))
		if err != nil {
			t.Fatalf("%s: %v", tc.context, err)
		}
		if c.IsCoreOnly() != tc.want {
			t.Errorf("%s: IsCoreOnly = %v, want %v", tc.context, c.IsCoreOnly(), tc.want)
		}
	}
}

func TestSourceIsEchoedAndIsolated(t *testing.T) {
	l := offline(t, LoaderOptions{})
	raw := map[string]any{"temperature": "http://x.org/t"}
	c, err := l.Load(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	raw["temperature"] = "changed by the caller"
	src, ok := c.Source().(map[string]any)
	if !ok || src["temperature"] != "http://x.org/t" {
		t.Errorf("Source = %v", c.Source())
	}
	c2, err := l.Load(context.Background(), map[string]any{"temperature": "http://x.org/t"})
	if err != nil {
		t.Fatal(err)
	}
	if c2 != c {
		t.Error("an equal in-body context was processed again")
	}
}

func TestExpandCompactDoNotAllocate(t *testing.T) {
	l := offline(t, LoaderOptions{})
	c, err := l.Load(context.Background(), decode(t, `{"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"temperature", "value", "https://example.org/x", "urn:ngsi-ld:A:1"} {
		if n := testing.AllocsPerRun(100, func() { _ = c.Expand(name) }); n != 0 {
			t.Errorf("Expand(%q) allocates %v times", name, n)
		}
	}
	for _, iri := range []string{sdmEnv + "temperature", ngsi + "hasValue", DefaultVocab + "humidity", "urn:x"} {
		if n := testing.AllocsPerRun(100, func() { _ = c.Compact(iri) }); n != 0 {
			t.Errorf("Compact(%q) allocates %v times", iri, n)
		}
	}
}

// Arrays of nulls or of core URLs must not copy the core per element.
func TestRepeatedResetsAreCheap(t *testing.T) {
	raw := make([]any, 0, 2000)
	for range 1000 {
		raw = append(raw, nil, CoreContextURL)
	}
	allocs := testing.AllocsPerRun(5, func() {
		p := newProcessor(context.Background(), nil)
		p.active.terms["user"] = termDef{iri: "http://x.org/user"} // make the first null reset
		p.pristine, p.coreOnTop = false, false
		if err := p.process(raw, ""); err != nil {
			t.Fatal(err)
		}
	})
	// One copy of the core for newProcessor and one for the first null.
	if allocs > 40 {
		t.Errorf("processing 2000 nulls and core URLs made %v allocations", allocs)
	}
}
