package broker

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestScopeQMatch(t *testing.T) {
	madrid := []string{"/Madrid/Gardens/ParqueNorte", "/CompanyA"}
	cases := []struct {
		q      string
		scopes []string
		want   bool
	}{
		{"/Madrid", []string{"/Madrid"}, true},
		{"/Madrid", []string{"/Madrid/Gardens"}, false},
		{"/Madrid", []string{"/Madri"}, false},
		{"/Madrid", nil, false},
		{"/Madrid/Gardens/#", []string{"/Madrid/Gardens"}, true},
		{"/Madrid/Gardens/#", []string{"/Madrid/Gardens/ParqueNorte/Parterre1"}, true},
		{"/Madrid/Gardens/#", []string{"/Madrid/GardensX"}, false},
		{"/Madrid/Gardens/#", []string{"/Madrid"}, false},
		{"/Madrid/+/ParqueNorte", []string{"/Madrid/Sights/ParqueNorte"}, true},
		{"/Madrid/+/ParqueNorte", []string{"/Madrid/ParqueNorte"}, false},
		{"/Madrid/+/ParqueNorte", []string{"/Madrid/a/b/ParqueNorte"}, false},
		{"/Madrid/+", []string{"/Madrid/x"}, true},
		{"/Madrid/+", []string{"/Madrid/x/y"}, false},
		{"/Madrid/+/#", []string{"/Madrid/x/y"}, true},
		{"/+", []string{"/x"}, true},
		{"/#", []string{"/x/y"}, true},
		{"/#", nil, false},
		{"/#", []string{}, false},
		{"(/Madrid/Gardens/#;/CompanyA)", madrid, true},
		{"(/Madrid/Gardens/#;/CompanyB)", madrid, false},
		{"/Madrid/Gardens/#;/CompanyA", madrid, true},
		{"(/Madrid/Districts;/CompanyA)|/CompanyB", []string{"/CompanyB"}, true},
		{"(/Madrid/Districts;/CompanyA),/CompanyB", []string{"/CompanyB"}, true},
		{"(/Madrid/Districts;/CompanyA),/CompanyB", []string{"/CompanyA"}, false},
		{"/X|/CompanyA", madrid, true},
		{"/X,/Y,/Z", madrid, false},
		{" /X , /CompanyA ", madrid, true},
		{"/Città/Mantova", []string{"/Città/Mantova"}, true},
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			s, err := ParseScopeQ(c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Match(c.scopes); got != c.want {
				t.Errorf("Match(%q) = %v, want %v", c.scopes, got, c.want)
			}
		})
	}
	var nilS *ScopeQuery
	if !nilS.Match(nil) {
		t.Error("a nil ScopeQuery must match")
	}
}

func TestScopeQErrors(t *testing.T) {
	cases := []struct{ q, detail string }{
		{"", "empty"},
		{"Madrid", `character 1: scope "Madrid": a scope starts with '/'`},
		{"/", "empty scope level"},
		{"/a//b", "character 4: scope \"/a//b\": empty scope level"},
		{"/a/", "empty scope level"},
		{"/a/#/b", "'#' may only end"},
		{"/a#", "stand alone"},
		{"/a/b+", "stand alone"},
		{"/#/#", "'#' may only end"},
		{"(/a", "character 1: '(' is never closed"},
		{"/a)", "character 3: ')' without a matching '('"},
		{"/a;", "character 4: expected a scope, found the end"},
		{"/a||/b", "character 4: expected a scope"},
		{"()", "character 2: expected a scope"},
		{"/a(/b)", "unexpected '('"},
		{"/a /b", "unexpected '/'"},
		{strings.Repeat("(", MaxQDepth+1) + "/a" + strings.Repeat(")", MaxQDepth+1), "deeper than 64"},
		{strings.Repeat("/a,", maxSelectionAtoms) + "/a", "more than 512 scopes"},
		{strings.Repeat("/a", MaxSelectionLength), "longer than 8192"},
		{"/\xff", "UTF-8"},
	}
	for _, c := range cases {
		name := c.q
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run(name, func(t *testing.T) {
			_, err := ParseScopeQ(c.q)
			var be *Error
			if !errors.As(err, &be) || be.Kind != ErrBadRequestData {
				t.Fatalf("error %v, want a BadRequestData *Error", err)
			}
			if !strings.Contains(be.Detail, c.detail) {
				t.Errorf("detail %q does not contain %q", be.Detail, c.detail)
			}
		})
	}
}

func FuzzParseScopeQ(f *testing.F) {
	for _, s := range []string{"/a", "/a/#", "/a/+/b", "/#", "(/a;/b)|/c", "(/a;/b),/c", "/Città", "/0,/0"} {
		f.Add(s)
	}
	scopes := [][]string{nil, {"/a"}, {"/a/b/c", "/c"}, {"/b"}, {"", "/", "//"}}
	f.Fuzz(func(t *testing.T, q string) {
		start := time.Now()
		s, err := ParseScopeQ(q)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("ParseScopeQ took %v", d)
		}
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Kind != ErrBadRequestData || be.Detail == "" {
				t.Fatalf("error %v is not a BadRequestData *Error", err)
			}
			return
		}
		for _, sc := range scopes {
			s.Match(sc)
		}
		// A single scope that parses as a plain scope matches itself.
		if validScope(q) && !strings.ContainsAny(q, ";|,() \t") && !s.Match([]string{q}) {
			t.Fatalf("%q does not match itself", q)
		}
	})
}

func BenchmarkScopeQMatch(b *testing.B) {
	s, err := ParseScopeQ("(/Madrid/Gardens/#;/CompanyA)|/Madrid/+/ParqueSur")
	if err != nil {
		b.Fatal(err)
	}
	scopes := []string{"/Madrid/Gardens/ParqueNorte", "/CompanyA"}
	b.ReportAllocs()
	for b.Loop() {
		s.Match(scopes)
	}
}
