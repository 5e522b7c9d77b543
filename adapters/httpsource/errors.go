package httpsource

import "errors"

// Sentinel errors of the http source kind; returned errors wrap them with
// the URL and the status.
var (
	// ErrFetch means that the URL could not be fetched: a network error or
	// an answer other than 200 and 304.
	ErrFetch = errors.New("httpsource: fetch failed")
	// ErrUnknownFormat means that no format was configured and none could be
	// told from the URL or the Content-Type of the answer.
	ErrUnknownFormat = errors.New("httpsource: unknown format")
)
