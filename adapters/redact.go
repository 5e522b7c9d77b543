package adapters

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
)

// A mapping's `redact` list names fields that must never leave the adapter:
// personal data such as names, e-mail addresses and phone numbers. Run
// removes them from every record before anything else happens to it: before
// skip rules and mapping (so no template can reach them), and from the raw
// text that reject files keep. A raw record that cannot be read again
// (a malformed line) is not written to the reject file at all when a
// mapping redacts: only a note with its position is.

// Redacts reports whether the mapping removes fields from records.
func (m *Mapping) Redacts() bool { return len(m.redact) > 0 }

// Redact removes the mapping's redacted fields from rec: their values
// become nil and the raw text is rewritten without them. It does nothing
// when the mapping redacts nothing.
func (m *Mapping) Redact(rec *Record) {
	if len(m.redact) == 0 {
		return
	}
	hit := false
	if rec.Header != nil && len(rec.Values) > 0 {
		vals := rec.Values
		for i := 0; i < rec.Header.Len() && i < len(vals); i++ {
			if m.redact[NormalizeName(rec.Header.Name(i))] {
				if !hit {
					vals = append([]any(nil), vals...) // the source may share the slice
					hit = true
				}
				vals[i] = nil
				continue
			}
			switch x := vals[i].(type) { // nested objects of JSON records
			case map[string]any:
				m.redactObject(x)
			case []any:
				m.redactObject(map[string]any{"": x})
			}
		}
		rec.Values = vals
	}
	rec.Raw = m.redactRaw(rec)
}

// withheld replaces raw text that could not be redacted.
func withheld(rec *Record) string {
	return "# record " + strconv.Itoa(rec.Index) + " withheld: it could not be read, and the mapping redacts personal data"
}

func (m *Mapping) redactRaw(rec *Record) string {
	raw := strings.TrimSpace(rec.Raw)
	if raw == "" {
		return rec.Raw
	}
	if raw[0] == '{' {
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return withheld(rec)
		}
		m.redactObject(obj)
		b, err := json.Marshal(obj)
		if err != nil {
			return withheld(rec)
		}
		return string(b)
	}
	if rec.Header == nil || !rec.Header.Tabular() || len(rec.Values) != rec.Header.Len() {
		return withheld(rec)
	}
	// A CSV row: written again from its values, with the header line's
	// separator.
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Comma = guessSeparator(rec.Header.Raw())
	fields := make([]string, len(rec.Values))
	for i, v := range rec.Values {
		fields[i] = valueString(v)
	}
	if err := w.Write(fields); err != nil {
		return withheld(rec)
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\r\n")
}

// redactObject removes redacted keys at any depth of a JSON object.
func (m *Mapping) redactObject(obj map[string]any) {
	for k, v := range obj {
		if m.redact[NormalizeName(k)] {
			delete(obj, k)
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			m.redactObject(x)
		case []any:
			for _, e := range x {
				if o, ok := e.(map[string]any); ok {
					m.redactObject(o)
				}
			}
		}
	}
}

func guessSeparator(header string) rune {
	best, n := ',', 0
	for _, c := range []rune{',', ';', '\t', '|'} {
		if k := strings.Count(header, string(c)); k > n {
			best, n = c, k
		}
	}
	return best
}
