package broker

import (
	"errors"
	"strings"
)

// The subject scheme, version 1 (a public contract for apps; see README):
//
//	piazza.<tenant>.<Type>.<id>
//
// Each token is the tenant name, the entity's first type at creation (in its
// canonical, core-compacted form) and the entity id, encoded so that any
// string is a safe NATS subject token and a safe MQTT topic level: ASCII
// letters, digits, '-', '_' and ':' stand as they are; every other byte of the
// UTF-8 string is written %XX with upper-case hex digits (as in URLs). The
// default tenant is the token "@", which no encoded name can be.
//
// Decoding is exact: DecodeToken accepts only what EncodeToken produces.

// SubjectPrefix is the first token of every subject Piazza publishes.
const SubjectPrefix = "piazza"

// DefaultTenantToken stands for the default tenant (no NGSILD-Tenant header).
const DefaultTenantToken = "@"

// ErrBadToken is returned by DecodeToken for a string EncodeToken cannot produce.
var ErrBadToken = errors.New("broker: malformed subject token")

const upperHex = "0123456789ABCDEF"

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':'
}

// EncodeToken encodes s as one subject token. The empty string encodes as "%"
// alone, which is not otherwise produced, so that every token is non-empty.
func EncodeToken(s string) string {
	if s == "" {
		return "%"
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken. It rejects any token that EncodeToken
// would not produce (lower-case hex, an escaped safe byte, a stray '%').
func DecodeToken(t string) (string, error) {
	if t == "%" {
		return "", nil
	}
	if t == "" {
		return "", ErrBadToken
	}
	if !strings.Contains(t, "%") {
		for i := 0; i < len(t); i++ {
			if !tokenSafe(t[i]) {
				return "", ErrBadToken
			}
		}
		return t, nil
	}
	b := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '%' {
			if !tokenSafe(c) {
				return "", ErrBadToken
			}
			b = append(b, c)
			continue
		}
		if i+2 >= len(t) {
			return "", ErrBadToken
		}
		hi, lo := unhex(t[i+1]), unhex(t[i+2])
		if hi < 0 || lo < 0 {
			return "", ErrBadToken
		}
		v := byte(hi<<4 | lo)
		if tokenSafe(v) {
			return "", ErrBadToken
		}
		b = append(b, v)
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// TenantToken returns the subject token of a tenant ("" is the default tenant).
func TenantToken(tenant string) string {
	if tenant == "" {
		return DefaultTenantToken
	}
	return EncodeToken(tenant)
}

// Subject returns the subject of an entity.
func Subject(tenant, typ, id string) string {
	return SubjectPrefix + "." + TenantToken(tenant) + "." + EncodeToken(typ) + "." + EncodeToken(id)
}

// idSubjectFilter returns the filter that matches an id's subject whatever
// its type token: piazza.<tenant>.*.<id>.
func idSubjectFilter(tenant, id string) string {
	return SubjectPrefix + "." + TenantToken(tenant) + ".*." + EncodeToken(id)
}

// ParseSubject splits a subject produced by Subject into its decoded parts.
func ParseSubject(subj string) (tenant, typ, id string, err error) {
	parts := strings.Split(subj, ".")
	if len(parts) != 4 || parts[0] != SubjectPrefix {
		return "", "", "", ErrBadToken
	}
	if parts[1] != DefaultTenantToken {
		// "%" (the empty name) is not a tenant token: the default tenant is "@".
		if tenant, err = DecodeToken(parts[1]); err != nil || tenant == "" {
			return "", "", "", ErrBadToken
		}
	}
	if typ, err = DecodeToken(parts[2]); err != nil {
		return "", "", "", err
	}
	if id, err = DecodeToken(parts[3]); err != nil {
		return "", "", "", err
	}
	return tenant, typ, id, nil
}
