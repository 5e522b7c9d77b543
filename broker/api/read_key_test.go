package api

import (
	"net/url"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// TestViewKeyDistinct checks that views that may write different bytes
// have different keys, whatever bytes their parameters hold, and that
// equal views have equal keys.
func TestViewKeyDistinct(t *testing.T) {
	core := jsonld.Core()
	other, err := jsonld.NewLoader(jsonld.LoaderOptions{Offline: true}).Load(t.Context(), map[string]any{"t": "https://example.org/t"})
	if err != nil {
		t.Fatal(err)
	}
	proj := &projection{}
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	base := view{ctx: core, media: mediaJSON, geoProp: "location"}
	with := func(f func(v *view)) view {
		v := base
		f(&v)
		return v
	}
	views := map[string]view{
		"plain":         base,
		"ld":            with(func(v *view) { v.media = mediaLD }),
		"geo":           with(func(v *view) { v.media = mediaGeoJSON }),
		"keyValues":     with(func(v *view) { v.format = broker.Simplified }),
		"concise":       with(func(v *view) { v.format = broker.Concise }),
		"sysAttrs":      with(func(v *view) { v.sysAttrs = true }),
		"context":       with(func(v *view) { v.ctx = other }),
		"geoProp":       with(func(v *view) { v.geoProp = "place" }),
		"inCollection":  with(func(v *view) { v.inCollection = true }),
		"attrs a":       with(func(v *view) { v.attrs = set("a") }),
		"attrs a,b":     with(func(v *view) { v.attrs = set("a", "b") }),
		"attrs a\\0b":   with(func(v *view) { v.attrs = set("a\x00b") }),
		"attrs a\\0a,b": with(func(v *view) { v.attrs = set("a\x00a", "b") }),
		"attrs a,a\\0b": with(func(v *view) { v.attrs = set("a", "a\x00b") }),
		"attrs 2:ab":    with(func(v *view) { v.attrs = set("2:ab") }),
		"lang it":       with(func(v *view) { v.proj, v.params = proj, url.Values{"lang": {"it"}} }),
		"lang en":       with(func(v *view) { v.proj, v.params = proj, url.Values{"lang": {"en"}} }),
		"lang it,en":    with(func(v *view) { v.proj, v.params = proj, url.Values{"lang": {"it", "en"}} }),
		"lang it+ds":    with(func(v *view) { v.proj, v.params = proj, url.Values{"lang": {"it"}, "datasetId": {"urn:d"}} }),
		"ds it":         with(func(v *view) { v.proj, v.params = proj, url.Values{"datasetId": {"it"}} }),
		"pick a":        with(func(v *view) { v.proj, v.params = proj, url.Values{"pick": {"a"}} }),
		"omit a":        with(func(v *view) { v.proj, v.params = proj, url.Values{"omit": {"a"}} }),
		"pick a+attrs":  with(func(v *view) { v.proj, v.params, v.attrs = proj, url.Values{"pick": {"a"}}, set("a") }),
	}
	seen := map[broker.ViewKey]string{}
	for name, v := range views {
		k := v.key()
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s have one key %+v", prev, name, k)
		}
		seen[k] = name
		if k2 := v.key(); k2 != k {
			t.Errorf("%s: two keys for one view: %+v, %+v", name, k, k2)
		}
	}
}
