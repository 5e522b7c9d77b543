package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Data tables join records with a second dataset: a measurement feed that
// names only its sensor gets the sensor's pollutant, station and position
// from the sensor registry. A mapping declares them:
//
//	tables:
//	  sensori:
//	    key: idsensore                     # the table's column records are looked up by
//	    source: {kind: http, url: https://.../ib47-atvt.json, format: json}
//
// and reads a table's field with lookup: sensori.lat (or the template filter
// lookup:sensori.nomestazione). Run loads every table once, before the first
// record, from its source (any source kind); a pipeline can replace a
// table's source (pipeline key tables:, or --table NAME=PATH on the command
// line). A key missing from the table is a lookup miss like any other.

// MaxTableRows bounds a data table.
const MaxTableRows = 1_000_000

type tableSpec struct {
	Key    string        `yaml:"key"`
	Source *SourceConfig `yaml:"source"`
}

func (s *tableSpec) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, s); err != nil {
		return err
	}
	type plain tableSpec
	return n.Decode((*plain)(s))
}

// dataTable is a loaded table: rows by key, fields by normalized name.
type dataTable struct {
	rows map[string]map[string]any
}

// lookupFor returns the lookup table called name: an inline table of
// lookups, or "TABLE.FIELD" of a data table.
func (m *Mapping) lookupFor(name string) *lookupTable {
	if l := m.lookups[name]; l != nil {
		return l
	}
	tbl, field, ok := strings.Cut(name, ".")
	if !ok || field == "" || m.tableSpecs[tbl] == nil {
		return nil
	}
	l := &lookupTable{name: name, table: tbl, field: NormalizeName(field)}
	m.lookups[name] = l
	return l
}

// get returns the value for key.
func (l *lookupTable) get(m *Mapping, key string) (any, bool) {
	if l.table == "" {
		v, ok := l.values[key]
		return v, ok
	}
	t := m.tables[l.table]
	if t == nil {
		return nil, false
	}
	row, ok := t.rows[key]
	if !ok {
		return nil, false
	}
	v, ok := row[l.field]
	return v, ok
}

// TableNames returns the names of the data tables the mapping reads, sorted.
func (m *Mapping) TableNames() []string {
	return slices.Sorted(maps.Keys(m.tableSpecs))
}

// WithTables returns a copy of m with its data tables loaded, each from its
// source or from the one overrides gives for its name. The copy shares
// everything else with m; m itself is not changed (presets are shared).
func (m *Mapping) WithTables(ctx context.Context, overrides map[string]SourceConfig, logger *slog.Logger) (*Mapping, error) {
	for name := range overrides {
		if m.tableSpecs[name] == nil {
			return nil, fmt.Errorf("%w: table %q: the mapping has no such table (tables: %s)", ErrInvalidConfig, name, strings.Join(m.TableNames(), ", "))
		}
	}
	if len(m.tableSpecs) == 0 {
		return m, nil
	}
	c := *m
	c.tables = make(map[string]*dataTable, len(m.tableSpecs))
	for _, name := range m.TableNames() {
		spec := m.tableSpecs[name]
		src, ok := overrides[name]
		if !ok {
			if spec.Source == nil {
				return nil, fmt.Errorf("%w: table %q has no source: give one (pipeline key tables:, or --table %s=FILE)", ErrInvalidConfig, name, name)
			}
			src = *spec.Source
		}
		if src.Logger == nil {
			src.Logger = logger
		}
		t, err := loadTable(ctx, name, spec.Key, src)
		if err != nil {
			return nil, err
		}
		c.tables[name] = t
	}
	return &c, nil
}

func loadTable(ctx context.Context, name, key string, cfg SourceConfig) (*dataTable, error) {
	src, err := NewSource(cfg)
	if err != nil {
		return nil, fmt.Errorf("table %q: %w", name, err)
	}
	defer src.Close()
	te := &tableEmitter{name: name, key: key, t: &dataTable{rows: map[string]map[string]any{}}}
	if err := src.Run(ctx, te); err != nil {
		return nil, fmt.Errorf("table %q: %w", name, err)
	}
	if len(te.t.rows) == 0 {
		return nil, fmt.Errorf("%w: table %q: no rows with a %q (%d records read)", ErrInvalidConfig, name, key, te.read)
	}
	return te.t, nil
}

var errTableFull = errors.New("adapters: table too large")

// tableEmitter collects a table's records.
type tableEmitter struct {
	name, key string
	t         *dataTable
	read      int
}

func (e *tableEmitter) Emit(rec Record) error {
	e.read++
	v, ok := rec.Get(e.key)
	if !ok {
		if rec.Header != nil && rec.Header.Tabular() {
			return fmt.Errorf("%w: %q (columns: %s)", ErrMissingColumn, e.key, strings.Join(rec.Header.Names(), ", "))
		}
		return nil
	}
	k := strings.TrimSpace(valueString(v))
	if k == "" {
		return nil
	}
	if _, dup := e.t.rows[k]; dup {
		return nil // the first row of a key wins
	}
	if len(e.t.rows) >= MaxTableRows {
		return fmt.Errorf("%w: more than %d rows", errTableFull, MaxTableRows)
	}
	row := make(map[string]any, rec.Header.Len())
	for i := 0; i < rec.Header.Len() && i < len(rec.Values); i++ {
		row[NormalizeName(rec.Header.Name(i))] = rec.Values[i]
	}
	e.t.rows[k] = row
	return nil
}

func (e *tableEmitter) Reject(Record, error) error { e.read++; return nil }

func (e *tableEmitter) Sync() error { return nil }

// setTableDir makes the relative paths of table sources relative to dir
// (the directory of the mapping or pipeline file that declares them).
func (m *Mapping) setTableDir(dir string) {
	for _, ts := range m.tableSpecs {
		if ts.Source != nil && ts.Source.Dir == "" {
			ts.Source.Dir = dir
		}
	}
}

// SourceFor returns the source settings that read a file or URL by its
// extension: .csv (and .tsv, .txt), .json, .jsonl/.ndjson, .geojson; an
// http(s) URL is fetched once by the http kind (its format from the
// extension or the answer's Content-Type). Command lines use it for
// --table NAME=PATH.
func SourceFor(pathOrURL string) (SourceConfig, error) {
	if strings.HasPrefix(pathOrURL, "http://") || strings.HasPrefix(pathOrURL, "https://") {
		return NewSourceConfig("http", map[string]any{"url": pathOrURL})
	}
	lower := strings.ToLower(pathOrURL)
	for ext, kind := range map[string]string{".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json",
		".jsonl": "jsonl", ".ndjson": "jsonl", ".geojson": "geojson"} {
		if strings.HasSuffix(lower, ext) {
			return NewSourceConfig(kind, map[string]any{"path": pathOrURL})
		}
	}
	return SourceConfig{}, fmt.Errorf("%w: %q: cannot tell the format from the name (use .csv, .json, .jsonl, .geojson or a URL)", ErrInvalidConfig, pathOrURL)
}
