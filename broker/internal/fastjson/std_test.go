package fastjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// errTrailing is stdDecode's error for data after the document.
var errTrailing = errors.New("data after the JSON document")

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
		return nil, errTrailing
	}
	return v, nil
}

// diverge compares Decode with stdDecode on data and describes how they
// differ, or returns "". They must both fail or both give deeply equal
// values. When encoding/json reports a syntax error, Decode must report the
// same offending byte (encoding/json's Offset counts that byte, Decode's
// does not) and, for an ASCII byte, the same message. Only Decode rejects
// nesting deeper than MaxDepth. Every error must be a well-formed
// *SyntaxError wrapping ErrSyntax.
func diverge(data []byte) string {
	got, err := Decode(data)
	want, stdErr := stdDecode(data)
	if err == nil {
		switch {
		case stdErr != nil:
			return fmt.Sprintf("Decode = %#v, encoding/json fails: %v", got, stdErr)
		case !reflect.DeepEqual(got, want):
			return fmt.Sprintf("Decode = %#v, encoding/json = %#v", got, want)
		}
		return ""
	}
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
		return fmt.Sprintf("error %v (%T) is not a *SyntaxError wrapping ErrSyntax", err, err)
	}
	if se.Offset < 0 || se.Offset > int64(len(data)) || se.Line < 1 || se.Col < 1 || se.Msg == "" {
		return fmt.Sprintf("malformed error %+v", *se)
	}
	if strings.HasPrefix(se.Msg, "nesting deeper than") {
		if stdErr == nil && depth(want) <= MaxDepth {
			return fmt.Sprintf("Decode rejects depth %d <= MaxDepth: %v", depth(want), err)
		}
		return ""
	}
	if stdErr == nil {
		return fmt.Sprintf("Decode fails (%v), encoding/json = %#v", err, want)
	}
	var stdSE *json.SyntaxError
	if errors.As(stdErr, &stdSE) {
		if stdSE.Offset != se.Offset+1 {
			return fmt.Sprintf("Decode error at offset %d (%v), encoding/json at %d (%v)", se.Offset, err, stdSE.Offset-1, stdErr)
		}
		if data[se.Offset] < 0x80 && stdSE.Error() != se.Msg {
			return fmt.Sprintf("Decode says %q, encoding/json %q", se.Msg, stdSE.Error())
		}
	}
	return ""
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
