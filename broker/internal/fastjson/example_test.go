package fastjson_test

import (
	"errors"
	"fmt"

	"github.com/piazza-city/piazza/broker/internal/fastjson"
)

func ExampleDecode() {
	v, err := fastjson.Decode([]byte(`{"id":"urn:ngsi-ld:AirQualityObserved:1","no2":{"type":"Property","value":22.50}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	no2 := v.(map[string]any)["no2"].(map[string]any)
	fmt.Printf("%T %v\n", no2["value"], no2["value"])
	// Output: json.Number 22.50
}

func ExampleSyntaxError() {
	_, err := fastjson.Decode([]byte("{\n  \"no2\": {\"value\": 22,}\n}"))
	var se *fastjson.SyntaxError
	if errors.As(err, &se) {
		fmt.Println(se.Offset, se.Line, se.Col)
	}
	fmt.Println(err)
	// Output:
	// 24 2 23
	// invalid JSON at line 2, column 23: invalid character '}' looking for beginning of object key string
}
