// Package csvsource is the "csv" source kind of Piazza's adapters: delimited
// text files as cities export them from spreadsheets and registries.
//
// It reads RFC 4180 CSV (quoted fields, doubled quotes, line breaks inside
// quotes, CRLF or LF) with the separator given or guessed from the header
// line (',', ';', tab or '|'), in UTF-8 with or without a byte order mark, or
// in Latin-1 / Windows-1252 when configured. The first line is the header
// unless columns are configured. Every record keeps its text verbatim, so a
// reject file can give the operator back exactly the rows that failed.
//
// Config keys (in a pipeline's source block, beside kind: csv):
//
//	path:      file to read ("-" for standard input); required
//	separator: auto (default), ",", ";", "\t" or tab, "|"
//	encoding:  utf-8 (default), latin-1 (iso-8859-1), windows-1252 (cp1252)
//	skipLines: lines to drop before the header (titles above a table)
//	columns:   field names when the file has no header line
//
// Importing the package registers the kind with adapters.Register.
package csvsource

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/piazza-city/piazza/adapters"
)

func init() {
	adapters.Register("csv", func(cfg adapters.SourceConfig) (adapters.Source, error) {
		var c Config
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		c.Path = cfg.Resolve(c.Path)
		return New(c)
	})
	adapters.RegisterFormat("csv", func(cfg adapters.SourceConfig, input string, r io.Reader) (adapters.Source, error) {
		var c Config
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		return FromReader(input, r, c)
	})
}

// MaxRecordBytes caps one record; a longer one (typically an unterminated
// quote) is rejected and reading resumes at the next line.
const MaxRecordBytes = 1 << 20

// Config is the configuration of a CSV source; see the package comment.
type Config struct {
	Path      string   `yaml:"path"`
	Separator string   `yaml:"separator"`
	Encoding  string   `yaml:"encoding"`
	SkipLines int      `yaml:"skipLines"`
	Columns   []string `yaml:"columns"`
}

const (
	encUTF8 = iota
	encLatin1
	encCP1252
)

// Source reads one CSV input. It is used by one goroutine at a time; Close
// may be called at any time and more than once.
type Source struct {
	cfg            Config
	sep            byte
	enc            int
	name           string
	adapters.Input // the file or reader, with Size and Close
}

// New validates cfg and returns a source for the file cfg.Path. It opens
// nothing: Run does.
func New(cfg Config) (*Source, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: csv: path is required", adapters.ErrInvalidConfig)
	}
	return build(cfg, cfg.Path, nil)
}

// FromReader returns a source reading r (standard input, an HTTP body);
// name labels its records in messages. The caller keeps ownership of r.
func FromReader(name string, r io.Reader, cfg Config) (*Source, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: csv: nil reader", adapters.ErrInvalidConfig)
	}
	return build(cfg, name, r)
}

func build(cfg Config, name string, r io.Reader) (*Source, error) {
	s := &Source{cfg: cfg, name: name, Input: adapters.Input{Path: cfg.Path, R: r, Kind: "csv"}}
	switch strings.ToLower(cfg.Separator) {
	case "", "auto":
	case ",", ";", "|":
		s.sep = cfg.Separator[0]
	case "\t", "tab", `\t`:
		s.sep = '\t'
	default:
		return nil, fmt.Errorf("%w: csv: separator %q (use auto, \",\", \";\", tab or \"|\")", adapters.ErrInvalidConfig, cfg.Separator)
	}
	switch strings.ToLower(strings.ReplaceAll(cfg.Encoding, "_", "-")) {
	case "", "utf-8", "utf8":
		s.enc = encUTF8
	case "latin-1", "latin1", "iso-8859-1", "iso8859-1":
		s.enc = encLatin1
	case "windows-1252", "cp1252":
		s.enc = encCP1252
	default:
		return nil, fmt.Errorf("%w: csv: encoding %q (use utf-8, latin-1 or windows-1252)", adapters.ErrInvalidConfig, cfg.Encoding)
	}
	if cfg.SkipLines < 0 {
		return nil, fmt.Errorf("%w: csv: skipLines must not be negative", adapters.ErrInvalidConfig)
	}
	for i, c := range cfg.Columns {
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("%w: csv: columns[%d] is empty", adapters.ErrInvalidConfig, i)
		}
	}
	return s, nil
}

// Run reads the input and emits one record per data line.
func (s *Source) Run(ctx context.Context, out adapters.Emitter) error {
	in, err := s.Open()
	if err != nil {
		return err
	}
	r := newReader(in, s.sep)
	if err := r.skipBOM(); err != nil {
		return err
	}
	for i := 0; i < s.cfg.SkipLines; i++ {
		if err := r.skipLine(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	if r.sep == 0 {
		r.sep = r.guessSeparator()
	}
	var header *adapters.Header
	if len(s.cfg.Columns) > 0 {
		header = adapters.NewHeader(s.cfg.Columns, "")
	}
	index := 0
	for {
		if index&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		raw, line, rerr := r.next()
		if rerr == io.EOF {
			return nil
		}
		base := adapters.Record{Input: s.name, Line: line, Offset: r.offset}
		if rerr != nil {
			var pe *parseError
			if !errors.As(rerr, &pe) {
				return fmt.Errorf("csv: %s: %w", s.name, rerr)
			}
			index++
			base.Index, base.Raw, base.Header = index, string(raw), header
			if err := out.Reject(base, &adapters.RecordError{Input: s.name, Line: line, Index: index, Column: pe.col,
				Err: fmt.Errorf("%w: %s", adapters.ErrMalformedRecord, pe.msg)}); err != nil {
				return err
			}
			continue
		}
		text := string(raw)
		fields, col, msg := split(text, r.sep)
		if header == nil {
			if msg != "" {
				return fmt.Errorf("csv: %s:%d: header: %w: %s", s.name, line, adapters.ErrMalformedRecord, msg)
			}
			names := make([]string, len(fields))
			for i, f := range fields {
				f, _ = s.decode(f)
				names[i] = strings.TrimSpace(strings.TrimPrefix(f, "\uFEFF"))
			}
			header = adapters.NewHeader(names, text)
			continue
		}
		index++
		base.Index, base.Raw, base.Header = index, text, header
		fail := func(col int, format string, args ...any) error {
			return out.Reject(base, &adapters.RecordError{Input: s.name, Line: line, Index: index, Column: col,
				Err: fmt.Errorf("%w: %s", adapters.ErrMalformedRecord, fmt.Sprintf(format, args...))})
		}
		if msg != "" {
			if err := fail(col, "%s", msg); err != nil {
				return err
			}
			continue
		}
		if n := header.Len(); len(fields) != n {
			if len(fields) < n || !allEmpty(fields[n:]) {
				if err := fail(0, "%d fields where the header has %d", len(fields), n); err != nil {
					return err
				}
				continue
			}
			fields = fields[:n]
		}
		values := make([]any, len(fields))
		bad := -1
		for i, f := range fields {
			v, ok := s.decode(f)
			if !ok && bad < 0 {
				bad = i
			}
			values[i] = v
		}
		if bad >= 0 {
			if err := fail(bad+1, "not valid UTF-8 (set encoding: latin-1 or windows-1252 for files saved by older spreadsheets)"); err != nil {
				return err
			}
			continue
		}
		base.Values = values
		if err := out.Emit(base); err != nil {
			return err
		}
	}
}

func allEmpty(fs []string) bool {
	for _, f := range fs {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// decode turns a field's bytes into UTF-8 text; ok is false for invalid UTF-8.
func (s *Source) decode(f string) (string, bool) {
	ascii := true
	for i := 0; i < len(f); i++ {
		if f[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return f, true
	}
	switch s.enc {
	case encLatin1, encCP1252:
		var b strings.Builder
		b.Grow(len(f) + 8)
		for i := 0; i < len(f); i++ {
			c := f[i]
			switch {
			case c < utf8.RuneSelf:
				b.WriteByte(c)
			case s.enc == encCP1252 && c >= 0x80 && c <= 0x9F:
				b.WriteRune(cp1252[c-0x80])
			default:
				b.WriteRune(rune(c))
			}
		}
		return b.String(), true
	}
	return f, utf8.ValidString(f)
}

// cp1252 maps bytes 0x80-0x9F of Windows-1252 (undefined ones to U+FFFD).
var cp1252 = [32]rune{
	'€', '\uFFFD', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\uFFFD', 'Ž', '\uFFFD',
	'\uFFFD', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\uFFFD', 'ž', 'Ÿ',
}

// parseError is a record the reader could not delimit or split.
type parseError struct {
	col int
	msg string
}

func (e *parseError) Error() string { return e.msg }

// reader delimits records: it follows quotes so that line breaks inside
// quoted fields stay in their record.
type reader struct {
	br     *bufio.Reader
	sep    byte
	line   int   // lines consumed
	offset int64 // bytes consumed
	buf    []byte
}

func newReader(r io.Reader, sep byte) *reader {
	return &reader{br: bufio.NewReaderSize(r, 64<<10), sep: sep}
}

func (r *reader) skipBOM() error {
	b, err := r.br.Peek(3)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return err
	}
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		_, _ = r.br.Discard(3)
		r.offset += 3
	}
	return nil
}

func (r *reader) skipLine() error {
	for {
		b, err := r.br.ReadSlice('\n')
		r.offset += int64(len(b))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(b) > 0 && err == io.EOF {
				r.line++
				return nil
			}
			return err
		}
		r.line++
		return nil
	}
}

// guessSeparator counts candidate separators outside quotes in the first
// line and picks the most frequent (',' when none is found).
func (r *reader) guessSeparator() byte {
	b, _ := r.br.Peek(r.br.Size())
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	counts := map[byte]int{}
	inQuote := false
	for _, c := range b {
		switch {
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == ',' || c == ';' || c == '\t' || c == '|'):
			counts[c]++
		}
	}
	best, n := byte(','), 0
	for _, c := range []byte{',', ';', '\t', '|'} {
		if counts[c] > n {
			best, n = c, counts[c]
		}
	}
	return best
}

const (
	stFieldStart = iota
	stUnquoted
	stQuoted
	stQuoteInQuoted
)

// next returns the next non-blank record without its line break, and the
// line it starts on. A record longer than MaxRecordBytes or cut by the end
// of the input inside quotes comes back with a *parseError.
func (r *reader) next() ([]byte, int, error) {
	for {
		r.buf = r.buf[:0]
		start := r.line + 1
		state := stFieldStart
		for {
			chunk, err := r.br.ReadSlice('\n')
			r.offset += int64(len(chunk))
			scanFrom := len(r.buf)
			r.buf = append(r.buf, chunk...)
			for _, c := range r.buf[scanFrom:] {
				switch state {
				case stFieldStart:
					switch c {
					case '"':
						state = stQuoted
					case r.sep:
					default:
						state = stUnquoted
					}
				case stUnquoted:
					if c == r.sep {
						state = stFieldStart
					}
				case stQuoted:
					if c == '"' {
						state = stQuoteInQuoted
					}
				case stQuoteInQuoted:
					switch c {
					case '"':
						state = stQuoted
					case r.sep:
						state = stFieldStart
					default:
						state = stUnquoted
					}
				}
				if c == '\n' && state != stQuoted {
					state = stFieldStart
				}
			}
			if err == bufio.ErrBufferFull {
				if len(r.buf) > MaxRecordBytes {
					return r.overlong(start, false)
				}
				continue
			}
			if err != nil && err != io.EOF {
				return nil, start, err
			}
			ended := err == io.EOF
			if !ended {
				r.line++
			} else if len(chunk) > 0 {
				r.line++
			}
			if state == stQuoted && !ended {
				if len(r.buf) > MaxRecordBytes {
					return r.overlong(start, true)
				}
				continue // a line break inside quotes
			}
			if state == stQuoted {
				return trimEOL(r.buf), start, &parseError{msg: fmt.Sprintf("unterminated quoted field (the record starts on line %d)", start)}
			}
			rec := trimEOL(r.buf)
			if len(bytes.TrimSpace(rec)) == 0 {
				if ended {
					return nil, start, io.EOF
				}
				start = r.line + 1
				break // blank line: read the next one
			}
			return rec, start, nil
		}
	}
}

// overlong reports a record past MaxRecordBytes; unless lineDone, it first
// drops the rest of the current physical line. Reading resumes on the next
// line, outside quotes.
func (r *reader) overlong(start int, lineDone bool) ([]byte, int, error) {
	for !lineDone {
		chunk, err := r.br.ReadSlice('\n')
		r.offset += int64(len(chunk))
		if err != bufio.ErrBufferFull {
			r.line++
			break
		}
	}
	head := r.buf
	if len(head) > 200 {
		head = head[:200]
	}
	return head, start, &parseError{msg: fmt.Sprintf("record longer than %d bytes (an unterminated quote?); the first 200 bytes are kept", MaxRecordBytes)}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// split cuts one record into fields. Unquoted fields are substrings of
// text (no copy). On a malformed quote it returns the 1-based column and why.
func split(text string, sep byte) ([]string, int, string) {
	n := strings.Count(text, string(sep)) + 1
	fields := make([]string, 0, n)
	i := 0
	for col := 1; ; col++ {
		if i < len(text) && text[i] == '"' {
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(text) {
				k := strings.IndexByte(text[j:], '"')
				if k < 0 {
					break
				}
				b.WriteString(text[j : j+k])
				j += k + 1
				if j < len(text) && text[j] == '"' {
					b.WriteByte('"')
					j++
					continue
				}
				closed = true
				break
			}
			if !closed {
				return nil, col, "unterminated quoted field"
			}
			fields = append(fields, strings.ReplaceAll(b.String(), "\r\n", "\n"))
			if j == len(text) {
				return fields, 0, ""
			}
			if text[j] != sep {
				return nil, col, fmt.Sprintf("unexpected %q after a closing quote", text[j])
			}
			i = j + 1
			continue
		}
		k := strings.IndexByte(text[i:], sep)
		if k < 0 {
			fields = append(fields, text[i:])
			return fields, 0, ""
		}
		fields = append(fields, text[i:i+k])
		i += k + 1
	}
}
