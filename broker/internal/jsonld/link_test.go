package jsonld

import (
	"context"
	"errors"
	"testing"
)

func TestParseLink(t *testing.T) {
	const u = "https://example.org/ctx.jsonld"
	tests := []struct {
		name, header, want string
		wantErr            bool
	}{
		{"canonical", `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`, u, false},
		{"unquoted rel", `<https://example.org/ctx.jsonld>; rel=http://www.w3.org/ns/json-ld#context; type=application/ld+json`, u, false},
		{"params in another order", `<https://example.org/ctx.jsonld>; type="application/ld+json"; rel="http://www.w3.org/ns/json-ld#context"`, u, false},
		{"no spaces", `<https://example.org/ctx.jsonld>;rel="http://www.w3.org/ns/json-ld#context";type="application/ld+json"`, u, false},
		{"extra whitespace", "  < https://example.org/ctx.jsonld >\t ;  rel = \"http://www.w3.org/ns/json-ld#context\"  ", u, false},
		{"case-insensitive name and value", `<https://example.org/ctx.jsonld>; REL="HTTP://WWW.W3.ORG/ns/json-ld#context"`, u, false},
		{"several relation types", `<https://example.org/ctx.jsonld>; rel="alternate http://www.w3.org/ns/json-ld#context"`, u, false},
		{"several links, context second", `<https://example.org/next>; rel="next", <https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"`, u, false},
		{"several links, context first", `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context", <https://example.org/next>; rel=next`, u, false},
		{"comma and semicolon inside the URL and quotes", `<https://example.org/a,b;c.jsonld>; title="x, y; z"; rel="http://www.w3.org/ns/json-ld#context"`, "https://example.org/a,b;c.jsonld", false},
		{"escaped quote", `<https://example.org/ctx.jsonld>; title="say \"hi\""; rel="http://www.w3.org/ns/json-ld#context"`, u, false},
		{"parameter without value", `<https://example.org/ctx.jsonld>; crossorigin; rel="http://www.w3.org/ns/json-ld#context"`, u, false},
		{"empty list elements", `, ,<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context",`, u, false},
		{"same context twice", `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context", <https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"`, u, false},
		{"no context link", `<https://example.org/next>; rel="next"`, "", false},
		{"empty", ``, "", false},
		{"rel without the fragment", `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld"`, "", false},
		{"two different contexts", `<https://a.example/1>; rel="http://www.w3.org/ns/json-ld#context", <https://a.example/2>; rel="http://www.w3.org/ns/json-ld#context"`, "", true},
		{"missing <", `https://example.org/ctx.jsonld; rel="http://www.w3.org/ns/json-ld#context"`, "", true},
		{"missing >", `<https://example.org/ctx.jsonld; rel="http://www.w3.org/ns/json-ld#context"`, "", true},
		{"unterminated quote", `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context`, "", true},
		{"junk after target", `<https://example.org/ctx.jsonld> rel="http://www.w3.org/ns/json-ld#context"`, "", true},
		{"empty parameter name", `<https://example.org/ctx.jsonld>; ="x"`, "", true},
		{"empty target", `<>; rel="http://www.w3.org/ns/json-ld#context"`, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLink(tc.header)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidLink) {
					t.Fatalf("ParseLink = %q, %v; want ErrInvalidLink", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLink = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoadLink(t *testing.T) {
	l := offline(t, LoaderOptions{Builtin: map[string][]byte{
		"https://example.org/ctx.jsonld": []byte(`{"@context": {"temperature": "https://smartdatamodels.org/dataModel.Environment/temperature"}}`),
	}})
	for _, h := range []string{"", "  ", `<https://example.org/next>; rel="next"`} {
		c, err := l.LoadLink(context.Background(), h)
		if err != nil || c != Core() {
			t.Errorf("LoadLink(%q) = %v, %v; want Core()", h, c, err)
		}
	}
	c, err := l.LoadLink(context.Background(), `<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"`)
	if err != nil || c.Expand("temperature") != sdmEnv+"temperature" || c.Source() != "https://example.org/ctx.jsonld" {
		t.Fatalf("LoadLink = %v, %v", c, err)
	}
	if _, err := l.LoadLink(context.Background(), `<broken`); !errors.Is(err, ErrInvalidLink) {
		t.Errorf("LoadLink(broken) = %v", err)
	}
	if _, err := l.LoadLink(context.Background(), `<relative.jsonld>; rel="http://www.w3.org/ns/json-ld#context"`); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("LoadLink(relative) = %v", err)
	}
}
