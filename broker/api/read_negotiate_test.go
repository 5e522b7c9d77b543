package api

import (
	"errors"
	"net/http/httptest"
	"testing"
)

// TestOutputType checks content negotiation, the plain Accept values that
// skip parsing among them: each answers as the full parse would.
func TestOutputType(t *testing.T) {
	cases := []struct {
		accept   string
		allowGeo bool
		want     string // "" = 406
	}{
		{"", true, mediaJSON},
		{"application/json", true, mediaJSON},
		{"*/*", false, mediaJSON},
		{"application/*", false, mediaJSON},
		{"application/ld+json", false, mediaLD},
		{"application/geo+json", true, mediaGeoJSON},
		{"application/geo+json", false, ""},
		{"text/html", true, ""},
		{"application/json;q=0.5, application/ld+json", true, mediaLD},
		{"application/geo+json;q=0.9, */*;q=0.1", true, mediaGeoJSON},
		{"application/geo+json, application/json;q=0.1", false, mediaJSON},
		{"application/ld+json;q=0", true, ""},
		{" application/json ", true, mediaJSON},
		{"APPLICATION/JSON", true, mediaJSON},
	}
	for _, c := range cases {
		t.Run(c.accept, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if c.accept != "" {
				r.Header.Set("Accept", c.accept)
			}
			got, err := outputType(r, c.allowGeo)
			if c.want == "" {
				if !errors.Is(err, errNotAcceptable) {
					t.Fatalf("got %q, %v; want 406", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
