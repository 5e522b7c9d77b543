package adapters

import (
	"bytes"
	"context"
	"fmt"
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
	Dir  string
	node *yaml.Node
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
	out := SourceConfig{Kind: c.Kind, Dir: over.Dir}
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
