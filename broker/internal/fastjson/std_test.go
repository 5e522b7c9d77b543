package fastjson

import (
	"bytes"
	"encoding/json"
	"errors"
)

// stdDecode is the reference: encoding/json's Decoder with UseNumber, plus
// a check that only whitespace follows the document.
func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, errors.New("data after the JSON document")
	}
	return v, nil
}

// depth returns the deepest nesting of arrays and objects in v.
func depth(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			n = max(n, depth(e))
		}
	case []any:
		for _, e := range v {
			n = max(n, depth(e))
		}
	default:
		return 0
	}
	return n + 1
}
