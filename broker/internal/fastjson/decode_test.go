package fastjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"null", `null`, nil},
		{"true", `true`, true},
		{"false", `false`, false},
		{"zero", `0`, json.Number("0")},
		{"negative zero", `-0`, json.Number("-0")},
		{"integer", `12345`, json.Number("12345")},
		{"fraction", `-12.50`, json.Number("-12.50")},
		{"exponent", `1e10`, json.Number("1e10")},
		{"exponent signs", `1.5E-3`, json.Number("1.5E-3")},
		{"exponent plus", `0e+0`, json.Number("0e+0")},
		{"huge number kept as text", `123456789012345678901234567890e999`, json.Number("123456789012345678901234567890e999")},
		{"empty string", `""`, ""},
		{"string", `"Property"`, "Property"},
		{"long string", `"` + strings.Repeat("x", 100) + `"`, strings.Repeat("x", 100)},
		{"simple escapes", `"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{"unicode escape", `"Plaza de Espa\u00f1a"`, "Plaza de España"},
		{"upper-case hex", `"\u00E9\u00e9"`, "éé"},
		{"raw UTF-8", `"Espa\u00f1a — Москва 😀"`, "España — Москва 😀"},
		{"surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"lone high surrogate", `"\ud83dx"`, "\uFFFDx"},
		{"lone high surrogate at end", `"\ud83d"`, "\uFFFD"},
		{"lone low surrogate", `"\ude00"`, "\uFFFD"},
		{"reversed pair", `"\ude00\ud83d"`, "\uFFFD\uFFFD"},
		{"high then non-surrogate escape", `"\ud83d\u0041"`, "\uFFFDA"},
		{"two highs then low", `"\ud83d\ud83d\ude00"`, "\uFFFD😀"},
		{"escaped NUL", `"\u0000"`, "\x00"},
		{"invalid UTF-8 byte", "\"a\xffb\"", "a\uFFFDb"},
		{"truncated UTF-8 sequence", "\"\xe2\x82\"", "\uFFFD\uFFFD"},
		{"encoded surrogate", "\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
		{"overlong encoding", "\"\xc0\xaf\"", "\uFFFD\uFFFD"},
		{"invalid UTF-8 after escape", "\"\\n\xff\"", "\n\uFFFD"},
		{"DEL is allowed", "\"\x7f\"", "\x7f"},
		{"encoded U+FFFD kept", "\"\xef\xbf\xbd\"", "\uFFFD"},
		{"empty array", `[]`, []any{}},
		{"empty object", `{}`, map[string]any{}},
		{"array", `[1,"a",true,false,null,[],{}]`, []any{json.Number("1"), "a", true, false, nil, []any{}, map[string]any{}}},
		{"object", `{"a":1,"b":[2],"c":{"d":null}}`, map[string]any{"a": json.Number("1"), "b": []any{json.Number("2")}, "c": map[string]any{"d": nil}}},
		{"duplicate keys, last wins", `{"a":1,"b":2,"a":3}`, map[string]any{"a": json.Number("3"), "b": json.Number("2")}},
		{"escaped key", `{"\u0061\n":1}`, map[string]any{"a\n": json.Number("1")}},
		{"invalid UTF-8 key", "{\"\xff\":1}", map[string]any{"\uFFFD": json.Number("1")}},
		{"same text as string and number", `["12",12,"12",12]`, []any{"12", json.Number("12"), "12", json.Number("12")}},
		{"whitespace everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n\t", map[string]any{"a": []any{json.Number("1"), json.Number("2")}, "b": map[string]any{}}},
		{"nesting at MaxDepth", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), nested(MaxDepth)},
		{"many members", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`, map[string]any{
			"a": json.Number("1"), "b": json.Number("2"), "c": json.Number("3"), "d": json.Number("4"), "e": json.Number("5"),
			"f": json.Number("6"), "g": json.Number("7"), "h": json.Number("8"), "i": json.Number("9"), "j": json.Number("10")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			// The expectation itself must be encoding/json's.
			std, err := stdDecode([]byte(tt.in))
			if err != nil {
				t.Fatalf("encoding/json rejects %q: %v", tt.in, err)
			}
			if !reflect.DeepEqual(std, tt.want) {
				t.Errorf("encoding/json decodes %q to %#v, the table says %#v", tt.in, std, tt.want)
			}
		})
	}
}

// nested returns n nested empty arrays.
func nested(n int) any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		offset    int64
		line, col int
		msg       string
	}{
		{"empty", ``, 0, 1, 1, "empty input: a JSON document is required"},
		{"only whitespace", " \n ", 3, 2, 2, "unexpected end of JSON input"},
		{"bad start", `x`, 0, 1, 1, "invalid character 'x' looking for beginning of value"},
		{"byte order mark", "\xef\xbb\xbf{}", 0, 1, 1, "invalid character '\\ufeff' looking for beginning of value"},
		{"invalid UTF-8 start", "\xff", 0, 1, 1, `invalid character '\xff' looking for beginning of value`},
		{"non-ASCII start", "é", 0, 1, 1, "invalid character 'é' looking for beginning of value"},
		{"single quote", `'a'`, 0, 1, 1, `invalid character '\'' looking for beginning of value`},
		{"data after", `{} {}`, 3, 1, 4, "data after the JSON document"},
		{"data after number", `12x`, 2, 1, 3, "data after the JSON document"},
		{"leading zero", `01`, 1, 1, 2, "data after the JSON document"},
		{"data after on next line", "true\n  ,", 7, 2, 3, "data after the JSON document"},
		{"truncated literal", `tru`, 3, 1, 4, "unexpected end of JSON input"},
		{"bad literal", `nul1`, 3, 1, 4, "invalid character '1' in literal null (expecting 'l')"},
		{"capital literal", `True`, 0, 1, 1, "invalid character 'T' looking for beginning of value"},
		{"bad false", `[fals]`, 5, 1, 6, "invalid character ']' in literal false (expecting 'e')"},
		{"minus alone", `-`, 1, 1, 2, "unexpected end of JSON input"},
		{"minus letter", `-a`, 1, 1, 2, "invalid character 'a' in numeric literal"},
		{"plus sign", `+1`, 0, 1, 1, "invalid character '+' looking for beginning of value"},
		{"leading dot", `.5`, 0, 1, 1, "invalid character '.' looking for beginning of value"},
		{"trailing dot", `1.`, 2, 1, 3, "unexpected end of JSON input"},
		{"dot letter", `[1.x]`, 3, 1, 4, "invalid character 'x' after decimal point in numeric literal"},
		{"empty exponent", `1e`, 2, 1, 3, "unexpected end of JSON input"},
		{"signed empty exponent", `1e+`, 3, 1, 4, "unexpected end of JSON input"},
		{"bad exponent", `[1e+x]`, 4, 1, 5, "invalid character 'x' in exponent of numeric literal"},
		{"leading zero in array", `[01]`, 2, 1, 3, "invalid character '1' after array element"},
		{"hex number", `[0x1]`, 2, 1, 3, "invalid character 'x' after array element"},
		{"NaN", `NaN`, 0, 1, 1, "invalid character 'N' looking for beginning of value"},
		{"unterminated string", `"abc`, 4, 1, 5, "unexpected end of JSON input"},
		{"unterminated after escape", `"a\`, 3, 1, 4, "unexpected end of JSON input"},
		{"unterminated after non-ASCII", `"é`, 3, 1, 4, "unexpected end of JSON input"},
		{"control character", "\"a\tb\"", 2, 1, 3, `invalid character '\t' in string literal`},
		{"newline in string", "\"a\nb\"", 2, 1, 3, `invalid character '\n' in string literal`},
		{"control after escape", "\"\\n\x01\"", 3, 1, 4, `invalid character '\x01' in string literal`},
		{"bad escape", `"\x"`, 2, 1, 3, "invalid character 'x' in string escape code"},
		{"escaped single quote", `"\'"`, 2, 1, 3, `invalid character '\'' in string escape code`},
		{"short unicode escape", `"\u12"`, 5, 1, 6, `invalid character '"' in \u hexadecimal character escape`},
		{"bad hex", `"\u00g0"`, 5, 1, 6, `invalid character 'g' in \u hexadecimal character escape`},
		{"truncated unicode escape", `"\u00`, 5, 1, 6, "unexpected end of JSON input"},
		{"bad escape after high surrogate", `"\ud83d\u12x4"`, 11, 1, 12, `invalid character 'x' in \u hexadecimal character escape`},
		{"unterminated array", `[1,2`, 4, 1, 5, "unexpected end of JSON input"},
		{"open array", `[`, 1, 1, 2, "unexpected end of JSON input"},
		{"trailing comma in array", `[1,]`, 3, 1, 4, "invalid character ']' looking for beginning of value"},
		{"leading comma in array", `[,1]`, 1, 1, 2, "invalid character ',' looking for beginning of value"},
		{"missing comma", `[1 2]`, 3, 1, 4, "invalid character '2' after array element"},
		{"colon in array", `[1:2]`, 2, 1, 3, "invalid character ':' after array element"},
		{"mismatched close", `[1}`, 2, 1, 3, "invalid character '}' after array element"},
		{"unterminated object", `{"a":1`, 6, 1, 7, "unexpected end of JSON input"},
		{"open object", `{`, 1, 1, 2, "unexpected end of JSON input"},
		{"key without value", `{"a"}`, 4, 1, 5, "invalid character '}' after object key"},
		{"key then EOF", `{"a"`, 4, 1, 5, "unexpected end of JSON input"},
		{"colon then EOF", `{"a":`, 5, 1, 6, "unexpected end of JSON input"},
		{"missing value", `{"a":}`, 5, 1, 6, "invalid character '}' looking for beginning of value"},
		{"missing colon", `{"a" 1}`, 5, 1, 6, "invalid character '1' after object key"},
		{"unquoted key", `{a:1}`, 1, 1, 2, "invalid character 'a' looking for beginning of object key string"},
		{"number key", `{1:1}`, 1, 1, 2, "invalid character '1' looking for beginning of object key string"},
		{"trailing comma in object", `{"a":1,}`, 7, 1, 8, "invalid character '}' looking for beginning of object key string"},
		{"comma then EOF", `{"a":1,`, 7, 1, 8, "unexpected end of JSON input"},
		{"missing comma in object", `{"a":1 "b":2}`, 7, 1, 8, "invalid character '\"' after object key:value pair"},
		{"mismatched close in object", `{"a":1]`, 6, 1, 7, "invalid character ']' after object key:value pair"},
		{"bad key escape", `{"\q":1}`, 3, 1, 4, "invalid character 'q' in string escape code"},
		{"error on a later line", "{\n  \"a\": 1,\n  \"b\": x\n}", 19, 3, 8, "invalid character 'x' looking for beginning of value"},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), MaxDepth, 1, MaxDepth + 1, "nesting deeper than 1000 levels"},
		{"too deep objects", strings.Repeat(`{"a":`, MaxDepth+1), 5 * MaxDepth, 1, 5*MaxDepth + 1, "nesting deeper than 1000 levels"},
		{"very deep", strings.Repeat("[", 1<<20), MaxDepth, 1, MaxDepth + 1, "nesting deeper than 1000 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%q) = %#v, want an error", tt.in, v)
			}
			if v != nil {
				t.Errorf("Decode(%q) returned %#v with its error", tt.in, v)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("errors.Is(%v, ErrSyntax) = false", err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SyntaxError", err, err)
			}
			want := SyntaxError{Offset: tt.offset, Line: tt.line, Col: tt.col, Msg: tt.msg}
			if *se != want {
				t.Errorf("Decode(%.40q) error = %+v, want %+v", tt.in, *se, want)
			}
			// encoding/json must reject it too, unless only our depth limit applies.
			if _, stdErr := stdDecode([]byte(tt.in)); stdErr == nil && !strings.HasPrefix(tt.msg, "nesting") {
				t.Errorf("encoding/json accepts %q", tt.in)
			}
		})
	}
}

func TestSyntaxErrorText(t *testing.T) {
	_, err := Decode([]byte("{\n  \"a\": tru\n}"))
	const want = "invalid JSON at line 2, column 11: invalid character '\\n' in literal true (expecting 'e')"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

// TestDecodeDoesNotAlias checks that results never share memory with the
// input or with a later call's scratch space.
func TestDecodeDoesNotAlias(t *testing.T) {
	in := []byte(`{"key":"value","esc\u0061ped":"a\nb","long":"` + strings.Repeat("z", 64) + `","n":123}`)
	v, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := stdDecode(in)
	for i := range in {
		in[i] = 'X'
	}
	if _, err := Decode([]byte(`{"other":"a\tb","escXped":"c\nd","n":"999"}`)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("result changed after the input was overwritten: %#v, want %#v", v, want)
	}
}

// TestDecodeConcurrent runs Decode from several goroutines (for -race and
// for the pooled scratch state).
func TestDecodeConcurrent(t *testing.T) {
	docs := [][]byte{
		[]byte(`{"type":"Property","value":22,"unitCode":"GQ"}`),
		[]byte(`[1,"Property",{"a":["b",{"c":null}]},"\u00e9"]`),
		[]byte(`{"id":"urn:ngsi-ld:X:1","type":"X","name":{"type":"Property","value":"Plaza de Espa\u00f1a"}}`),
	}
	wants := make([]any, len(docs))
	for i, d := range docs {
		wants[i], _ = stdDecode(d)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 500 {
				k := (g + i) % len(docs)
				v, err := Decode(docs[k])
				if err == nil && !reflect.DeepEqual(v, wants[k]) {
					err = errors.New("wrong value")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestResetDropsReferences checks that a pooled decoder keeps no decoded
// value alive, after a success or an error in the middle of a document.
func TestResetDropsReferences(t *testing.T) {
	for _, tt := range []struct {
		in      string
		wantErr bool
	}{
		{`{"a":[1,{"b":"c","d":[true,null,"e"]},[["f"]]],"g":{"h":"i"}}`, false},
		{`{"a":[1,{"b":"c","d":[true,null,"e"]},[["f"]]],"g":{"h":"i"x}}`, true},
		{`[[[[{"a":"b","c":[1,2,3`, true},
	} {
		in := tt.in
		d := new(decoder)
		d.data = []byte(in)
		if _, err := d.document(); (err != nil) != tt.wantErr {
			t.Fatalf("%s: error %v, want error %v", in, err, tt.wantErr)
		}
		d.reset()
		for i, v := range d.vals[:cap(d.vals)] {
			if v != nil {
				t.Errorf("%s: vals[%d] = %#v after reset", in, i, v)
			}
		}
		for i, k := range d.keys[:cap(d.keys)] {
			if k != "" {
				t.Errorf("%s: keys[%d] = %q after reset", in, i, k)
			}
		}
		if d.data != nil {
			t.Errorf("%s: decoder keeps the input", in)
		}
	}
}
