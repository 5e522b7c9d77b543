package broker

import (
	"errors"
	"fmt"

	"github.com/piazza-city/piazza/schemas"
)

// Sentinel errors of the broker. Every error returned by this package wraps
// one of them (or an *Error carrying one of them), so that callers can check
// the kind with errors.Is and the API can pick the NGSI-LD problem type.
var (
	// ErrBadRequestData means the request is well formed but its data is not
	// acceptable: a wrong attribute shape, an invalid id, a missing member.
	ErrBadRequestData = errors.New("broker: bad request data")
	// ErrInvalidRequest means the request itself is malformed: bad JSON, a
	// wrong parameter, an unsupported combination of options.
	ErrInvalidRequest = errors.New("broker: invalid request")
	// ErrNotFound means the entity or attribute does not exist.
	ErrNotFound = errors.New("broker: resource not found")
	// ErrAlreadyExists means an entity with that id exists already.
	ErrAlreadyExists = errors.New("broker: already exists")
	// ErrNonexistentTenant means the tenant named by the request does not exist.
	ErrNonexistentTenant = errors.New("broker: nonexistent tenant")
	// ErrConflict means a concurrent writer kept winning the race for an
	// entity until the retries ran out.
	ErrConflict = errors.New("broker: conflicting concurrent writes")
	// ErrLdContextNotAvailable means a remote @context could not be fetched.
	ErrLdContextNotAvailable = errors.New("broker: @context not available")
	// ErrNotConnected means the broker lost its NATS connection or was
	// closed; the write was not committed.
	ErrNotConnected = errors.New("broker: not connected to NATS")
	// ErrUnavailable means NATS JetStream did not answer, or not in time,
	// though the broker is connected (a cluster electing a leader, a
	// burst of writes): nothing was committed, and the client may retry.
	ErrUnavailable = errors.New("broker: NATS JetStream unavailable; try again")
	// ErrTooManyResults means a query matched more than the configured
	// maximum and no limit was given.
	ErrTooManyResults = errors.New("broker: too many results")
	// ErrOperationNotSupported means the operation is valid NGSI-LD that this
	// broker does not implement.
	ErrOperationNotSupported = errors.New("broker: operation not supported")
	// ErrInternal means something failed inside the broker.
	ErrInternal = errors.New("broker: internal error")
	// ErrNotReady means the broker cannot serve yet: a stream does not
	// answer, or a read model is far behind its stream (CheckReady).
	ErrNotReady = errors.New("broker: not ready")
)

// Error is an error of a known kind with a human-readable detail that names the
// field or entity concerned. Kind is one of the sentinel errors above.
type Error struct {
	Kind   error
	Detail string
	// Entity is the id of the entity concerned, when there is one.
	Entity string
	// Cause is an underlying error, if any.
	Cause error
	// Violations are the data-model violations behind a rejection.
	Violations []schemas.Violation
	// Quarantine is the quarantine entry that keeps a rejected write (0: none).
	Quarantine uint64
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%v: %s: %v", e.Kind, e.Detail, e.Cause)
	}
	return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
}

// Unwrap returns the kind and the cause, so that errors.Is works on both.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

func newError(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func badData(format string, args ...any) *Error {
	return newError(ErrBadRequestData, format, args...)
}

func invalidRequest(format string, args ...any) *Error {
	return newError(ErrInvalidRequest, format, args...)
}

// Detail returns the human-readable detail of err: the Detail of an *Error
// in its chain, or err's text.
func Detail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return err.Error()
}
