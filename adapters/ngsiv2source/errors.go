package ngsiv2source

import "errors"

// Sentinel errors of the ngsiv2 source kind; returned errors wrap them with
// the URL, the entity and the attribute.
var (
	// ErrBroker means that the NGSI-v2 broker could not be reached or
	// answered an error ({"error": ..., "description": ...}).
	ErrBroker = errors.New("ngsiv2source: broker request failed")
	// ErrConvert means that an NGSI-v2 entity has no NGSI-LD equivalent (no
	// id, a location that is not geographic, a geometry that does not
	// parse); the entity is rejected and the others go on.
	ErrConvert = errors.New("ngsiv2source: cannot convert entity")
)
