package adapters

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones work in minimal containers without /usr/share/zoneinfo
)

// DefaultTimeZone is the zone dates without an offset are read in, unless a
// mapping names another.
const DefaultTimeZone = "Europe/Rome"

// ParseNumber reads a number written by people: an optional sign, digits
// with an optional decimal separator and optional thousands separators
// ('.', ',', space, no-break space, apostrophe), or an exponent form.
//
// decimal selects the decimal separator: ',' or '.' fix it (then the other
// one may only separate thousands); 0 guesses it: when both '.' and ',' occur
// the last one is the decimal separator; a single '.' or ',' is a decimal
// separator; one repeated is a thousands separator. Thousands groups must have
// three digits, so "1.23.4" is an error rather than a silent 1234.
func ParseNumber(s string, decimal byte) (float64, error) {
	clean, err := cleanNumber(s, decimal)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(clean, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%w: %q", ErrInvalidNumber, s)
	}
	return f, nil
}

// ParseInteger reads a whole number with the rules of ParseNumber; a value
// with a fractional part other than zero, or beyond ±2^53, is an error.
func ParseInteger(s string, decimal byte) (int64, error) {
	t := strings.TrimSpace(s)
	if n := len(t); n > 0 && n <= 18 {
		i := 0
		if t[0] == '-' || t[0] == '+' {
			i = 1
		}
		digits := i < n
		for j := i; j < n; j++ {
			if t[j] < '0' || t[j] > '9' {
				digits = false
				break
			}
		}
		if digits {
			v, err := strconv.ParseInt(t, 10, 64)
			if err == nil {
				return checkInt(v, s)
			}
		}
	}
	f, err := ParseNumber(s, decimal)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%w: %q is not a whole number", ErrInvalidNumber, s)
	}
	return int64(f), nil
}

func checkInt(v int64, s string) (int64, error) {
	if v > 1<<53 || v < -(1<<53) {
		return 0, fmt.Errorf("%w: %q is beyond ±2^53", ErrInvalidNumber, s)
	}
	return v, nil
}

func isGroupRune(r rune) bool {
	return r == ' ' || r == '\'' || r == '\u00A0' || r == '\u202F' || r == '’'
}

// cleanNumber rewrites s as an ASCII number strconv can read.
func cleanNumber(s string, decimal byte) (string, error) {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidNumber, s, why) }
	t := strings.TrimFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\u00A0' || r == '\u202F' })
	if t == "" {
		return "", bad("empty")
	}
	sign := ""
	if t[0] == '-' || t[0] == '+' {
		if t[0] == '-' {
			sign = "-"
		}
		t = strings.TrimLeft(t[1:], " ")
	}
	if t == "" {
		return "", bad("no digits")
	}
	if strings.ContainsAny(t, "eE") {
		body := t
		if decimal == ',' {
			body = strings.Replace(body, ",", ".", 1)
		}
		for _, r := range body {
			if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
				return "", bad("unexpected character in exponent form")
			}
		}
		return sign + body, nil
	}
	dots, commas := strings.Count(t, "."), strings.Count(t, ",")
	var dec rune // decimal separator in t, 0 if none
	switch decimal {
	case ',':
		if commas > 1 {
			return "", bad("more than one decimal comma")
		}
		if commas == 1 {
			dec = ','
		}
	case '.':
		if dots > 1 {
			return "", bad("more than one decimal point")
		}
		if dots == 1 {
			dec = '.'
		}
	default:
		switch {
		case dots > 0 && commas > 0:
			if strings.LastIndexByte(t, '.') > strings.LastIndexByte(t, ',') {
				dec = '.'
			} else {
				dec = ','
			}
		case dots == 1:
			dec = '.'
		case commas == 1:
			dec = ','
		}
	}
	intPart, frac := t, ""
	if dec != 0 {
		i := strings.LastIndexByte(t, byte(dec))
		intPart, frac = t[:i], t[i+1:]
		if frac == "" {
			return "", bad("no digits after the decimal separator")
		}
		for j := 0; j < len(frac); j++ {
			if frac[j] < '0' || frac[j] > '9' {
				return "", bad("unexpected character after the decimal separator")
			}
		}
	}
	var b strings.Builder
	b.Grow(len(t) + 1)
	b.WriteString(sign)
	group, groups, sepSeen := 0, 0, false
	var sepRune rune
	for _, r := range intPart {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
			group++
		case (r == '.' || r == ',') && r != dec, isGroupRune(r):
			if sepSeen && r != sepRune {
				return "", bad("mixed thousands separators")
			}
			if group == 0 || group > 3 || (groups > 0 && group != 3) {
				return "", bad("thousands groups must have three digits")
			}
			sepSeen, sepRune = true, r
			groups++
			group = 0
		default:
			return "", bad(fmt.Sprintf("unexpected character %q", r))
		}
	}
	if sepSeen && group != 3 {
		return "", bad("thousands groups must have three digits")
	}
	if group == 0 && groups == 0 && frac == "" {
		return "", bad("no digits")
	}
	if frac != "" {
		if b.Len() == len(sign) {
			b.WriteByte('0')
		}
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String(), nil
}

// Precision says how much of a date a text gave: a year, a month, a day or a
// full time of day.
type Precision int

// Precisions of ParseTime, from the coarsest.
const (
	PrecisionYear Precision = iota + 1
	PrecisionMonth
	PrecisionDay
	PrecisionTime
)

type dateLayout struct {
	layout string
	prec   Precision
	zoned  bool
}

// Layouts tried by ParseTime, in order. Go's "2" and "1" accept one or two
// digits, so "1/2/2024" and "01/02/2024" both match.
var dateLayouts = []dateLayout{
	{time.RFC3339Nano, PrecisionTime, true},
	{"2006-01-02T15:04:05.999999999", PrecisionTime, false},
	{"2006-01-02 15:04:05.999999999Z07:00", PrecisionTime, true},
	{"2006-01-02 15:04:05.999999999 Z07:00", PrecisionTime, true}, // EEA e-reporting: "2021-01-01 00:00:00 +01:00"
	{"2006-01-02 15:04:05.999999999", PrecisionTime, false},
	{"2006-01-02T15:04:05.999999999Z0700", PrecisionTime, true},
	{"2006-01-02T15:04Z07:00", PrecisionTime, true},
	{"2006-01-02T15:04", PrecisionTime, false},
	{"2006-01-02 15:04", PrecisionTime, false},
	{"2006-01-02", PrecisionDay, false},
	{"2006/01/02", PrecisionDay, false},
	{"2006-01", PrecisionMonth, false},
	{"2006/01", PrecisionMonth, false},
	{"20060102", PrecisionDay, false},
	{"2006", PrecisionYear, false},
	{"2-1-2006", PrecisionDay, false},
	{"2/1/2006", PrecisionDay, false},
	{"2.1.2006", PrecisionDay, false},
	{"2-1-2006 15:04:05", PrecisionTime, false},
	{"2/1/2006 15:04:05", PrecisionTime, false},
	{"2-1-2006 15:04", PrecisionTime, false},
	{"2/1/2006 15:04", PrecisionTime, false},
	{"1-2006", PrecisionMonth, false},
	{"1/2006", PrecisionMonth, false},
}

// ParseTime reads a date or time in one of the layouts found in Italian
// open data: ISO 8601 / RFC 3339 (with or without offset, 'T' or space),
// yyyy-mm-dd, yyyymmdd, yyyy-mm, yyyy, dd-mm-yyyy, dd/mm/yyyy, dd.mm.yyyy (each with an
// optional hh:mm[:ss]) and mm/yyyy. Values without an offset are read in loc.
// It returns the instant and how precise the text was.
func ParseTime(s string, loc *time.Location) (time.Time, Precision, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return time.Time{}, 0, fmt.Errorf("%w: empty", ErrInvalidDate)
	}
	if len(t) > 40 {
		return time.Time{}, 0, fmt.Errorf("%w: %.40q... is too long", ErrInvalidDate, t)
	}
	if loc == nil {
		loc = time.UTC
	}
	isoLike := len(t) >= 4 && isDigits(t[:4]) && (len(t) == 4 || t[4] == '-' || t[4] == '/' || len(t) == 8 && isDigits(t))
	for _, l := range dateLayouts {
		if isoLike != (l.layout[0] == '2' && l.layout[1] == '0' && l.layout[2] == '0' && l.layout[3] == '6') {
			continue
		}
		var (
			tm  time.Time
			err error
		)
		if l.zoned {
			tm, err = time.Parse(l.layout, t)
		} else {
			tm, err = time.ParseInLocation(l.layout, t, loc)
		}
		if err == nil {
			if tm.Year() < 1 || tm.Year() > 9999 {
				break
			}
			return tm.In(loc), l.prec, nil
		}
	}
	return time.Time{}, 0, fmt.Errorf("%w: %q (expected dd-mm-yyyy, dd/mm/yyyy, yyyy-mm-dd, yyyy-mm or ISO 8601)", ErrInvalidDate, s)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FormatDateTime writes t as RFC 3339 with the offset of its location,
// adding fractional seconds only when t has them. Offsets RFC 3339 cannot
// write (local mean time before 1900 has seconds in it) are written as UTC.
func FormatDateTime(t time.Time) string {
	if _, off := t.Zone(); off%60 != 0 {
		t = t.UTC()
	}
	if t.Nanosecond() != 0 {
		return t.Format(time.RFC3339Nano)
	}
	return t.Format(time.RFC3339)
}

// periodEnd returns the last day of the period a date of precision p names.
func periodEnd(t time.Time, p Precision) time.Time {
	switch p {
	case PrecisionYear:
		return time.Date(t.Year(), 12, 31, 0, 0, 0, 0, t.Location())
	case PrecisionMonth:
		return time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, t.Location())
	}
	return t
}

// ParseBool reads true/false, yes/no, sì/no, 1/0, y/n, s/n, t/f in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "y", "si", "sì", "s", "t", "vero", "on":
		return true, nil
	case "false", "0", "no", "n", "f", "falso", "off":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q is not a boolean", ErrInvalidValue, s)
}

// geoTypes are the GeoJSON geometry types NGSI-LD accepts as GeoProperty values.
var geoTypes = map[string]bool{"Point": true, "MultiPoint": true, "LineString": true, "MultiLineString": true,
	"Polygon": true, "MultiPolygon": true, "GeometryCollection": true}

// toGeometry checks that v is a GeoJSON geometry object (or its JSON text)
// and returns it as a map.
func toGeometry(v any) (map[string]any, error) {
	if s, ok := v.(string); ok {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: geometry is not GeoJSON: %v", ErrInvalidValue, err)
		}
		v = m
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: geometry must be a GeoJSON object", ErrInvalidValue)
	}
	t, _ := m["type"].(string)
	if !geoTypes[t] {
		return nil, fmt.Errorf("%w: geometry type %q is not a GeoJSON geometry", ErrInvalidValue, t)
	}
	key := "coordinates"
	if t == "GeometryCollection" {
		key = "geometries"
	}
	if _, ok := m[key].([]any); !ok {
		return nil, fmt.Errorf("%w: %s geometry without %s", ErrInvalidValue, t, key)
	}
	return m, nil
}
