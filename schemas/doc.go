// Package schemas checks NGSI-LD entities against Smart Data Models (OASC MIM2).
//
// A Registry holds the data models that Piazza knows: the Smart Data Models
// embedded in the binary (AirQualityObserved, CarbonFootprint,
// KeyPerformanceIndicator, SDMX Observation, Open311 service_requests,
// CPSV-AP PublicService and PointOfInterest, with the common schemas they
// $ref), the operator's own schemas read from a directory at start, and the
// schemas added at run time with Put. Every schema is compiled once, when it is
// loaded, and the compiled form is reused by every validation.
//
// The broker's write path finds the model of an entity with Lookup, by the
// expanded IRI of the entity's type: either the model's own IRI (the type term
// expanded with the Smart Data Models @context, which Contexts returns so that
// the JSON-LD loader never needs the network) or the NGSI-LD default
// vocabulary IRI of the same short name, for cities that post with only the
// core context. It then calls Model.Validate with the keyValues (simplified)
// projection of the entity as it will be after the write, and gets back every
// Violation with its JSON pointer, keyword and message.
//
// Validation is done by github.com/xeipuuv/gojsonschema (drafts 4, 6 and 7),
// kept behind Piazza's own types. The Smart Data Models declare draft 2020-12:
// they are compiled with draft-07 semantics, which covers every keyword they
// use; README.md lists what is and is not enforced. Every $ref is resolved
// against documents held by the registry; nothing is ever fetched over the
// network or read from the file system during compilation.
//
// A Registry is safe for concurrent use. A *Model is immutable once returned:
// Validate may be called from any number of goroutines.
package schemas
