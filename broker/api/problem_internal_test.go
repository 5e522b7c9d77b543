package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// TestProblemTable checks the one table of error kinds: each ETSI type keeps
// the status GS CIM 009 (clause 5.5.2) gives it, every sentinel of the
// broker has a row, and wrapping does not lose the kind.
func TestProblemTable(t *testing.T) {
	// The status of each ETSI type, where the spec fixes one.
	specStatus := map[string][]int{
		TypeInvalidRequest:        {400, 405, 406, 415},
		TypeBadRequestData:        {400, 413},
		TypeAlreadyExists:         {409},
		TypeOperationNotSupported: {422},
		TypeResourceNotFound:      {404},
		TypeInternalError:         {500, 503},
		TypeTooManyResults:        {403},
		TypeLdContextNotAvailable: {503},
		TypeNonexistentTenant:     {404},
		TypeConflict:              {409},
	}
	for _, k := range problemKinds {
		ok := false
		for _, s := range specStatus[k.typ] {
			ok = ok || s == k.status
		}
		if !ok {
			t.Errorf("%v: type %s with status %d", k.err, k.typ, k.status)
		}
		if !strings.HasPrefix(k.typ, "https://uri.etsi.org/ngsi-ld/errors/") || k.title == "" {
			t.Errorf("%v: type %q title %q", k.err, k.typ, k.title)
		}
	}
	sentinels := []error{
		broker.ErrBadRequestData, broker.ErrInvalidRequest, broker.ErrNotFound, broker.ErrAlreadyExists,
		broker.ErrNonexistentTenant, broker.ErrConflict, broker.ErrLdContextNotAvailable, broker.ErrNotConnected, broker.ErrUnavailable,
		broker.ErrTooManyResults, broker.ErrOperationNotSupported,
		jsonld.ErrContextNotAvailable, jsonld.ErrInvalidContext, jsonld.ErrInvalidLink,
	}
	for _, s := range sentinels {
		for _, err := range []error{
			s,
			fmt.Errorf("context: %w", s),
			&broker.Error{Kind: s, Detail: "the detail"},
			fmt.Errorf("outer: %w", &broker.Error{Kind: s, Detail: "the detail", Cause: errors.New("cause")}),
		} {
			p := problemOf(err)
			if p.Status == http.StatusInternalServerError {
				t.Errorf("%v: no row in the table (answered 500)", err)
			}
			if p.Detail == "" {
				t.Errorf("%v: empty detail", err)
			}
			var be *broker.Error
			if errors.As(err, &be) && p.Detail != "the detail" {
				t.Errorf("%v: detail %q, want the *Error's detail", err, p.Detail)
			}
		}
	}
	if p := problemOf(errors.New("boom")); p.Status != 500 || p.Type != TypeInternalError || p.Detail != "boom" {
		t.Errorf("unknown error: %+v", p)
	}
	// A tenant that does not exist is not a missing entity.
	if p := problemOf(&broker.Error{Kind: broker.ErrNonexistentTenant, Detail: "x"}); p.Type != TypeNonexistentTenant {
		t.Errorf("nonexistent tenant: %+v", p)
	}
}

// TestPanicIsProblem checks that a handler panic answers a 500 ProblemDetails
// and the server goes on.
func TestPanicIsProblem(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	h.wrap(func(w http.ResponseWriter, r *http.Request) error { panic("boom") })(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), TypeInternalError) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
