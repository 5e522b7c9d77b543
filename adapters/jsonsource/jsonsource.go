// Package jsonsource holds the JSON source kinds of Piazza's adapters:
//
//   - "json": a JSON document whose records are the objects of an array,
//     found at a dotted path ("result.records" for CKAN datastore answers;
//     empty for a top-level array);
//   - "jsonl": JSON Lines (one object per line, blank lines ignored);
//   - "geojson": a GeoJSON FeatureCollection, one record per feature with
//     the feature's properties as fields, plus "$geometry" (the geometry
//     object, for a GeoProperty) and "$id" (the feature id, when present).
//
// Documents are streamed: memory stays flat whatever the number of records.
// Field order follows the input, field values are JSON values (strings,
// json.Number, bools, nil, objects, arrays); nested values are reached with
// dotted names in a mapping ("address.city"). A byte order mark is ignored.
//
// Config keys (in a pipeline's source block, beside the kind):
//
//	path:    file to read ("-" for standard input); required
//	records: dotted path to the records array (json only)
//
// Importing the package registers the three kinds with adapters.Register.
package jsonsource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/piazza-city/piazza/adapters"
)

// Format is the layout of a JSON input.
type Format int

// The formats, one per registered kind.
const (
	JSON Format = iota
	Lines
	GeoJSON
)

func init() {
	for name, f := range map[string]Format{"json": JSON, "jsonl": Lines, "geojson": GeoJSON} {
		adapters.Register(name, func(cfg adapters.SourceConfig) (adapters.Source, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			c.Path = cfg.Resolve(c.Path)
			c.Format = f
			return New(c)
		})
		adapters.RegisterFormat(name, func(cfg adapters.SourceConfig, input string, r io.Reader) (adapters.Source, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			c.Format = f
			return FromReader(input, r, c)
		})
	}
}

// MaxLineBytes caps one line of JSON Lines.
const MaxLineBytes = 16 << 20

// Config is the configuration of a JSON source; see the package comment.
type Config struct {
	Path    string `yaml:"path"`
	Records string `yaml:"records"`
	// Format is set by the registered kind, not by the config file.
	Format Format `yaml:"-"`
}

// Source reads one JSON input. It is used by one goroutine at a time; Close
// may be called at any time and more than once.
type Source struct {
	cfg            Config
	path           []string
	name           string
	adapters.Input // the file or reader, with Size and Close
}

// New validates cfg and returns a source for cfg.Path; it opens nothing.
func New(cfg Config) (*Source, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: json: path is required", adapters.ErrInvalidConfig)
	}
	return build(cfg, cfg.Path, nil)
}

// FromReader returns a source reading r; name labels its records. The
// caller keeps ownership of r.
func FromReader(name string, r io.Reader, cfg Config) (*Source, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: json: nil reader", adapters.ErrInvalidConfig)
	}
	return build(cfg, name, r)
}

func build(cfg Config, name string, r io.Reader) (*Source, error) {
	s := &Source{cfg: cfg, name: name, Input: adapters.Input{Path: cfg.Path, R: r, Kind: "json"}}
	if cfg.Records != "" {
		if cfg.Format != JSON {
			return nil, fmt.Errorf("%w: records applies to kind json only", adapters.ErrInvalidConfig)
		}
		for _, p := range strings.Split(cfg.Records, ".") {
			if p == "" {
				return nil, fmt.Errorf("%w: json: records %q has an empty segment", adapters.ErrInvalidConfig, cfg.Records)
			}
			s.path = append(s.path, p)
		}
	}
	if cfg.Format == GeoJSON {
		s.path = []string{"features"}
	}
	return s, nil
}

// Run reads the input and emits one record per object.
func (s *Source) Run(ctx context.Context, out adapters.Emitter) error {
	in, err := s.Open()
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 64<<10)
	if b, _ := br.Peek(3); bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		_, _ = br.Discard(3)
	}
	if s.cfg.Format == Lines {
		return s.runLines(ctx, br, out)
	}
	return s.runDocument(ctx, br, out)
}

// headers shares one Header between consecutive records with the same keys.
type headers struct{ last *adapters.Header }

func (h *headers) get(names []string) *adapters.Header {
	if !h.last.SameNames(names) {
		h.last = adapters.NewFieldsHeader(names)
	}
	return h.last
}

func (s *Source) runLines(ctx context.Context, br *bufio.Reader, out adapters.Emitter) error {
	var hs headers
	var offset int64
	line, index := 0, 0
	var buf []byte
	for {
		if line&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		buf = buf[:0]
		var rerr error
		tooLong := false
		for {
			chunk, err := br.ReadSlice('\n')
			offset += int64(len(chunk))
			if len(buf)+len(chunk) <= MaxLineBytes {
				buf = append(buf, chunk...)
			} else {
				tooLong = true
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			rerr = err
			break
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("jsonl: %s: %w", s.name, rerr)
		}
		if len(buf) == 0 && rerr == io.EOF {
			return nil
		}
		line++
		text := bytes.TrimSpace(buf)
		if len(text) > 0 {
			index++
			rec := adapters.Record{Input: s.name, Line: line, Index: index, Offset: offset, Raw: string(text)}
			var names []string
			var values []any
			err := error(nil)
			if tooLong {
				err = fmt.Errorf("line longer than %d bytes", MaxLineBytes)
				rec.Raw = rec.Raw[:min(len(rec.Raw), 200)]
			} else {
				names, values, err = parseObject(text)
			}
			if err != nil {
				if err := out.Reject(rec, &adapters.RecordError{Input: s.name, Line: line, Index: index,
					Err: fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)}); err != nil {
					return err
				}
			} else {
				rec.Header, rec.Values = hs.get(names), values
				if err := out.Emit(rec); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
	}
}

// countingReader counts the bytes the JSON decoder has pulled.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (s *Source) runDocument(ctx context.Context, br *bufio.Reader, out adapters.Emitter) error {
	cr := &countingReader{r: br}
	dec := json.NewDecoder(cr)
	dec.UseNumber()
	kind := "json"
	if s.cfg.Format == GeoJSON {
		kind = "geojson"
	}
	fail := func(err error) error { return fmt.Errorf("%s: %s: %w", kind, s.name, err) }
	if err := navigate(dec, s.path); err != nil {
		return fail(err)
	}
	var hs headers
	index := 0
	for dec.More() {
		if index&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(fmt.Errorf("%w: record %d: %v", adapters.ErrMalformedRecord, index+1, err))
		}
		index++
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			compact.Reset()
			compact.Write(raw)
		}
		rec := adapters.Record{Input: s.name, Index: index, Offset: cr.n, Raw: compact.String()}
		var names []string
		var values []any
		var err error
		if s.cfg.Format == GeoJSON {
			names, values, err = parseFeature(raw)
		} else {
			names, values, err = parseObject(raw)
		}
		if err != nil {
			if err := out.Reject(rec, &adapters.RecordError{Input: s.name, Index: index,
				Err: fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)}); err != nil {
				return err
			}
			continue
		}
		rec.Header, rec.Values = hs.get(names), values
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// navigate moves dec to the inside of the records array at path.
func navigate(dec *json.Decoder, path []string) error {
	for depth, seg := range path {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return fmt.Errorf("%w: records path %q: %q is not inside an object", adapters.ErrMalformedRecord, strings.Join(path, "."), seg)
		}
		var keys []string
		found := false
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)
			}
			k, _ := kt.(string)
			if k == seg {
				found = true
				break
			}
			keys = append(keys, k)
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)
			}
		}
		if !found {
			where := "the top-level object"
			if depth > 0 {
				where = strings.Join(path[:depth], ".")
			}
			return fmt.Errorf("%w: records path %q: no key %q in %s (keys: %s)", adapters.ErrMalformedRecord,
				strings.Join(path, "."), seg, where, strings.Join(keys, ", "))
		}
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", adapters.ErrMalformedRecord, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		if len(path) == 0 {
			return fmt.Errorf("%w: the document is not an array of records; set records: to the path of the array (for instance result.records)", adapters.ErrMalformedRecord)
		}
		return fmt.Errorf("%w: records path %q does not lead to an array", adapters.ErrMalformedRecord, strings.Join(path, "."))
	}
	return nil
}

var errNotObject = errors.New("record is not a JSON object")

// parseObject decodes a JSON object keeping the order of its keys.
func parseObject(raw []byte) ([]string, []any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errNotObject
	}
	var names []string
	var values []any
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := kt.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		names = append(names, k)
		values = append(values, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("data after the object")
	}
	return names, values, nil
}

// parseFeature turns a GeoJSON Feature into fields: its properties in
// order, then $id and $geometry.
func parseFeature(raw []byte) ([]string, []any, error) {
	var f struct {
		Type       string          `json:"type"`
		ID         any             `json:"id"`
		Geometry   json.RawMessage `json:"geometry"`
		Properties json.RawMessage `json:"properties"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("feature: %v", err)
	}
	if f.Type != "Feature" {
		return nil, nil, fmt.Errorf("member of features has type %q, not Feature", f.Type)
	}
	var names []string
	var values []any
	if len(f.Properties) > 0 && string(f.Properties) != "null" {
		var err error
		if names, values, err = parseObject(f.Properties); err != nil {
			return nil, nil, fmt.Errorf("feature properties: %v", err)
		}
	}
	if f.ID != nil {
		names = append(names, "$id")
		values = append(values, f.ID)
	}
	var g any
	if len(f.Geometry) > 0 {
		gd := json.NewDecoder(bytes.NewReader(f.Geometry))
		gd.UseNumber()
		if err := gd.Decode(&g); err != nil {
			return nil, nil, fmt.Errorf("feature geometry: %v", err)
		}
	}
	names = append(names, "$geometry")
	values = append(values, g)
	return names, values, nil
}
