// Package adapters turns municipal datasets (CSV exports, JSON APIs, GeoJSON
// layers, polled HTTP feeds, CKAN portals and NGSI-v2 brokers) into NGSI-LD
// entities and delivers them to a Piazza broker through the NGSI-LD batch
// API.
//
// The package has four parts:
//
//   - Sources (source.go): every source kind implements [Source] and registers
//     itself by name with [Register], in the init function of its own package
//     (adapters/csvsource, adapters/jsonsource, adapters/httpsource,
//     adapters/ckansource, adapters/ngsiv2source). Import adapters/all to get
//     every built-in kind. A source emits [Record] values: ordered fields with
//     their position in the input. File formats also register a reader
//     ([RegisterFormat]) that fetching sources use for what they download;
//     [Poll] is the schedule of polled sources.
//   - Mappings (mapping.go): a declarative YAML document, compiled once by
//     [ParseMapping], that turns records into NGSI-LD entities in normalized
//     form ([Entity]). Conversions (convert.go) read numbers with a decimal
//     comma or thousands separators and dates in the Italian layouts, and write
//     RFC 3339 timestamps with an offset in a configurable time zone.
//     Mappings can remove personal fields from records before anything else
//     (redact.go) and join records with a second dataset (tables.go).
//   - Presets (presets.go): mapping files embedded in the binary for the
//     datasets every Italian city has (ANPR, INEMAR, ARPA and EEA air
//     quality, Open311, NGSI-v2 brokers), listed by [Presets].
//   - Delivery and pipelines (deliver.go, pipeline.go): [HTTPSink] writes
//     batches to the broker with retries; [Run] drives source, mapping and sink
//     and returns a [Summary]; [LoadPipelines] reads a pipeline config file.
//
// Nothing in this package keeps global state except the registries of source
// kinds and formats, which are written only from init functions and read
// afterwards.
package adapters
