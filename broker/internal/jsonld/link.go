package jsonld

import (
	"fmt"
	"strings"
)

// ContextRel is the link relation of a JSON-LD context in an HTTP Link
// header.
const ContextRel = "http://www.w3.org/ns/json-ld#context"

// ParseLink returns the target of the JSON-LD context link in the value of
// an HTTP Link header (RFC 8288): `<url>; rel="http://www.w3.org/ns/json-ld#context"`.
// The header may hold several comma-separated links (and several Link
// header lines joined with ", "); parameters may come in any order, names
// are case-insensitive, values may be quoted or not, and rel may list several
// space-separated relation types. A header without a context link gives ""
// and no error. A malformed header, an empty target, or two context links
// with different targets is ErrInvalidLink. The URL is returned as written;
// Loader.Load validates it.
func ParseLink(h string) (string, error) {
	found := ""
	i := 0
	for {
		i = skipSpaceAndCommas(h, i)
		if i >= len(h) {
			return found, nil
		}
		if h[i] != '<' {
			return "", linkErr(h, i, "expected '<'")
		}
		end := strings.IndexByte(h[i+1:], '>')
		if end < 0 {
			return "", linkErr(h, i, "missing '>'")
		}
		target := strings.TrimSpace(h[i+1 : i+1+end])
		i += end + 2
		isContext := false
		for {
			i = skipSpace(h, i)
			if i >= len(h) || h[i] == ',' {
				break
			}
			if h[i] != ';' {
				return "", linkErr(h, i, "expected ';' or ','")
			}
			i = skipSpace(h, i+1)
			if i < len(h) && (h[i] == ';' || h[i] == ',') {
				continue // empty parameter
			}
			start := i
			for i < len(h) && isTokenChar(h[i]) {
				i++
			}
			if i == start {
				return "", linkErr(h, i, "expected a parameter name")
			}
			name := h[start:i]
			i = skipSpace(h, i)
			value := ""
			if i < len(h) && h[i] == '=' {
				var err error
				value, i, err = linkParamValue(h, skipSpace(h, i+1))
				if err != nil {
					return "", err
				}
			}
			if strings.EqualFold(name, "rel") && hasRel(value, ContextRel) {
				isContext = true
			}
		}
		if !isContext {
			continue
		}
		if target == "" {
			return "", fmt.Errorf("%w: empty context link target", ErrInvalidLink)
		}
		if found != "" && found != target {
			return "", fmt.Errorf("%w: more than one JSON-LD context link (%s and %s)", ErrInvalidLink, found, target)
		}
		found = target
	}
}

// linkParamValue reads a quoted-string or a bare value starting at h[i].
func linkParamValue(h string, i int) (string, int, error) {
	if i < len(h) && h[i] == '"' {
		// Fast path: no escapes, the value is a substring.
		if end := strings.IndexAny(h[i+1:], "\\\""); end >= 0 && h[i+1+end] == '"' {
			return h[i+1 : i+1+end], i + end + 2, nil
		}
		var b strings.Builder
		for j := i + 1; j < len(h); j++ {
			switch h[j] {
			case '\\':
				j++
				if j < len(h) {
					b.WriteByte(h[j])
				}
			case '"':
				return b.String(), j + 1, nil
			default:
				b.WriteByte(h[j])
			}
		}
		return "", len(h), linkErr(h, i, "unterminated quoted string")
	}
	start := i
	for i < len(h) && h[i] != ';' && h[i] != ',' && h[i] != ' ' && h[i] != '\t' {
		i++
	}
	return h[start:i], i, nil
}

// hasRel reports whether the space-separated relation types in value
// include rel (compared case-insensitively, RFC 8288 section 3.3).
func hasRel(value, rel string) bool {
	for value != "" {
		value = strings.TrimLeft(value, " \t")
		end := strings.IndexAny(value, " \t")
		if end < 0 {
			end = len(value)
		}
		if strings.EqualFold(value[:end], rel) {
			return true
		}
		value = value[end:]
	}
	return false
}

func skipSpace(h string, i int) int {
	for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
		i++
	}
	return i
}

func skipSpaceAndCommas(h string, i int) int {
	for i < len(h) && (h[i] == ' ' || h[i] == '\t' || h[i] == ',') {
		i++
	}
	return i
}

// isTokenChar reports whether ch is an RFC 9110 tchar.
func isTokenChar(ch byte) bool {
	switch {
	case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0
}

func linkErr(h string, i int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d of %q", ErrInvalidLink, msg, i, h)
}
