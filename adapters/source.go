package adapters

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Source reads records from one kind of input. The contract every source
// kind keeps:
//
//   - Construction (its Factory) has no side effects: it decodes and
//     validates the configuration and returns an error naming the bad key,
//     but opens no file and no connection.
//   - Run opens the input, emits records in input order and returns when the
//     input ends (files) or when ctx is done (polled and streaming sources);
//     it returns nil at a normal end, ctx.Err() when cancelled, and the error
//     of Emitter.Emit unchanged when the emitter stops it. A record that
//     cannot be split is handed to Emitter.Reject and Run goes on.
//   - Close releases whatever Run opened. It is safe to call at any time:
//     before Run, after a Run that failed half-way, and more than once.
//
// A Source is used by one goroutine at a time.
type Source interface {
	Run(ctx context.Context, out Emitter) error
	Close() error
}

// Sizer is implemented by sources that know the size in bytes of their input
// once Run has opened it; progress reports use it with Record.Offset.
type Sizer interface {
	Size() int64
}

// Emitter receives what a source reads. Its methods are called from the
// goroutine running Source.Run; an error stops the source.
type Emitter interface {
	// Emit hands over one record.
	Emit(rec Record) error
	// Reject reports a record the source could not split (with Raw and its
	// position, and no values); the pipeline keeps it in the reject file.
	Reject(rec Record, err error) error
	// Sync marks the end of one complete input (a poll of an HTTP feed, a page
	// of a portal): what was emitted so far is delivered before Sync returns.
	Sync() error
}

// Factory builds a source from its configuration, without side effects.
type Factory func(cfg SourceConfig) (Source, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a source kind available under name. It is meant to be called
// from the init function of the package implementing the kind, and panics if
// name is empty, factory is nil or name is already registered.
func Register(name string, factory Factory) {
	if name == "" || factory == nil {
		panic("adapters: Register with an empty name or a nil factory")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("adapters: source kind " + name + " registered twice")
	}
	registry[name] = factory
}

// Kinds returns the names of the registered source kinds, sorted.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ReaderFactory builds a source that reads an input already opened by
// someone else (the body of an HTTP answer, a resource downloaded from a
// portal) in one format. cfg holds the format's own settings (separator,
// records path...); input labels the records in messages. Like Factory it
// has no side effects: it must not read r. The caller keeps ownership of r.
type ReaderFactory func(cfg SourceConfig, input string, r io.Reader) (Source, error)

var formats = map[string]ReaderFactory{}

// RegisterFormat makes a format available to sources that fetch their input
// (http, ckan) under name, which is also the name of the file source kind
// that reads it ("csv", "json"...). Like Register it is meant for init
// functions and panics on an empty name, a nil factory or a duplicate.
func RegisterFormat(name string, factory ReaderFactory) {
	if name == "" || factory == nil {
		panic("adapters: RegisterFormat with an empty name or a nil factory")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := formats[name]; dup {
		panic("adapters: format " + name + " registered twice")
	}
	formats[name] = factory
}

// Formats returns the names of the registered formats, sorted.
func Formats() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(formats))
	for n := range formats {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsFormat reports whether a format is registered under name.
func IsFormat(name string) bool {
	registryMu.RLock()
	defer registryMu.RUnlock()
	_, ok := formats[name]
	return ok
}

// NewReaderSource builds a source reading r in the named format with the
// settings of cfg (its Kind is ignored). It has no side effects.
func NewReaderSource(format string, cfg SourceConfig, input string, r io.Reader) (Source, error) {
	registryMu.RLock()
	f, ok := formats[format]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: format %q (registered: %s)", ErrInvalidConfig, format, strings.Join(Formats(), ", "))
	}
	src, err := f(cfg, input, r)
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", format, err)
	}
	return src, nil
}

// NewSource builds a source of the kind cfg names. It has no side effects.
func NewSource(cfg SourceConfig) (Source, error) {
	registryMu.RLock()
	f, ok := registry[cfg.Kind]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %s; is its package imported? adapters/all imports every built-in kind)",
			ErrUnknownSource, cfg.Kind, strings.Join(Kinds(), ", "))
	}
	src, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Kind, err)
	}
	return src, nil
}

// SourceConfig is the configuration of one source: its kind and the settings
// that kind defines, kept undecoded until the kind's factory decodes them with
// Decode. The zero value has no kind.
type SourceConfig struct {
	// Kind names the registered source kind ("csv", "json", ...).
	Kind string
	// Dir is the directory relative paths are resolved against (the
	// directory of the config file); empty means the working directory.
	Dir string
	// Logger, when set, receives what a long-running source has to say
	// between records (a failed poll that will be retried). Run sets it from
	// Options.Logger; nil discards.
	Logger *slog.Logger
	node   *yaml.Node
}

// Log returns c.Logger, or a logger that discards everything.
func (c SourceConfig) Log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Split returns two configs with c's kind, directory and logger: the first
// with the settings whose keys are listed, the second with the others. A
// source that hands part of its settings to a format (http, ckan) decodes
// the first and passes the second on.
func (c SourceConfig) Split(keys ...string) (own, rest SourceConfig) {
	own = SourceConfig{Kind: c.Kind, Dir: c.Dir, Logger: c.Logger}
	rest = own
	if c.node == nil {
		return own, rest
	}
	a := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: c.node.Line, Column: c.node.Column}
	b := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: c.node.Line, Column: c.node.Column}
	for i := 0; i+1 < len(c.node.Content); i += 2 {
		dst := b
		if slices.Contains(keys, c.node.Content[i].Value) {
			dst = a
		}
		dst.Content = append(dst.Content, c.node.Content[i], c.node.Content[i+1])
	}
	if len(a.Content) > 0 {
		own.node = a
	}
	if len(b.Content) > 0 {
		rest.node = b
	}
	return own, rest
}

// Has reports whether the settings include key.
func (c SourceConfig) Has(key string) bool {
	if c.node == nil {
		return false
	}
	for i := 0; i+1 < len(c.node.Content); i += 2 {
		if c.node.Content[i].Value == key {
			return true
		}
	}
	return false
}

// NewSourceConfig builds a SourceConfig from settings given in code, as a
// command line does: NewSourceConfig("csv", map[string]any{"path": "x.csv"}).
func NewSourceConfig(kind string, settings map[string]any) (SourceConfig, error) {
	cfg := SourceConfig{Kind: kind}
	if len(settings) == 0 {
		return cfg, nil
	}
	var n yaml.Node
	if err := n.Encode(settings); err != nil {
		return cfg, fmt.Errorf("%w: source settings: %v", ErrInvalidConfig, err)
	}
	cfg.node = &n
	return cfg, nil
}

// UnmarshalYAML reads a source block: `kind` and the kind's own settings.
func (c *SourceConfig) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: source must be a mapping with a kind", node.Line)
	}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: node.Line, Column: node.Column}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Value == "kind" {
			c.Kind = v.Value
			continue
		}
		rest.Content = append(rest.Content, k, v)
	}
	if len(rest.Content) > 0 {
		c.node = rest
	} else {
		c.node = nil
	}
	return nil
}

// merged returns c with the settings of over laid on top of its own (over
// wins key by key). Presets use it to give defaults to a pipeline's source.
func (c SourceConfig) merged(over SourceConfig) SourceConfig {
	out := SourceConfig{Kind: c.Kind, Dir: over.Dir, Logger: over.Logger}
	if out.Logger == nil {
		out.Logger = c.Logger
	}
	if over.Kind != "" {
		out.Kind = over.Kind
	}
	if out.Dir == "" {
		out.Dir = c.Dir
	}
	if c.node == nil {
		out.node = over.node
		return out
	}
	if over.node == nil {
		out.node = c.node
		return out
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: over.node.Line}
	seen := map[string]bool{}
	for i := 0; i+1 < len(over.node.Content); i += 2 {
		seen[over.node.Content[i].Value] = true
		n.Content = append(n.Content, over.node.Content[i], over.node.Content[i+1])
	}
	for i := 0; i+1 < len(c.node.Content); i += 2 {
		if !seen[c.node.Content[i].Value] {
			n.Content = append(n.Content, c.node.Content[i], c.node.Content[i+1])
		}
	}
	out.node = n
	return out
}

// With returns a copy of c with one setting replaced or added.
func (c SourceConfig) With(key string, value any) (SourceConfig, error) {
	o, err := NewSourceConfig(c.Kind, map[string]any{key: value})
	if err != nil {
		return c, err
	}
	o.Dir = c.Dir
	return c.merged(o), nil
}

// Decode decodes the kind-specific settings into v (a pointer to a struct
// with yaml tags). Unknown keys are an error that names them.
func (c SourceConfig) Decode(v any) error {
	if c.node == nil {
		return nil
	}
	if err := checkKeys(c.node, v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err := c.node.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// Resolve returns path resolved against Dir when it is relative. URLs and
// "-" (standard input) are returned unchanged.
func (c SourceConfig) Resolve(path string) string {
	if path == "" || path == "-" || c.Dir == "" || filepath.IsAbs(path) || strings.Contains(path, "://") {
		return path
	}
	return filepath.Join(c.Dir, path)
}

// String renders the settings for messages.
func (c SourceConfig) String() string {
	if c.node == nil {
		return c.Kind
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(c.node)
	return c.Kind + " " + strings.TrimSpace(strings.ReplaceAll(b.String(), "\n", "; "))
}

// checkKeys reports keys of a YAML mapping node that the struct v points to
// has no yaml tag for. yaml.v3 loses its KnownFields check inside custom
// unmarshalers, so every type of this package that has one calls checkKeys.
func checkKeys(node *yaml.Node, v any) error {
	if node.Kind != yaml.MappingNode {
		return nil
	}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	known := yamlKeys(t)
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: unknown key %q (known keys: %s)", k.Line, k.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(f.Type)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
	}
	return keys
}
