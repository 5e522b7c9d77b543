package jsonld

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
)

// bufPool holds scratch buffers for canonical encodings.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// hashJSON returns the SHA-256 of a canonical encoding of a decoded JSON
// value (object keys sorted, every item typed and length-prefixed), the
// cache key of in-body contexts. ok is false for values that are not JSON
// (they are rejected by processing anyway).
func hashJSON(v any) (sum [32]byte, ok bool) {
	bp := bufPool.Get().(*[]byte)
	b, ok := appendCanonical((*bp)[:0], v, 0)
	if ok {
		sum = sha256.Sum256(b)
	}
	if cap(b) <= 1<<20 {
		*bp = b
		bufPool.Put(bp)
	}
	return sum, ok
}

// maxHashDepth bounds recursion on hostile nesting; encoding/json already
// refuses documents nested deeper than 10000.
const maxHashDepth = 10000

func appendCanonical(b []byte, v any, depth int) ([]byte, bool) {
	if depth > maxHashDepth {
		return b, false
	}
	switch v := v.(type) {
	case nil:
		return append(b, 'n'), true
	case bool:
		if v {
			return append(b, 't'), true
		}
		return append(b, 'f'), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return b, false
		}
		b = append(b, 'd')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		return append(b, ';'), true
	case json.Number:
		b = append(b, 'd')
		b = append(b, v...)
		return append(b, ';'), true
	case string:
		return appendString(append(b, 's'), v), true
	case []string:
		b = binary.AppendUvarint(append(b, 'a'), uint64(len(v)))
		for _, s := range v {
			b = appendString(append(b, 's'), s)
		}
		return b, true
	case []any:
		b = binary.AppendUvarint(append(b, 'a'), uint64(len(v)))
		for _, e := range v {
			var ok bool
			if b, ok = appendCanonical(b, e, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case map[string]any:
		b = binary.AppendUvarint(append(b, 'o'), uint64(len(v)))
		var small [32]string
		keys := small[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendString(b, k)
			var ok bool
			if b, ok = appendCanonical(b, v[k], depth+1); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
