package fastjson

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects Decode accepts; a
// deeper document is a *SyntaxError, never a stack overflow.
const MaxDepth = 1000

// Decode parses one JSON document (RFC 8259) into map[string]any, []any,
// string, json.Number, bool or nil, exactly as encoding/json.Decoder with
// UseNumber would: duplicate object keys keep the last value, each invalid
// UTF-8 byte in a string becomes U+FFFD, surrogate-pair \u escapes are
// combined and lone surrogates become U+FFFD, numbers are checked against
// JSON's grammar and kept as their literal text, empty arrays and objects are
// non-nil. Whitespace may surround the document; anything else after it is an
// error. Every error is a *SyntaxError wrapping ErrSyntax.
//
// Decode does not keep data or any part of it; the caller owns the result.
// It is safe for concurrent use.
func Decode(data []byte) (any, error) {
	d := decoderPool.Get().(*decoder)
	d.data = data
	d.pos = 0
	d.depth = 0
	v, err := d.document()
	d.reset()
	decoderPool.Put(d)
	if err != nil {
		err.locate(data)
		return nil, err
	}
	return v, nil
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

const (
	// cacheBits sets the number of slots of the short-string cache.
	cacheBits = 8
	cacheSize = 1 << cacheBits
	// maxCached is the longest string the cache keeps.
	maxCached = 32
	// maxScratch is the largest scratch stack a pooled decoder keeps.
	maxScratch = 1 << 14
)

// decoder is the state of one Decode call. Pooled between calls.
type decoder struct {
	data  []byte
	pos   int
	depth int
	// vals and keys are stacks shared by all open containers: a container
	// pushes its members, then copies them into a slice or map of the exact
	// size when it closes.
	vals []any
	keys []string
	// buf holds the unescaped bytes of the current string.
	buf []byte
	// cache holds recently seen short strings, boxed once as string and as
	// json.Number values.
	cache [cacheSize]cacheEntry
}

type cacheEntry struct {
	s   string
	str any // s as a string value, or nil
	num any // s as a json.Number value, or nil
}

// reset drops the references the decoder holds, keeping its scratch space
// unless it grew large. Every closed container has already cleared its part
// of the stacks, so only the entries of containers left open by an error
// remain.
func (d *decoder) reset() {
	clear(d.vals)
	clear(d.keys)
	d.vals, d.keys = d.vals[:0], d.keys[:0]
	if cap(d.vals) > maxScratch {
		d.vals = nil
	}
	if cap(d.keys) > maxScratch {
		d.keys = nil
	}
	if cap(d.buf) > maxScratch {
		d.buf = nil
	}
	d.data = nil
}

// Character classes.
var (
	// plain marks the bytes a string may hold as they are: ASCII except
	// control characters, '"' and '\\'.
	plain [256]bool
	// space marks JSON whitespace.
	space [256]bool
)

func init() {
	for c := 0x20; c < 0x80; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	for _, c := range []byte{' ', '\t', '\n', '\r'} {
		space[c] = true
	}
}

// skip advances over whitespace and returns the next byte, or ok false at the
// end of the input.
func (d *decoder) skip() (c byte, ok bool) {
	data, i := d.data, d.pos
	for ; i < len(data); i++ {
		if c = data[i]; !space[c] {
			d.pos = i
			return c, true
		}
	}
	d.pos = i
	return 0, false
}

func (d *decoder) document() (any, *SyntaxError) {
	c, ok := d.skip()
	if !ok {
		if len(d.data) == 0 {
			return nil, &SyntaxError{Msg: "empty input: a JSON document is required"}
		}
		return nil, d.eof()
	}
	v, err := d.value(c)
	if err != nil {
		return nil, err
	}
	if _, ok := d.skip(); ok {
		return nil, &SyntaxError{Offset: int64(d.pos), Msg: "data after the JSON document"}
	}
	return v, nil
}

// value parses the value that starts with c at d.pos.
func (d *decoder) value(c byte) (any, *SyntaxError) {
	switch c {
	case '"':
		return d.stringValue()
	case '{':
		return d.object()
	case '[':
		return d.array()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	}
	if c == '-' || '0' <= c && c <= '9' {
		return d.number()
	}
	return nil, d.badChar(d.pos, "looking for beginning of value")
}

func (d *decoder) object() (any, *SyntaxError) {
	start := d.pos
	d.pos++
	if d.depth++; d.depth > MaxDepth {
		return nil, d.tooDeep(start)
	}
	c, ok := d.skip()
	if !ok {
		return nil, d.eof()
	}
	if c == '}' {
		d.pos++
		d.depth--
		return map[string]any{}, nil
	}
	kbase, vbase := len(d.keys), len(d.vals)
	for {
		if c != '"' {
			return nil, d.badChar(d.pos, "looking for beginning of object key string")
		}
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		if c, ok = d.skip(); !ok {
			return nil, d.eof()
		}
		if c != ':' {
			return nil, d.badChar(d.pos, "after object key")
		}
		d.pos++
		if c, ok = d.skip(); !ok {
			return nil, d.eof()
		}
		v, err := d.value(c)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, key)
		d.vals = append(d.vals, v)
		if c, ok = d.skip(); !ok {
			return nil, d.eof()
		}
		if c == ',' {
			d.pos++
			if c, ok = d.skip(); !ok {
				return nil, d.eof()
			}
			continue
		}
		if c == '}' {
			d.pos++
			break
		}
		return nil, d.badChar(d.pos, "after object key:value pair")
	}
	keys, vals := d.keys[kbase:], d.vals[vbase:]
	m := make(map[string]any, len(keys))
	for i, k := range keys {
		m[k] = vals[i]
	}
	clear(keys)
	clear(vals)
	d.keys, d.vals = d.keys[:kbase], d.vals[:vbase]
	d.depth--
	return m, nil
}

func (d *decoder) array() (any, *SyntaxError) {
	start := d.pos
	d.pos++
	if d.depth++; d.depth > MaxDepth {
		return nil, d.tooDeep(start)
	}
	c, ok := d.skip()
	if !ok {
		return nil, d.eof()
	}
	if c == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	base := len(d.vals)
	for {
		v, err := d.value(c)
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
		if c, ok = d.skip(); !ok {
			return nil, d.eof()
		}
		if c == ',' {
			d.pos++
			if c, ok = d.skip(); !ok {
				return nil, d.eof()
			}
			continue
		}
		if c == ']' {
			d.pos++
			break
		}
		return nil, d.badChar(d.pos, "after array element")
	}
	vals := d.vals[base:]
	a := make([]any, len(vals))
	copy(a, vals)
	clear(vals)
	d.vals = d.vals[:base]
	d.depth--
	return a, nil
}

// literal checks that lit (true, false or null) is at d.pos.
func (d *decoder) literal(lit string) *SyntaxError {
	data := d.data
	i := d.pos
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		d.pos = i + len(lit)
		return nil
	}
	for j := 1; j < len(lit); j++ {
		if i+j >= len(data) {
			d.pos = len(data)
			return d.eof()
		}
		if data[i+j] != lit[j] {
			return d.badChar(i+j, "in literal "+lit+" (expecting "+strconv.QuoteRune(rune(lit[j]))+")")
		}
	}
	panic("unreachable")
}

// number scans a number at d.pos and returns it as a json.Number.
func (d *decoder) number() (any, *SyntaxError) {
	b, err := d.scanNumber()
	if err != nil {
		return nil, err
	}
	if len(b) > maxCached {
		return json.Number(b), nil
	}
	e := &d.cache[hash(b)]
	if e.s != string(b) {
		e.s, e.str, e.num = string(b), nil, nil
	}
	if e.num == nil {
		e.num = json.Number(e.s)
	}
	return e.num, nil
}

// scanNumber checks the number at d.pos against JSON's grammar, leaves d.pos
// after it and returns its text (a slice of the input).
func (d *decoder) scanNumber() ([]byte, *SyntaxError) {
	data := d.data
	start := d.pos
	i := start
	if data[i] == '-' {
		i++
		if i == len(data) {
			return nil, d.eofAt(i)
		}
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	default:
		return nil, d.badChar(i, "in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i == len(data) {
			return nil, d.eofAt(i)
		}
		if c := data[i]; c < '0' || c > '9' {
			return nil, d.badChar(i, "after decimal point in numeric literal")
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i == len(data) {
			return nil, d.eofAt(i)
		}
		if c := data[i]; c < '0' || c > '9' {
			return nil, d.badChar(i, "in exponent of numeric literal")
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return data[start:i], nil
}

// stringValue scans a string at d.pos and returns it as a string value.
func (d *decoder) stringValue() (any, *SyntaxError) {
	b, err := d.scanString()
	if err != nil {
		return nil, err
	}
	if len(b) > maxCached {
		return string(b), nil
	}
	e := &d.cache[hash(b)]
	if e.s != string(b) {
		e.s, e.str, e.num = string(b), nil, nil
	}
	if e.str == nil {
		e.str = e.s
	}
	return e.str, nil
}

// key scans a string at d.pos and returns it.
func (d *decoder) key() (string, *SyntaxError) {
	b, err := d.scanString()
	if err != nil {
		return "", err
	}
	if len(b) > maxCached {
		return string(b), nil
	}
	e := &d.cache[hash(b)]
	if e.s != string(b) {
		e.s, e.str, e.num = string(b), nil, nil
	}
	return e.s, nil
}

// hash picks the cache slot of a string of at most maxCached bytes from its
// length and up to 24 of its bytes. Strings that differ elsewhere share a slot
// and merely evict each other.
func hash(b []byte) uint32 {
	n := len(b)
	h := uint64(n)
	switch {
	case n >= 8:
		h ^= binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[n-8:]), 31)
		if n > 16 {
			h ^= bits.RotateLeft64(binary.LittleEndian.Uint64(b[n/2-4:]), 17)
		}
	case n >= 4:
		h ^= uint64(binary.LittleEndian.Uint32(b))<<8 ^ uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	case n > 0:
		h ^= uint64(b[0])<<8 ^ uint64(b[n/2])<<16 ^ uint64(b[n-1])<<24
	}
	h *= 0x9e3779b97f4a7c15
	return uint32(h >> (64 - cacheBits))
}

// scanString scans the string whose opening quote is at d.pos, leaves d.pos
// after its closing quote and returns its decoded bytes: a slice of the input
// when it holds neither escapes nor invalid UTF-8, else of d.buf. The result
// is valid until the next call.
func (d *decoder) scanString() ([]byte, *SyntaxError) {
	data := d.data
	start := d.pos + 1
	i := start
	for {
		for i < len(data) && plain[data[i]] {
			i++
		}
		if i == len(data) {
			return nil, d.eofAt(i)
		}
		c := data[i]
		if c == '"' {
			d.pos = i + 1
			return data[start:i], nil
		}
		if c < utf8.RuneSelf {
			break // a backslash or a control character
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return d.unescape(start, i)
}

// unescape finishes scanning the string that starts at start, whose bytes
// before i need no change, decoding escapes and replacing invalid UTF-8.
func (d *decoder) unescape(start, i int) ([]byte, *SyntaxError) {
	data := d.data
	buf := append(d.buf[:0], data[start:i]...)
	for {
		if i == len(data) {
			d.buf = buf
			return nil, d.eofAt(i)
		}
		c := data[i]
		switch {
		case plain[c]:
			j := i + 1
			for j < len(data) && plain[data[j]] {
				j++
			}
			buf = append(buf, data[i:j]...)
			i = j
		case c == '"':
			d.pos = i + 1
			d.buf = buf
			return buf, nil
		case c == '\\':
			i++
			if i == len(data) {
				d.buf = buf
				return nil, d.eofAt(i)
			}
			switch e := data[i]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
				i++
			case 'b':
				buf = append(buf, '\b')
				i++
			case 'f':
				buf = append(buf, '\f')
				i++
			case 'n':
				buf = append(buf, '\n')
				i++
			case 'r':
				buf = append(buf, '\r')
				i++
			case 't':
				buf = append(buf, '\t')
				i++
			case 'u':
				r, err := d.hex4(i + 1)
				if err != nil {
					d.buf = buf
					return nil, err
				}
				i += 5
				if utf16.IsSurrogate(r) {
					r2, ok := lowHalf(data[i:])
					if pair := utf16.DecodeRune(r, r2); ok && pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.buf = buf
				return nil, d.badChar(i, "in string escape code")
			}
		case c < 0x20:
			d.buf = buf
			return nil, d.badChar(i, "in string literal")
		default:
			// Non-ASCII: copy valid UTF-8, replace each invalid byte.
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, data[i:i+size]...)
			}
			i += size
		}
	}
}

// hex4 reads the four hex digits of a \u escape at i.
func (d *decoder) hex4(i int) (rune, *SyntaxError) {
	var r rune
	for j := i; j < i+4; j++ {
		if j >= len(d.data) {
			return 0, d.eofAt(len(d.data))
		}
		h := unhex(d.data[j])
		if h < 0 {
			return 0, d.badChar(j, "in \\u hexadecimal character escape")
		}
		r = r<<4 | h
	}
	return r, nil
}

// lowHalf reads a following \uXXXX escape as the second half of a surrogate
// pair; ok is false if b does not start with a complete one.
func lowHalf(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		h := unhex(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	return r, true
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// Errors. Line and column are filled in by Decode.

func (d *decoder) eof() *SyntaxError { return d.eofAt(len(d.data)) }

func (d *decoder) eofAt(off int) *SyntaxError {
	return &SyntaxError{Offset: int64(off), Msg: "unexpected end of JSON input"}
}

func (d *decoder) badChar(off int, context string) *SyntaxError {
	return &SyntaxError{Offset: int64(off), Msg: "invalid character " + quoteChar(d.data[off:]) + " " + context}
}

func (d *decoder) tooDeep(off int) *SyntaxError {
	return &SyntaxError{Offset: int64(off), Msg: "nesting deeper than " + strconv.Itoa(MaxDepth) + " levels"}
}

// quoteChar quotes the character at the start of b for an error message:
// 'x', '\n', 'é', or '\xff' for a byte that is not UTF-8.
func quoteChar(b []byte) string {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size == 1 {
		const hexDigits = "0123456789abcdef"
		return `'\x` + string(hexDigits[b[0]>>4]) + string(hexDigits[b[0]&15]) + `'`
	}
	return strconv.QuoteRune(r)
}

// locate fills in Line and Col from Offset.
func (e *SyntaxError) locate(data []byte) {
	off := int(max(0, min(e.Offset, int64(len(data)))))
	e.Line, e.Col = 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			e.Line++
			e.Col = 1
		} else {
			e.Col++
		}
	}
}
