package adapters

import "errors"

// Sentinel errors of the adapters package. Errors returned by the package wrap
// one of these with context (file, line, column, key); test with errors.Is.
var (
	// ErrUnknownSource means that no source kind is registered under a name.
	ErrUnknownSource = errors.New("adapters: unknown source kind")
	// ErrInvalidConfig means that a pipeline, source or sink configuration is
	// malformed: an unknown key, a missing required key or a bad value.
	ErrInvalidConfig = errors.New("adapters: invalid config")
	// ErrInvalidMapping means that a mapping document is malformed; the
	// wrapping error names the key.
	ErrInvalidMapping = errors.New("adapters: invalid mapping")
	// ErrUnknownPreset means that no embedded preset has the requested name.
	ErrUnknownPreset = errors.New("adapters: unknown preset")
	// ErrMissingColumn means that a column named by the mapping is not in the
	// input.
	ErrMissingColumn = errors.New("adapters: mapped column missing from input")
	// ErrMalformedRecord means that a source could not split a record (an
	// unterminated quote, a wrong number of fields, invalid JSON).
	ErrMalformedRecord = errors.New("adapters: malformed record")
	// ErrInvalidNumber means that a value could not be read as a number.
	ErrInvalidNumber = errors.New("adapters: invalid number")
	// ErrInvalidDate means that a value could not be read as a date or time.
	ErrInvalidDate = errors.New("adapters: invalid date")
	// ErrInvalidValue means that a value could not be converted (a boolean, a
	// geometry, a relationship target that is not a URI).
	ErrInvalidValue = errors.New("adapters: invalid value")
	// ErrLookupMiss means that a value has no entry in a lookup table and the
	// mapping gives no default.
	ErrLookupMiss = errors.New("adapters: value not in lookup table")
	// ErrRequiredEmpty means that a value marked required is empty.
	ErrRequiredEmpty = errors.New("adapters: required value is empty")
	// ErrInvalidEntity means that a mapped entity is not valid NGSI-LD (an id
	// that is not a URI, for instance) or was refused by the validator.
	ErrInvalidEntity = errors.New("adapters: invalid entity")
	// ErrEntityRejected means that the broker refused one entity of a batch.
	ErrEntityRejected = errors.New("adapters: entity rejected by broker")
	// ErrBrokerUnavailable means that the broker could not be reached or kept
	// failing after every retry.
	ErrBrokerUnavailable = errors.New("adapters: broker unavailable")
	// ErrBatchRefused means that the broker refused a whole batch with an
	// error that retrying cannot fix (401, 403, 404...).
	ErrBatchRefused = errors.New("adapters: batch refused by broker")
	// ErrRecordsRejected is returned by Run, with a complete Summary, when
	// records were rejected and the pipeline does not allow rejects.
	ErrRecordsRejected = errors.New("adapters: records rejected")
)
