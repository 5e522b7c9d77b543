// Package jsonld is the broker's JSON-LD @context handling for NGSI-LD
// (ETSI GS CIM 009 V1.9.1, clause 5.5.7): it turns the @context a request
// carries (in the body or in a Link header) into a processed, immutable
// [Context] that expands short attribute names and entity types to IRIs on
// the way in and compacts stored IRIs back to short names on the way out.
//
// # What is implemented
//
// The "Context Processing" and "Create Term Definition" parts of JSON-LD 1.1
// that matter to an NGSI-LD broker, plus vocab-relative IRI expansion and IRI
// compaction of single names:
//
//   - @context values that are a URL string, an object, an array of those,
//     or null (which resets to the core context). Arrays are applied in order,
//     later definitions win. Remote documents may themselves hold @context
//     arrays naming further URLs: they are resolved recursively (relative
//     references against the referring document), at most [MaxRemoteDepth]
//     levels deep and [MaxRemoteRefs] references per load; a remote context
//     that includes itself, directly or not, is ErrInvalidContext.
//   - Term definitions as an absolute IRI, a compact IRI ("ngsi-ld:foo"),
//     another term or prefix of the same or an earlier context (resolved in
//     dependency order; cycles are ErrInvalidContext), a keyword alias
//     ("id": "@id"), an object with "@id", "@type" (kept: see
//     [Context.TypeOf]), "@prefix" and "@reverse" (treated as "@id"), a term
//     whose "@id" is missing or equal to the term (vocab-relative), and null
//     (removes the definition, so the name falls back to @vocab).
//   - "@vocab" (null, "", absolute, compact or vocab-relative), "@base" (kept
//     and readable with [Context.Base], ignored in remote contexts as JSON-LD
//     requires), "@version" (must be 1.1), "@protected" and "@propagate"
//     (type-checked), and "@import" (the imported object is merged under the
//     importing one).
//   - Prefixes follow JSON-LD 1.1: a term is usable as a prefix when it is a
//     plain string definition whose IRI ends in one of ":/?#[]@" (or when it
//     says "@prefix": true). Expansion and compaction use the same rule, so
//     Compact is lossless: Expand(Compact(Expand(x))) == Expand(x).
//
// # The core context
//
// The NGSI-LD core context (v1.8, embedded, see contexts/SOURCES.md) is the
// starting point of every context AND is applied again last, as NGSI-LD
// requires: user contexts can use the core prefixes ("ngsi-ld:location", as
// Smart Data Models contexts do) but can never redefine a core term, and the
// core "@vocab" (https://uri.etsi.org/ngsi-ld/default-context/) replaces any
// user "@vocab". Where JSON-LD would reject the redefinition of a protected
// core term, this package silently keeps the core definition, as NGSI-LD
// brokers do in practice. The core URLs of versions 1.3 to 1.9 (and the
// unversioned one, over https or http) all resolve to the built-in document
// without network access.
//
// # What is not implemented
//
// Full document expansion, compaction, flattening and framing; scoped
// contexts ("@context" inside a term definition: ignored); container
// semantics ("@container" is accepted and ignored: NGSI-LD fixes the shape of
// its payloads); "@language", "@direction", "@nest", "@index" (ignored);
// term selection by value type or container in compaction (the shortest,
// then lexicographically least, term wins); processing-mode 1.0 prefix rules;
// keyword aliases beyond using them as IRIs. Relative @context references in
// a request body have no base and are rejected.
//
// # Loading
//
// A [Loader] resolves URLs in this order: the core URLs, the Builtin
// documents compiled into the binary, the operator's Files map, and only then
// http(s) with a timeout. Fetched documents are cached with a TTL, failures
// are remembered for a short while, concurrent requests for one URL make one
// fetch, and processed contexts are kept in an LRU cache keyed by URL or by a
// hash of the canonical JSON of an in-body context, so the same context in a
// batch of 1000 entities is processed once.
package jsonld
