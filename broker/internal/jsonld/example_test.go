package jsonld_test

import (
	"context"
	"fmt"

	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// A request with a Link header: names are expanded on the way in and
// compacted with the same context on the way out.
func Example() {
	loader := jsonld.NewLoader(jsonld.LoaderOptions{
		Offline: true,
		Builtin: map[string][]byte{
			"https://example.org/weather.jsonld": []byte(`{"@context": {
				"sdm": "https://smartdatamodels.org/",
				"temperature": "sdm:dataModel.Environment/temperature"}}`),
		},
	})
	c, err := loader.LoadLink(context.Background(),
		`<https://example.org/weather.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"temperature", "observedAt", "sdm:humidity", "windSpeed"} {
		iri := c.Expand(name)
		fmt.Printf("%s -> %s -> %s\n", name, iri, c.Compact(iri))
	}
	fmt.Println(jsonld.Core().Compact("https://smartdatamodels.org/dataModel.Environment/temperature"))
	// Output:
	// temperature -> https://smartdatamodels.org/dataModel.Environment/temperature -> temperature
	// observedAt -> https://uri.etsi.org/ngsi-ld/observedAt -> observedAt
	// sdm:humidity -> https://smartdatamodels.org/humidity -> sdm:humidity
	// windSpeed -> https://uri.etsi.org/ngsi-ld/default-context/windSpeed -> windSpeed
	// https://smartdatamodels.org/dataModel.Environment/temperature
}
