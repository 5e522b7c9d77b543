// Package all imports every built-in source kind of Piazza's adapters, so
// that a program (cmd/piazza) gets them registered with one blank import:
//
//	import _ "github.com/piazza-city/piazza/adapters/all"
package all

import (
	_ "github.com/piazza-city/piazza/adapters/ckansource"   // registers "ckan"
	_ "github.com/piazza-city/piazza/adapters/csvsource"    // registers "csv"
	_ "github.com/piazza-city/piazza/adapters/httpsource"   // registers "http"
	_ "github.com/piazza-city/piazza/adapters/jsonsource"   // registers "json", "jsonl", "geojson"
	_ "github.com/piazza-city/piazza/adapters/ngsiv2source" // registers "ngsiv2"
)
