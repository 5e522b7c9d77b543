package schemas

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xeipuuv/gojsonschema"
)

// Violation is one way in which a document does not match its model.
type Violation struct {
	// Pointer is the JSON pointer (RFC 6901) into the keyValues document of
	// the value at fault: "/tsp", "/address/addressCountry", "/category/0",
	// or "" for the document itself. For a missing required property and a
	// property that is not allowed, it names that property.
	Pointer string `json:"pointer"`
	// Message says what is wrong, in one sentence that quotes the value.
	Message string `json:"message"`
	// Keyword is the JSON Schema keyword that failed: "type", "format",
	// "required", "enum", "anyOf"...
	Keyword string `json:"keyword"`
}

// String renders the violation as "pointer: message (keyword)", with "/"
// for the document itself.
func (v Violation) String() string {
	p := v.Pointer
	if p == "" {
		p = "/"
	}
	return p + ": " + v.Message + " (" + v.Keyword + ")"
}

// errKeywords maps gojsonschema's error types to JSON Schema keywords.
var errKeywords = map[string]string{
	"false":                           "false",
	"required":                        "required",
	"invalid_type":                    "type",
	"number_any_of":                   "anyOf",
	"number_one_of":                   "oneOf",
	"number_all_of":                   "allOf",
	"number_not":                      "not",
	"missing_dependency":              "dependencies",
	"internal":                        "internal",
	"const":                           "const",
	"enum":                            "enum",
	"array_no_additional_items":       "additionalItems",
	"array_min_items":                 "minItems",
	"array_max_items":                 "maxItems",
	"unique":                          "uniqueItems",
	"contains":                        "contains",
	"array_min_properties":            "minProperties",
	"array_max_properties":            "maxProperties",
	"additional_property_not_allowed": "additionalProperties",
	"invalid_property_pattern":        "patternProperties",
	"invalid_property_name":           "propertyNames",
	"string_gte":                      "minLength",
	"string_lte":                      "maxLength",
	"pattern":                         "pattern",
	"format":                          "format",
	"multiple_of":                     "multipleOf",
	"number_gte":                      "minimum",
	"number_gt":                       "exclusiveMinimum",
	"number_lte":                      "maximum",
	"number_lt":                       "exclusiveMaximum",
	"condition_then":                  "then",
	"condition_else":                  "else",
}

// violations turns gojsonschema's errors into Piazza's violations: one per
// problem, deduplicated, sorted by pointer, keyword and message. The allOf
// summary is dropped: gojsonschema always reports the failures inside it too.
func violations(errs []gojsonschema.ResultError) ([]Violation, error) {
	out := make([]Violation, 0, len(errs))
	for _, e := range errs {
		kw, ok := errKeywords[e.Type()]
		if !ok {
			kw = e.Type()
		}
		switch kw {
		case "allOf":
			continue
		case "internal":
			return nil, fmt.Errorf("%w: %s", ErrInternal, e.Description())
		}
		out = append(out, violation(kw, e))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Pointer != b.Pointer {
			return a.Pointer < b.Pointer
		}
		if a.Keyword != b.Keyword {
			return a.Keyword < b.Keyword
		}
		return a.Message < b.Message
	})
	w := 0
	for i, v := range out {
		if i > 0 && v == out[w-1] {
			continue
		}
		out[w] = v
		w++
	}
	return out[:w], nil
}

// violation builds the pointer and the message of one error.
func violation(kw string, e gojsonschema.ResultError) Violation {
	ptr := contextPointer(e.Context())
	d := e.Details()
	val := e.Value()
	v := Violation{Pointer: ptr, Keyword: kw}
	switch kw {
	case "required":
		v.Pointer = ptr + "/" + escapePointer(fmt.Sprint(d["property"]))
		v.Message = "required property is missing"
	case "additionalProperties":
		v.Pointer = ptr + "/" + escapePointer(fmt.Sprint(d["property"]))
		v.Message = "property is not allowed here"
	case "propertyNames":
		v.Pointer = ptr + "/" + escapePointer(fmt.Sprint(d["property"]))
		v.Message = "property name is not allowed by the propertyNames schema"
	case "type":
		v.Message = fmt.Sprintf("must be of type %s; got %s", d["expected"], describe(val))
	case "format":
		v.Message = formatMessage(fmt.Sprint(d["format"]), val)
	case "enum":
		v.Message = fmt.Sprintf("must be one of %s; got %s", d["allowed"], describe(val))
	case "const":
		v.Message = fmt.Sprintf("must be %s; got %s", d["allowed"], describe(val))
	case "pattern":
		v.Message = fmt.Sprintf("must match the pattern %s; got %s", d["pattern"], describe(val))
	case "minLength":
		v.Message = fmt.Sprintf("must be at least %v characters long; got %s", d["min"], describeLen(val))
	case "maxLength":
		v.Message = fmt.Sprintf("must be at most %v characters long; got %s", d["max"], describeLen(val))
	case "minimum":
		v.Message = fmt.Sprintf("must be greater than or equal to %s; got %s", number(d["min"]), describe(val))
	case "exclusiveMinimum":
		v.Message = fmt.Sprintf("must be greater than %s; got %s", number(d["min"]), describe(val))
	case "maximum":
		v.Message = fmt.Sprintf("must be less than or equal to %s; got %s", number(d["max"]), describe(val))
	case "exclusiveMaximum":
		v.Message = fmt.Sprintf("must be less than %s; got %s", number(d["max"]), describe(val))
	case "multipleOf":
		v.Message = fmt.Sprintf("must be a multiple of %s; got %s", number(d["multiple"]), describe(val))
	case "minItems":
		v.Message = fmt.Sprintf("must have at least %v items; got %s", d["min"], describeLen(val))
	case "maxItems":
		v.Message = fmt.Sprintf("must have at most %v items; got %s", d["max"], describeLen(val))
	case "uniqueItems":
		v.Message = fmt.Sprintf("items must be unique; items %v and %v are equal", d["i"], d["j"])
	case "contains":
		v.Message = "must contain at least one item that matches the contains schema"
	case "minProperties":
		v.Message = fmt.Sprintf("must have at least %v properties", d["min"])
	case "maxProperties":
		v.Message = fmt.Sprintf("must have at most %v properties", d["max"])
	case "anyOf":
		v.Message = fmt.Sprintf("must match at least one of the allowed forms (anyOf); got %s", describe(val))
	case "oneOf":
		v.Message = fmt.Sprintf("must match exactly one of the allowed forms (oneOf); got %s", describe(val))
	case "not":
		v.Message = "must not match the schema given in not"
	case "dependencies":
		v.Message = fmt.Sprintf("property %q is required by another property that is present", d["dependency"])
	case "then":
		v.Message = "must match the then schema, because it matches the if schema"
	case "else":
		v.Message = "must match the else schema, because it does not match the if schema"
	case "false":
		v.Message = "no value is allowed here"
	case "additionalItems":
		v.Message = "has more items than the schema allows"
	default:
		v.Message = e.Description()
	}
	return v
}

// formatMessage explains a failed "format", precisely for date-time (the
// mistake cities make most: a local time without its UTC offset).
func formatMessage(format string, val any) string {
	s, isString := val.(string)
	switch format {
	case "date-time":
		if isString && isLocalDateTime(s) {
			return fmt.Sprintf("must be a date-time with a UTC offset (RFC 3339, e.g. 2016-03-15T11:00:00Z); got %s, which has no offset", describe(val))
		}
		return fmt.Sprintf("must be a date-time (RFC 3339, e.g. 2016-03-15T11:00:00Z); got %s", describe(val))
	case "date":
		return fmt.Sprintf("must be a date (YYYY-MM-DD); got %s", describe(val))
	case "time":
		return fmt.Sprintf("must be a time (hh:mm:ss, optionally with a UTC offset); got %s", describe(val))
	case "uri", "iri":
		return fmt.Sprintf("must be an absolute URI with a scheme; got %s", describe(val))
	case "email", "idn-email":
		return fmt.Sprintf("must be an email address; got %s", describe(val))
	}
	return fmt.Sprintf("must be a valid %s; got %s", format, describe(val))
}

// isLocalDateTime reports whether s is a date and time of day without a UTC
// offset, such as 2016-03-15T11:00:00 or 2016-03-15T11:00:00.250.
func isLocalDateTime(s string) bool {
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// maxQuoted bounds how much of a value a message repeats.
const maxQuoted = 80

// describe names a value's JSON type and quotes it: number 73.3,
// string "abc", an object, an array of 3 items.
func describe(val any) string {
	switch x := val.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + truncate(string(x))
	case string:
		return "string " + strconv.Quote(truncate(x))
	case map[string]any:
		return fmt.Sprintf("an object with %d properties", len(x))
	case []any:
		return fmt.Sprintf("an array of %d items", len(x))
	}
	return fmt.Sprintf("%T", val)
}

// describeLen gives the length that minLength, maxLength, minItems and
// maxItems count: characters of a string, items of an array.
func describeLen(val any) string {
	switch x := val.(type) {
	case string:
		return fmt.Sprintf("%d characters", utf8.RuneCountInString(x))
	case []any:
		return fmt.Sprintf("%d items", len(x))
	}
	return describe(val)
}

func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// number prints a schema bound (gojsonschema gives a *big.Float) without
// exponent noise: 0, 1, 0.5.
func number(v any) string {
	if f, ok := v.(interface{ Text(byte, int) string }); ok {
		return f.Text('g', -1)
	}
	return fmt.Sprint(v)
}

// contextPointer turns gojsonschema's context (a linked list of property
// names and array indexes, root last) into a JSON pointer. The list is read
// through reflection because gojsonschema only offers it joined with a
// delimiter, which is ambiguous for names that contain the delimiter; a test
// pins the layout.
func contextPointer(c *gojsonschema.JsonContext) string {
	if c == nil {
		return ""
	}
	var tokens []string
	v := reflect.ValueOf(c).Elem()
	for {
		head, tail := v.FieldByName("head"), v.FieldByName("tail")
		if !head.IsValid() || !tail.IsValid() || head.Kind() != reflect.String || tail.Kind() != reflect.Pointer {
			return fallbackPointer(c)
		}
		if tail.IsNil() {
			break // the root
		}
		tokens = append(tokens, head.String())
		v = tail.Elem()
	}
	var b strings.Builder
	for i := len(tokens) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(escapePointer(tokens[i]))
	}
	return b.String()
}

// fallbackPointer is used only if gojsonschema's context changes shape: it
// splits the dotted form, which is wrong for names that contain dots.
func fallbackPointer(c *gojsonschema.JsonContext) string {
	parts := strings.Split(c.String("."), ".")
	var b strings.Builder
	for _, p := range parts[1:] {
		b.WriteByte('/')
		b.WriteString(escapePointer(p))
	}
	return b.String()
}
