package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// maxDocumentDepth bounds the nesting of a validated document. keyValues
// entities are a few levels deep; the bound keeps a cyclic or hostile Go value
// from exhausting the stack.
const maxDocumentDepth = 1000

// toInstance converts a keyValues document to the representation gojsonschema
// validates: maps, slices, strings, booleans, nil and json.Number. Values
// that already have that form are shared, not copied, so a document decoded
// with json.Decoder.UseNumber costs nothing; other numbers are formatted
// once. The input is never modified.
func toInstance(v any, depth int) (any, bool, error) {
	if depth > maxDocumentDepth {
		return nil, false, fmt.Errorf("%w: nested deeper than %d levels", ErrInvalidDocument, maxDocumentDepth)
	}
	switch x := v.(type) {
	case nil, bool, string:
		return v, false, nil
	case json.Number:
		if !validNumber(string(x)) {
			return nil, false, fmt.Errorf("%w: %.40q is not a JSON number of at most %d characters with an exponent of at most %d", ErrInvalidDocument, string(x), maxNumberLen, maxNumberExp)
		}
		return v, false, nil
	case float64:
		return floatNumber(x)
	case float32:
		return floatNumber(float64(x))
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), true, nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), true, nil
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), true, nil
	case int16:
		return json.Number(strconv.FormatInt(int64(x), 10)), true, nil
	case int8:
		return json.Number(strconv.FormatInt(int64(x), 10)), true, nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(x), 10)), true, nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), true, nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(x), 10)), true, nil
	case uint16:
		return json.Number(strconv.FormatUint(uint64(x), 10)), true, nil
	case uint8:
		return json.Number(strconv.FormatUint(uint64(x), 10)), true, nil
	case map[string]any:
		return convertMap(x, depth)
	case []any:
		return convertSlice(x, depth)
	default:
		// Anything else (typed maps and slices, structs, time.Time...) takes
		// the slow path: its JSON form, decoded the way gojsonschema does.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %T has no JSON form: %v", ErrInvalidDocument, v, err)
		}
		out, err := decodeJSON(b)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %T: %v", ErrInvalidDocument, v, err)
		}
		return out, true, nil
	}
}

func floatNumber(f float64) (any, bool, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false, fmt.Errorf("%w: %v has no JSON form", ErrInvalidDocument, f)
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true, nil
}

func convertMap(m map[string]any, depth int) (any, bool, error) {
	var out map[string]any
	for k, v := range m {
		nv, changed, err := toInstance(v, depth+1)
		if err != nil {
			return nil, false, err
		}
		if changed {
			if out == nil {
				out = make(map[string]any, len(m))
			}
			out[k] = nv
		}
	}
	if out == nil {
		return m, false, nil
	}
	for k, v := range m {
		if _, done := out[k]; !done {
			out[k] = v
		}
	}
	return out, true, nil
}

func convertSlice(s []any, depth int) (any, bool, error) {
	var out []any
	for i, v := range s {
		nv, changed, err := toInstance(v, depth+1)
		if err != nil {
			return nil, false, err
		}
		if changed && out == nil {
			out = make([]any, len(s))
			copy(out, s[:i])
		}
		if out != nil {
			out[i] = nv
		}
	}
	if out == nil {
		return s, false, nil
	}
	return out, true, nil
}

// maxNumberLen and maxNumberExp bound the json.Number values that Validate
// accepts: gojsonschema turns every number into a big.Rat, and the literal
// 1e1000000 alone costs 70 ms to convert (RFC 8259 lets implementations limit
// the range of numbers; float64 needs exponents up to 308 only).
const (
	maxNumberLen = 100
	maxNumberExp = 400
)

// validNumber reports whether s follows the JSON number grammar (RFC 8259)
// within the bounds above.
func validNumber(s string) bool {
	if len(s) > maxNumberLen {
		return false
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
		exp, err := strconv.Atoi(s[start:i])
		if err != nil || exp > maxNumberExp {
			return false
		}
	}
	return i == len(s)
}
