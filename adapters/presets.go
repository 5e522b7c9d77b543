package adapters

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed presets/*.yaml
var presetFS embed.FS

// Preset is a ready-made mapping shipped in the binary, with the source
// settings its dataset needs (kind, separator...). A Preset is immutable.
type Preset struct {
	// Name is what --preset and a pipeline's mapping key accept.
	Name string `json:"name"`
	// Description is one line for --list-presets.
	Description string `json:"description"`
	// Types are the entity types the preset produces.
	Types []string `json:"types"`
	// Source holds the default source settings; a pipeline's own settings
	// (its path, above all) are laid over them.
	Source SourceConfig `json:"-"`
	// Mapping is the compiled mapping.
	Mapping *Mapping `json:"-"`
}

// mappingFile is the YAML form of a preset or of a mapping file.
type mappingFile struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Source      *SourceConfig `yaml:"source"`
	Mapping     *mappingSpec  `yaml:"mapping"`
}

func (f *mappingFile) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, f); err != nil {
		return err
	}
	type plain mappingFile
	return n.Decode((*plain)(f))
}

// parseMappingFile reads a preset-shaped file (name, description, source,
// mapping) or a bare mapping document.
func parseMappingFile(data []byte, name string) (Preset, error) {
	var probe yaml.Node
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return Preset{}, fmt.Errorf("%w: %s: %v", ErrInvalidMapping, name, err)
	}
	bare := true
	if len(probe.Content) == 1 && probe.Content[0].Kind == yaml.MappingNode {
		for i := 0; i < len(probe.Content[0].Content); i += 2 {
			if probe.Content[0].Content[i].Value == "mapping" {
				bare = false
			}
		}
	}
	var p Preset
	if bare {
		m, err := ParseMapping(data)
		if err != nil {
			return p, fmt.Errorf("%s: %w", name, err)
		}
		p.Name, p.Mapping, p.Types = strings.TrimSuffix(path.Base(name), path.Ext(name)), m, m.Types()
		return p, nil
	}
	var f mappingFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return p, fmt.Errorf("%w: %s: %v", ErrInvalidMapping, name, err)
	}
	if f.Mapping == nil {
		return p, fmt.Errorf("%w: %s: mapping is empty", ErrInvalidMapping, name)
	}
	m, err := compileMapping(f.Mapping)
	if err != nil {
		return p, fmt.Errorf("%s: %w", name, err)
	}
	p = Preset{Name: f.Name, Description: strings.TrimSpace(f.Description), Mapping: m, Types: m.Types()}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(path.Base(name), path.Ext(name))
	}
	if f.Source != nil {
		p.Source = *f.Source
	}
	return p, nil
}

var loadPresets = sync.OnceValues(func() ([]Preset, error) {
	entries, err := presetFS.ReadDir("presets")
	if err != nil {
		return nil, err
	}
	var out []Preset
	for _, e := range entries {
		data, err := presetFS.ReadFile("presets/" + e.Name())
		if err != nil {
			return nil, err
		}
		p, err := parseMappingFile(data, "presets/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
})

// Presets returns the embedded presets sorted by name. The error can only
// come from a broken build (a test parses every preset).
func Presets() ([]Preset, error) {
	ps, err := loadPresets()
	return slices.Clone(ps), err
}

// LookupPreset returns the preset called name.
func LookupPreset(name string) (Preset, error) {
	ps, err := loadPresets()
	if err != nil {
		return Preset{}, err
	}
	for _, p := range ps {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return Preset{}, fmt.Errorf("%w %q (available: %s)", ErrUnknownPreset, name, strings.Join(names, ", "))
}

// LoadMappingFile reads a mapping file: either a bare mapping document or a
// preset-shaped file with name, description, source and mapping keys.
func LoadMappingFile(file string) (Preset, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Preset{}, fmt.Errorf("%w: %v", ErrInvalidMapping, err)
	}
	p, err := parseMappingFile(data, file)
	if err != nil {
		return p, err
	}
	p.Source.Dir = filepath.Dir(file)
	p.Mapping.setTableDir(p.Source.Dir)
	return p, nil
}
