package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
)

// The NGSI-LD error types (GS CIM 009 clause 5.5.2).
const (
	errorBase                 = "https://uri.etsi.org/ngsi-ld/errors/"
	TypeInvalidRequest        = errorBase + "InvalidRequest"
	TypeBadRequestData        = errorBase + "BadRequestData"
	TypeAlreadyExists         = errorBase + "AlreadyExists"
	TypeOperationNotSupported = errorBase + "OperationNotSupported"
	TypeResourceNotFound      = errorBase + "ResourceNotFound"
	TypeInternalError         = errorBase + "InternalError"
	TypeTooManyResults        = errorBase + "TooManyResults"
	TypeLdContextNotAvailable = errorBase + "LdContextNotAvailable"
	TypeNonexistentTenant     = errorBase + "NonexistentTenant"
	TypeConflict              = errorBase + "Conflict"
)

// Errors of the HTTP layer itself.
var (
	errUnsupportedMediaType = errors.New("api: unsupported media type")
	errNotAcceptable        = errors.New("api: not acceptable")
	errBodyTooLarge         = errors.New("api: request body too large")
	errMethodNotAllowed     = errors.New("api: method not allowed")
)

// problemKind is one row of the table that maps an error kind to its HTTP
// status, NGSI-LD type and title.
type problemKind struct {
	err    error
	status int
	typ    string
	title  string
}

// problemKinds is the one table of error kinds; the first match wins.
var problemKinds = []problemKind{
	{broker.ErrBadRequestData, http.StatusBadRequest, TypeBadRequestData, "Bad request data"},
	{broker.ErrInvalidRequest, http.StatusBadRequest, TypeInvalidRequest, "Invalid request"},
	{jsonld.ErrInvalidContext, http.StatusBadRequest, TypeBadRequestData, "Invalid @context"},
	{jsonld.ErrInvalidLink, http.StatusBadRequest, TypeBadRequestData, "Invalid Link header"},
	{broker.ErrNonexistentTenant, http.StatusNotFound, TypeNonexistentTenant, "Nonexistent tenant"},
	{broker.ErrNotFound, http.StatusNotFound, TypeResourceNotFound, "Resource not found"},
	{broker.ErrAlreadyExists, http.StatusConflict, TypeAlreadyExists, "Already exists"},
	{broker.ErrConflict, http.StatusConflict, TypeConflict, "Conflicting concurrent writes"},
	{broker.ErrTooManyResults, http.StatusForbidden, TypeTooManyResults, "Too many results"},
	{broker.ErrOperationNotSupported, http.StatusUnprocessableEntity, TypeOperationNotSupported, "Operation not supported"},
	{jsonld.ErrContextNotAvailable, http.StatusServiceUnavailable, TypeLdContextNotAvailable, "@context not available"},
	{broker.ErrLdContextNotAvailable, http.StatusServiceUnavailable, TypeLdContextNotAvailable, "@context not available"},
	{broker.ErrNotConnected, http.StatusServiceUnavailable, TypeInternalError, "Service unavailable"},
	{broker.ErrUnavailable, http.StatusServiceUnavailable, TypeInternalError, "Service unavailable"},
	{errUnsupportedMediaType, http.StatusUnsupportedMediaType, TypeInvalidRequest, "Unsupported media type"},
	{errNotAcceptable, http.StatusNotAcceptable, TypeInvalidRequest, "Not acceptable"},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, TypeBadRequestData, "Request body too large"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, TypeInvalidRequest, "Method not allowed"},
}

// Problem is an NGSI-LD ProblemDetails body (RFC 7807). A rejection by a
// Smart Data Model carries two extension members (RFC 7807 section 3.2):
// the violations, each with its JSON pointer into the keyValues form, and
// the quarantine entry that keeps the write, if one does.
type Problem struct {
	Type       string              `json:"type"`
	Title      string              `json:"title"`
	Status     int                 `json:"status,omitempty"`
	Detail     string              `json:"detail"`
	Violations []schemas.Violation `json:"violations,omitempty"`
	Quarantine uint64              `json:"quarantine,omitempty"`
}

// problemOf turns an error into its ProblemDetails. Unknown errors are 500
// InternalError; their text is kept in the detail, since an operator needs it.
func problemOf(err error) Problem {
	for _, k := range problemKinds {
		if errors.Is(err, k.err) {
			p := Problem{Type: k.typ, Title: k.title, Status: k.status, Detail: broker.Detail(err)}
			var be *broker.Error
			if errors.As(err, &be) {
				p.Violations, p.Quarantine = be.Violations, be.Quarantine
			}
			return p
		}
	}
	return Problem{Type: TypeInternalError, Title: "Internal error", Status: http.StatusInternalServerError, Detail: err.Error()}
}

// writeProblem answers a request with a ProblemDetails body.
func (h *Handler) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := problemOf(err)
	if p.Status >= 500 {
		h.log.Error("request failed", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
	}
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/json")
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
