// Package fastjson decodes JSON documents into the generic Go values that
// encoding/json produces for an `any` target with Decoder.UseNumber:
// map[string]any, []any, string, json.Number, bool and nil.
//
// Piazza's write path decodes every NGSI-LD entity twice (the request body and
// the stored state), and encoding/json's reflective interface decoding was a
// top cost in its profile. Decode is a one-pass, hand-written recursive-descent
// parser that gives exactly the values encoding/json gives, with the same
// tolerance for invalid UTF-8 (each bad byte becomes U+FFFD) and lone
// surrogate escapes (U+FFFD), and the same rejections (RFC 8259 grammar, no
// data after the document). The one deliberate difference is the nesting
// limit: MaxDepth (1000) instead of encoding/json's 10000.
//
// Decode keeps a small pool of scratch decoders (sync.Pool) with a cache of
// recently seen short strings, so repeated member names ("type", "value",
// "observedAt") and values ("Property") share one allocation. The cache holds
// only immutable strings; no state is visible between calls.
package fastjson
