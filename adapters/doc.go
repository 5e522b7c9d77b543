// Package adapters turns municipal datasets (CSV exports, JSON APIs, GeoJSON
// layers and, later, polled HTTP feeds, CKAN portals and NGSI-v2 brokers) into
// NGSI-LD entities and delivers them to a Piazza broker through the NGSI-LD
// batch API.
//
// The package has four parts:
//
//   - Sources (source.go): every source kind implements [Source] and registers
//     itself by name with [Register], in the init function of its own package
//     (adapters/csvsource, adapters/jsonsource). Import adapters/all to get
//     every built-in kind. A source emits [Record] values: ordered fields with
//     their position in the input.
//   - Mappings (mapping.go): a declarative YAML document, compiled once by
//     [ParseMapping], that turns records into NGSI-LD entities in normalized
//     form ([Entity]). Conversions (convert.go) read numbers with a decimal
//     comma or thousands separators and dates in the Italian layouts, and write
//     RFC 3339 timestamps with an offset in a configurable time zone.
//   - Presets (presets.go): mapping files embedded in the binary for the
//     datasets every Italian city has (ANPR), listed by [Presets].
//   - Delivery and pipelines (deliver.go, pipeline.go): [HTTPSink] writes
//     batches to the broker with retries; [Run] drives source, mapping and sink
//     and returns a [Summary]; [LoadPipelines] reads a pipeline config file.
//
// Nothing in this package keeps global state except the registry of source
// kinds, which is written only from init functions and read afterwards.
package adapters
