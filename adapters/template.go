package adapters

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Templates are strings with placeholders: "urn:ngsi-ld:X:{{COD_ISTAT_COMUNE}}:{{DATA | date}}".
// A placeholder names a field (matched tolerantly, like every column name)
// or one of the special names $column and $value (the column being
// unpivoted and its value), $line, $index and $input; it may be followed by
// filters separated by '|', some with an argument after ':'. In an entity id,
// substituted values are percent-encoded (unless the raw filter is used) so
// that the id stays a valid URI whatever the data holds.

const (
	specNone = iota
	specColumn
	specValue
	specLine
	specIndex
	specInput
)

var specials = map[string]int{"$column": specColumn, "$value": specValue, "$line": specLine, "$index": specIndex, "$input": specInput}

// fieldRef is a compiled reference to a record field.
type fieldRef struct {
	name     string
	norm     string
	special  int
	headNorm string   // normalized first dotted segment, for nested JSON fields
	path     []string // the remaining segments
}

func newFieldRef(name string) *fieldRef {
	name = strings.TrimSpace(name)
	r := &fieldRef{name: name, norm: NormalizeName(name), special: specials[strings.ToLower(name)]}
	if r.special == specNone && strings.Contains(name, ".") {
		parts := strings.Split(name, ".")
		r.headNorm = NormalizeName(parts[0])
		r.path = parts[1:]
	}
	return r
}

// lookupIn returns the value of the field in rec and its column index (-1
// for nested values); found is false when the record has no such field.
func (r *fieldRef) lookupIn(rec *Record) (v any, col int, found bool) {
	h := rec.Header
	if h == nil {
		return nil, -1, false
	}
	if i := h.indexNorm(r.norm); i >= 0 && i < len(rec.Values) {
		return rec.Values[i], i, true
	}
	if r.path == nil {
		return nil, -1, false
	}
	i := h.indexNorm(r.headNorm)
	if i < 0 || i >= len(rec.Values) {
		return nil, -1, false
	}
	cur := rec.Values[i]
	for _, k := range r.path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, i, false
		}
		if cur, ok = m[k]; !ok {
			return nil, i, false
		}
	}
	return cur, i, true
}

// inHeader reports whether h has the field.
func (r *fieldRef) inHeader(h *Header) bool {
	return r.special != specNone || h.indexNorm(r.norm) >= 0 || (r.path != nil && h.indexNorm(r.headNorm) >= 0)
}

const (
	filterDate = iota + 1
	filterMonth
	filterYear
	filterDateTime
	filterLower
	filterUpper
	filterSlug
	filterTrim
	filterPad
	filterLookup
	filterRaw
)

var filterNames = map[string]int{"date": filterDate, "month": filterMonth, "year": filterYear, "datetime": filterDateTime,
	"lower": filterLower, "upper": filterUpper, "slug": filterSlug, "trim": filterTrim, "pad": filterPad,
	"lookup": filterLookup, "raw": filterRaw}

const filterList = "date, month, year, datetime, lower, upper, slug, trim, pad:N, lookup:TABLE, raw"

type filter struct {
	kind  int
	n     int
	table *lookupTable
}

type tmplPart struct {
	lit     string
	ref     *fieldRef
	filters []filter
	raw     bool
}

// template is a compiled template; it is immutable.
type template struct {
	src    string
	parts  []tmplPart
	escape bool
	refs   int
}

// compileTemplate parses src. escape percent-encodes substituted values (ids).
func compileTemplate(src string, escape bool, lookups func(string) *lookupTable) (*template, error) {
	t := &template{src: src, escape: escape}
	rest := src
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if strings.Contains(rest, "}}") {
				return nil, fmt.Errorf("template %q: '}}' without '{{'", src)
			}
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if i > 0 {
			if strings.Contains(rest[:i], "}}") {
				return nil, fmt.Errorf("template %q: '}}' without '{{'", src)
			}
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return nil, fmt.Errorf("template %q: '{{' without '}}'", src)
		}
		body := rest[:j]
		rest = rest[j+2:]
		if strings.Contains(body, "{{") {
			return nil, fmt.Errorf("template %q: nested '{{'", src)
		}
		segs := strings.Split(body, "|")
		name := strings.TrimSpace(segs[0])
		if name == "" {
			return nil, fmt.Errorf("template %q: empty placeholder", src)
		}
		p := tmplPart{ref: newFieldRef(name)}
		for _, fs := range segs[1:] {
			fname, arg, hasArg := strings.Cut(strings.TrimSpace(fs), ":")
			fname = strings.TrimSpace(fname)
			arg = strings.TrimSpace(arg)
			k, ok := filterNames[fname]
			if !ok {
				return nil, fmt.Errorf("template %q: unknown filter %q (known: %s)", src, fname, filterList)
			}
			f := filter{kind: k}
			switch k {
			case filterPad:
				n, err := strconv.Atoi(arg)
				if !hasArg || err != nil || n < 1 || n > 64 {
					return nil, fmt.Errorf("template %q: filter pad needs a width, as in pad:6", src)
				}
				f.n = n
			case filterLookup:
				f.table = lookups(arg)
				if f.table == nil {
					return nil, fmt.Errorf("template %q: filter lookup:%s names no table under lookups", src, arg)
				}
			case filterRaw:
				p.raw = true
			default:
				if hasArg {
					return nil, fmt.Errorf("template %q: filter %s takes no argument", src, fname)
				}
			}
			p.filters = append(p.filters, f)
		}
		t.parts = append(t.parts, p)
		t.refs++
	}
	return t, nil
}

// render fills the template for one record.
func (t *template) render(ec *evalCtx) (string, error) {
	if t.refs == 0 {
		if len(t.parts) == 0 {
			return "", nil
		}
		return t.parts[0].lit, nil
	}
	b := ec.buf[:0]
	for i := range t.parts {
		p := &t.parts[i]
		if p.ref == nil {
			b = append(b, p.lit...)
			continue
		}
		v, col, err := ec.get(p.ref)
		if err != nil {
			ec.buf = b
			return "", err
		}
		if t.refs == 1 {
			ec.col = col
		}
		s := strings.TrimSpace(valueString(v))
		if s == "" && t.escape {
			ec.col = col
			ec.buf = b
			return "", fmt.Errorf("placeholder {{%s}}: %w", p.ref.name, ErrRequiredEmpty)
		}
		for _, f := range p.filters {
			if s, err = applyFilter(f, s, ec); err != nil {
				ec.col = col
				ec.buf = b
				return "", fmt.Errorf("placeholder {{%s}}: %w", p.ref.name, err)
			}
		}
		if t.escape && !p.raw {
			b = appendEscaped(b, s)
		} else {
			b = append(b, s...)
		}
	}
	ec.buf = b
	return string(b), nil
}

func applyFilter(f filter, s string, ec *evalCtx) (string, error) {
	switch f.kind {
	case filterDate, filterMonth, filterYear, filterDateTime:
		tm, _, err := ec.parseTime(s)
		if err != nil {
			return "", err
		}
		switch f.kind {
		case filterDate:
			return ec.day(tm), nil
		case filterMonth:
			return tm.Format("2006-01"), nil
		case filterYear:
			return tm.Format("2006"), nil
		}
		return FormatDateTime(tm), nil
	case filterLower:
		return strings.ToLower(s), nil
	case filterUpper:
		return strings.ToUpper(s), nil
	case filterSlug:
		return slug(s), nil
	case filterTrim:
		return strings.TrimSpace(s), nil
	case filterPad:
		if len(s) < f.n && isDigits(s) {
			return strings.Repeat("0", f.n-len(s)) + s, nil
		}
		return s, nil
	case filterLookup:
		v, ok := f.table.get(ec.m, s)
		if !ok {
			return "", fmt.Errorf("%w %q: %q", ErrLookupMiss, f.table.name, s)
		}
		return valueString(v), nil
	}
	return s, nil
}

// slug lowercases s, folds common accented letters to ASCII and joins words
// with '-': "Stato famiglia AIRE" -> "stato-famiglia-aire", "ALÌ" -> "ali".
func slug(s string) string {
	b := make([]byte, 0, len(s))
	dash := false
	for _, r := range s {
		r = foldAccent(unicode.ToLower(r))
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9'):
			if dash && len(b) > 0 {
				b = append(b, '-')
			}
			dash = false
			b = append(b, byte(r))
		case r >= utf8.RuneSelf && unicode.IsLetter(r):
			if dash && len(b) > 0 {
				b = append(b, '-')
			}
			dash = false
			b = utf8.AppendRune(b, r)
		default:
			dash = true
		}
	}
	return string(b)
}

func foldAccent(r rune) rune {
	switch r {
	case 'à', 'á', 'â', 'ä', 'ã', 'å':
		return 'a'
	case 'è', 'é', 'ê', 'ë':
		return 'e'
	case 'ì', 'í', 'î', 'ï':
		return 'i'
	case 'ò', 'ó', 'ô', 'ö', 'õ':
		return 'o'
	case 'ù', 'ú', 'û', 'ü':
		return 'u'
	case 'ç':
		return 'c'
	case 'ñ':
		return 'n'
	}
	return r
}

// appendEscaped percent-encodes every byte outside the URI unreserved set.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return b
}
