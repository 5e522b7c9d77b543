package schemas_test

import (
	"encoding/json"
	"fmt"

	"github.com/piazza-city/piazza/schemas"
)

// The write path finds the model by the entity's expanded type and validates
// the keyValues form of the entity as it will be after the write.
func ExampleModel_Validate() {
	reg, err := schemas.NewRegistry(schemas.Options{})
	if err != nil {
		panic(err)
	}
	// An entity posted with only the NGSI-LD core @context: its type
	// expands into the default vocabulary.
	m, ok := reg.Lookup(schemas.DefaultContextIRI + "AirQualityObserved")
	if !ok {
		panic("no model")
	}
	var kv map[string]any
	_ = json.Unmarshal([]byte(`{
		"id": "urn:ngsi-ld:AirQualityObserved:Mantova-1",
		"type": "AirQualityObserved",
		"dateObserved": "2025-11-20T10:00:00",
		"location": {"type": "Point", "coordinates": [10.79, 45.16]},
		"tsp": 73.3
	}`), &kv)
	violations, err := m.Validate(kv)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Name, m.TypeIRI)
	for _, v := range violations {
		fmt.Println(v)
	}
	// Output:
	// AirQualityObserved https://smartdatamodels.org/dataModel.Environment/AirQualityObserved
	// /dateObserved: must be a date-time with a UTC offset (RFC 3339, e.g. 2016-03-15T11:00:00Z); got string "2025-11-20T10:00:00", which has no offset (format)
	// /tsp: must be of type integer; got number 73.3 (type)
}
