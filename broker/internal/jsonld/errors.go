package jsonld

import "errors"

// ErrContextNotAvailable reports that a remote @context could not be
// retrieved: the fetch timed out, the host did not resolve, the server
// answered with a non-2xx status, the Loader is offline, or the caller's
// context ended while waiting. The broker answers 503 LdContextNotAvailable.
var ErrContextNotAvailable = errors.New("jsonld: context not available")

// ErrInvalidContext reports that a @context value or a retrieved document is
// not a usable JSON-LD context: bad JSON, a document without "@context", a
// document over the size limit, a malformed term definition, a cyclic term
// or remote-context reference, or too deep a chain of remote contexts. The
// broker answers 400 BadRequestData (or InvalidRequest).
var ErrInvalidContext = errors.New("jsonld: invalid context")

// ErrInvalidLink reports a malformed HTTP Link header, or one that names more
// than one JSON-LD context.
var ErrInvalidLink = errors.New("jsonld: invalid link header")
