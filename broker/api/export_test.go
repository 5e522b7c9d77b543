package api

import "github.com/piazza-city/piazza/broker/internal/jsonld"

// CanonForTest and FullCanonForTest expose the core-context name paths to tests.
func CanonForTest(term string) string { return names{jsonld.Core()}.Canon(term) }

func FullCanonForTest(term string) string {
	core := jsonld.Core()
	return core.Compact(core.Expand(term))
}
