package fastjson

import (
	"errors"
	"strconv"
)

// ErrSyntax is the sentinel every error from Decode wraps: the input is not
// one well-formed JSON document (or is nested deeper than MaxDepth). Use
// errors.As with *SyntaxError for the position.
var ErrSyntax = errors.New("fastjson: invalid JSON")

// SyntaxError describes why and where an input is not valid JSON. Decode
// returns a new *SyntaxError that the caller owns.
type SyntaxError struct {
	// Offset is the 0-based byte offset of the offending byte, or the input
	// length when the input ends early.
	Offset int64
	// Line and Col locate Offset, both 1-based; Col counts bytes.
	Line, Col int
	// Msg is a short reason, such as "invalid character 'x' looking for
	// beginning of value" or "unexpected end of JSON input".
	Msg string
}

// Error formats the error as "invalid JSON at line L, column C: MSG".
func (e *SyntaxError) Error() string {
	return "invalid JSON at line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Col) + ": " + e.Msg
}

// Unwrap returns ErrSyntax, so that errors.Is(err, ErrSyntax) holds.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }
