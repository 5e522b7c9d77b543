package adapters_test

import (
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
)

func redactMapping(t testing.TB) *adapters.Mapping {
	t.Helper()
	m, err := adapters.ParseMapping([]byte("redact: [email, Phone]\ntype: A\nid: 'urn:a:{{id}}'\nattributes:\n  n: {from: n, default: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRedact(t *testing.T) {
	m := redactMapping(t)
	tests := []struct {
		name   string
		header *adapters.Header
		values []any
		raw    string
		want   string
	}{
		{"json", adapters.NewFieldsHeader([]string{"id", "email", "contact"}),
			[]any{"1", "a@b.it", map[string]any{"phone": "333", "city": "Mantova"}},
			`{"id":"1","email":"a@b.it","contact":{"phone":"333","city":"Mantova"}}`,
			`{"contact":{"city":"Mantova"},"id":"1"}`},
		{"csv", adapters.NewHeader([]string{"id", "EMAIL", "n"}, "id;EMAIL;n"),
			[]any{"1", "a@b.it", "x;y"}, `1;a@b.it;"x;y"`, `1;;"x;y"`},
		{"malformed json", nil, nil, `{"email":"a@b.it"`, `# record 7 withheld: it could not be read, and the mapping redacts personal data`},
		{"malformed csv", adapters.NewHeader([]string{"id", "email"}, "id,email"), nil, `1,"a@b.it`, `# record 7 withheld: it could not be read, and the mapping redacts personal data`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := adapters.Record{Index: 7, Header: tt.header, Values: tt.values, Raw: tt.raw}
			m.Redact(&rec)
			if rec.Raw != tt.want {
				t.Errorf("raw %q, want %q", rec.Raw, tt.want)
			}
			for _, v := range rec.Values {
				if strings.Contains(strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(adaptersString(v), "\n", " ")), " ")), "a@b.it") {
					t.Errorf("value kept: %v", v)
				}
			}
		})
	}
}

func adaptersString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		var b strings.Builder
		for k, e := range x {
			b.WriteString(k + "=" + adaptersString(e) + " ")
		}
		return b.String()
	}
	return ""
}

// FuzzRedact: whatever a record holds, redaction never panics and no
// redacted key survives in a JSON record's raw text.
func FuzzRedact(f *testing.F) {
	f.Add(`{"id":"1","email":"a@b.it","x":[{"Phone":"1"}]}`, "id;email", "1;a@b.it")
	f.Add(`[1,2]`, "a,b", `"x`)
	m := redactMapping(f)
	f.Fuzz(func(t *testing.T, raw, header, row string) {
		rec := adapters.Record{Raw: raw}
		m.Redact(&rec)
		if strings.HasPrefix(strings.TrimSpace(raw), "{") && !strings.HasPrefix(rec.Raw, "# record") {
			low := strings.ToLower(rec.Raw)
			if strings.Contains(low, `"email":`) || strings.Contains(low, `"phone":`) {
				t.Fatalf("redacted key kept: %q -> %q", raw, rec.Raw)
			}
		}
		names := strings.Split(header, ";")
		vals := make([]any, len(names))
		for i, s := range strings.Split(row, ";") {
			if i < len(vals) {
				vals[i] = s
			}
		}
		rec2 := adapters.Record{Header: adapters.NewHeader(names, header), Values: vals, Raw: row}
		m.Redact(&rec2)
		for i, n := range names {
			if adapters.NormalizeName(n) == "email" && rec2.Values[i] != nil {
				t.Fatalf("email value kept")
			}
		}
	})
}
