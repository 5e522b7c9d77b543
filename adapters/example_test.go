package adapters_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/piazza-city/piazza/adapters"
)

// A mapping turns each record into an NGSI-LD entity: here one row of the
// ANPR resident population export becomes an SDMX Observation.
func ExampleParseMapping() {
	m, err := adapters.ParseMapping([]byte(`
decimal: ","   # Italian numbers: 49.787 is forty-nine thousand
type: Observation
id: "urn:ngsi-ld:Observation:popolazione:{{COD_ISTAT_COMUNE}}:{{DATA ELABORAZIONE | date}}"
attributes:
  obsValue:
    from: RESIDENTI
    as: integer
    unitCode: IE
    observedAt: {from: DATA_ELABORAZIONE, as: datetime}
  refArea: COD_ISTAT_COMUNE
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	header := adapters.NewHeader([]string{"DATA ELABORAZIONE", "COD_ISTAT_COMUNE", "RESIDENTI"}, "")
	rec := adapters.Record{Input: "popolazione.csv", Line: 2, Header: header, Values: []any{"10-01-2024", "020030", "49.787"}}
	entities, err := m.Map(&rec)
	if err != nil {
		fmt.Println(err)
		return
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(entities[0])
	// Output:
	// {
	//   "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
	//   "id": "urn:ngsi-ld:Observation:popolazione:020030:2024-01-10",
	//   "obsValue": {
	//     "observedAt": "2024-01-10T00:00:00+01:00",
	//     "type": "Property",
	//     "unitCode": "IE",
	//     "value": 49787
	//   },
	//   "refArea": {
	//     "type": "Property",
	//     "value": "020030"
	//   },
	//   "type": "Observation"
	// }
}
