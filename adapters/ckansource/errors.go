package ckansource

import "errors"

// Sentinel errors of the ckan source kind; returned errors wrap them with
// the action, the dataset or resource and the portal's message.
var (
	// ErrPortal means that the portal could not be reached or answered an
	// error ({"success": false, "error": {...}} or a non-JSON answer).
	ErrPortal = errors.New("ckansource: portal request failed")
	// ErrNoResource means that the dataset has no resource the source can
	// read (none matches the configured resource, none is in the datastore
	// and none has a format the adapters read).
	ErrNoResource = errors.New("ckansource: no readable resource")
)
