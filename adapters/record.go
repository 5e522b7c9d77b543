package adapters

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Header is the ordered list of field names shared by the records of one
// input. Names are matched tolerantly: case, spaces, underscores, hyphens and
// dots are ignored, so "DATA ELABORAZIONE" finds "data_elaborazione".
// A Header is immutable once built and safe for concurrent use.
type Header struct {
	names   []string
	index   map[string]int
	raw     string
	tabular bool
}

// NewHeader returns the header of a tabular input (CSV): every record of the
// input has these fields, so a mapped column that is missing is an error of
// the whole input. raw is the header line as it came, written first to reject
// files; it may be empty.
func NewHeader(names []string, raw string) *Header {
	h := newHeader(names)
	h.raw = raw
	h.tabular = true
	return h
}

// NewFieldsHeader returns the header of one record of a schemaless input
// (JSON): other records may have other fields, so a missing field is an error
// of that record only.
func NewFieldsHeader(names []string) *Header { return newHeader(names) }

func newHeader(names []string) *Header {
	h := &Header{names: names, index: make(map[string]int, len(names))}
	for i, n := range names {
		k := NormalizeName(n)
		if _, dup := h.index[k]; !dup {
			h.index[k] = i
		}
	}
	return h
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.names) }

// Name returns the name of field i as written in the input.
func (h *Header) Name(i int) string { return h.names[i] }

// Names returns a copy of the field names as written in the input.
func (h *Header) Names() []string { return append([]string(nil), h.names...) }

// Raw returns the header line as it came (tabular inputs), or "".
func (h *Header) Raw() string { return h.raw }

// Tabular reports whether every record of the input shares this header.
func (h *Header) Tabular() bool { return h.tabular }

// Index returns the position of the field whose name matches name tolerantly,
// or -1.
func (h *Header) Index(name string) int { return h.indexNorm(NormalizeName(name)) }

func (h *Header) indexNorm(norm string) int {
	if i, ok := h.index[norm]; ok {
		return i
	}
	return -1
}

// SameNames reports whether the header has exactly these names in this order.
// Sources use it to share one Header between records with the same fields.
func (h *Header) SameNames(names []string) bool {
	if h == nil || len(h.names) != len(names) {
		return false
	}
	for i := range names {
		if h.names[i] != names[i] {
			return false
		}
	}
	return true
}

// NormalizeName folds a field name for tolerant matching: it drops a byte
// order mark, spaces, underscores, hyphens and dots, and lowercases the rest.
func NormalizeName(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == ' ' || c == '_' || c == '-' || c == '.' || c == '\t' || ('A' <= c && c <= 'Z') {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\uFEFF' || r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// Record is one row or object read by a source: values in the order of its
// Header, with the record's position in the input. A Record is owned by the
// goroutine that handles it; sources hand over a fresh Record each time.
type Record struct {
	// Input names where the record came from (a file path or URL).
	Input string
	// Line is the 1-based line where the record starts, or 0 when the input
	// has no meaningful lines (a JSON array).
	Line int
	// Index is the 1-based ordinal of the record in its input.
	Index int
	// Offset is the byte offset just after the record, for progress reports.
	Offset int64
	// Header names the values; Values[i] belongs to Header.Name(i).
	Header *Header
	// Values are strings for text formats and JSON values (string,
	// json.Number, bool, nil, []any, map[string]any) for JSON formats.
	Values []any
	// Raw is the record as it came (a CSV row verbatim, a JSON object on one
	// line) without its final line break; reject files keep it.
	Raw string
}

// Get returns the value of the field whose name matches name tolerantly.
func (r *Record) Get(name string) (any, bool) {
	if r.Header == nil {
		return nil, false
	}
	i := r.Header.Index(name)
	if i < 0 || i >= len(r.Values) {
		return nil, false
	}
	return r.Values[i], true
}

// Position returns "input:line" or "input: record N" for messages.
func (r *Record) Position() string {
	if r.Line > 0 {
		return r.Input + ":" + strconv.Itoa(r.Line)
	}
	return r.Input + ": record " + strconv.Itoa(r.Index)
}

// RecordError is the error of one record: where it is and why it failed.
// Column is the 1-based column of the failing value in tabular inputs (0 when
// unknown or not tabular); Field names it.
type RecordError struct {
	Input  string
	Line   int
	Index  int
	Column int
	Field  string
	Err    error
}

// Error implements error: "pop.csv:12: column 6 (RESIDENTI): adapters: invalid number: ...".
func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString(e.Input)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	} else if e.Index > 0 {
		fmt.Fprintf(&b, ": record %d", e.Index)
	}
	switch {
	case e.Column > 0 && e.Field != "":
		fmt.Fprintf(&b, ": column %d (%s)", e.Column, e.Field)
	case e.Column > 0:
		fmt.Fprintf(&b, ": column %d", e.Column)
	case e.Field != "":
		fmt.Fprintf(&b, ": field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

func recordError(rec *Record, col int, err error) *RecordError {
	re := &RecordError{Input: rec.Input, Line: rec.Line, Index: rec.Index, Err: err}
	if col >= 0 && rec.Header != nil && col < rec.Header.Len() {
		re.Field = rec.Header.Name(col)
		if rec.Header.tabular {
			re.Column = col + 1
		}
	}
	return re
}

// valueString renders a field value as text.
func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// isEmpty reports whether a value counts as missing: nil or blank text.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	}
	return false
}
