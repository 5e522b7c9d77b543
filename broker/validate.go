package broker

import (
	"fmt"
	"strings"

	"github.com/piazza-city/piazza/broker/internal/jsonld"
	"github.com/piazza-city/piazza/schemas"
)

// Policy says what the write path does with an entity that does not match
// its Smart Data Model.
type Policy string

// The validation policies.
const (
	// PolicyEnforce rejects the write with 400 BadRequestData listing every violation.
	PolicyEnforce Policy = "enforce"
	// PolicyWarn accepts the write and reports the violations.
	PolicyWarn Policy = "warn"
	// PolicyQuarantine keeps the write, unapplied, in the quarantine stream
	// with its violations, for an operator to replay or drop.
	PolicyQuarantine Policy = "quarantine"
	// PolicyOff does not validate.
	PolicyOff Policy = "off"
)

// ValidPolicy reports whether p is a known policy.
func ValidPolicy(p Policy) bool {
	switch p {
	case PolicyEnforce, PolicyWarn, PolicyQuarantine, PolicyOff:
		return true
	}
	return false
}

// PolicySet is the validation policy of one scope (all tenants, or one).
type PolicySet struct {
	// Default applies to types that have a model; default enforce.
	Default Policy `yaml:"default" json:"default,omitempty"`
	// Types overrides Default per type (its short name, e.g. AirQualityObserved).
	Types map[string]Policy `yaml:"types" json:"types,omitempty"`
	// Unknown is "allow" or "reject" for types without a model; default allow.
	Unknown string `yaml:"unknown" json:"unknown,omitempty"`
}

// ValidationConfig is the validation policy: one set for every tenant,
// and overrides per tenant.
type ValidationConfig struct {
	PolicySet `yaml:",inline"`
	Tenants   map[string]PolicySet `yaml:"tenants" json:"tenants,omitempty"`
}

// Check reports the first problem of the configuration.
func (c ValidationConfig) Check() error {
	check := func(where string, s PolicySet) error {
		if s.Default != "" && !ValidPolicy(s.Default) {
			return fmt.Errorf("%sdefault: unknown policy %q (enforce, warn, quarantine, off)", where, s.Default)
		}
		for t, p := range s.Types {
			if !ValidPolicy(p) {
				return fmt.Errorf("%stypes.%s: unknown policy %q (enforce, warn, quarantine, off)", where, t, p)
			}
		}
		if s.Unknown != "" && s.Unknown != "allow" && s.Unknown != "reject" {
			return fmt.Errorf("%sunknown: %q is neither allow nor reject", where, s.Unknown)
		}
		return nil
	}
	if err := check("validation.", c.PolicySet); err != nil {
		return err
	}
	for name, s := range c.Tenants {
		if err := check("validation.tenants."+name+".", s); err != nil {
			return err
		}
	}
	return nil
}

// Validator checks entities against Smart Data Models under a policy. It is
// safe for concurrent use.
type Validator struct {
	reg *schemas.Registry
	cfg ValidationConfig
	m   *metrics // set by the broker that uses it; nil counts nothing
}

// NewValidator builds a validator over a registry of models.
func NewValidator(reg *schemas.Registry, cfg ValidationConfig) (*Validator, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return &Validator{reg: reg, cfg: cfg}, nil
}

// Registry is the validator's registry of models.
func (v *Validator) Registry() *schemas.Registry { return v.reg }

// verdict is the outcome of validating one entity state.
type verdict struct {
	policy     Policy
	model      string
	violations []schemas.Violation
	err        error // rejection by the unknown-type rule, or an internal failure
}

func (v *Validator) policyFor(tenant, shortType string) (Policy, string) {
	set := v.cfg.PolicySet
	if ts, ok := v.cfg.Tenants[tenant]; ok {
		if ts.Default != "" {
			set.Default = ts.Default
		}
		if ts.Unknown != "" {
			set.Unknown = ts.Unknown
		}
		merged := map[string]Policy{}
		for k, p := range set.Types {
			merged[k] = p
		}
		for k, p := range ts.Types {
			merged[k] = p
		}
		set.Types = merged
	}
	p := set.Default
	if tp, ok := set.Types[shortType]; ok {
		p = tp
	}
	if p == "" {
		p = PolicyEnforce
	}
	unknown := set.Unknown
	if unknown == "" {
		unknown = "allow"
	}
	return p, unknown
}

// check validates the keyValues projection of an entity state against the
// model of each of its types that has one. The strictest policy among them
// applies: enforce over quarantine over warn.
func (v *Validator) check(tenant string, e *Entity) verdict {
	var out verdict
	var kv map[string]any
	for _, t := range e.Types {
		short := shortName(t)
		m, ok := v.reg.Lookup(jsonld.Core().Expand(t))
		policy, unknown := v.policyFor(tenant, short)
		if !ok {
			v.m.validated(short, policy, validUnknown)
			if unknown == "reject" {
				out.err = &Error{Kind: ErrBadRequestData, Entity: e.ID,
					Detail: fmt.Sprintf("entity %s: type %s has no data model, and this broker rejects unknown types", e.ID, t)}
				return out
			}
			continue
		}
		if policy == PolicyOff {
			continue
		}
		if kv == nil {
			kv = KeyValues(e)
		}
		kv["type"] = short
		vs, err := m.Validate(kv)
		if err != nil {
			out.err = fmt.Errorf("%w: validating %s against %s: %v", ErrInternal, e.ID, m.Name, err)
			return out
		}
		v.m.validated(short, policy, validOutcome(vs))
		if len(vs) > 0 && stricter(policy, out.policy) {
			out.policy, out.model, out.violations = policy, m.Name, vs
		}
	}
	return out
}

func stricter(a, b Policy) bool {
	rank := map[Policy]int{"": 0, PolicyOff: 0, PolicyWarn: 1, PolicyQuarantine: 2, PolicyEnforce: 3}
	return rank[a] > rank[b]
}

// shortName is the last segment of a canonical name: the term a Smart Data
// Model's schema uses for it ("https://smartdatamodels.org/dataModel.Environment/no2"
// and "no2" both give "no2").
func shortName(name string) string {
	if i := strings.LastIndexAny(name, "/#"); i >= 0 && i < len(name)-1 {
		return name[i+1:]
	}
	return name
}

// KeyValues is the simplified (keyValues) projection of an entity, with
// attribute names shortened to their last segment as Smart Data Models
// schemas name them. Of several instances of an attribute, the default one
// (or else the first) stands for it.
func KeyValues(e *Entity) map[string]any {
	kv := make(map[string]any, len(e.Attrs)+3)
	kv["id"] = e.ID
	if len(e.Types) == 1 {
		kv["type"] = shortName(e.Types[0])
	} else {
		ts := make([]any, len(e.Types))
		for i, t := range e.Types {
			ts[i] = shortName(t)
		}
		kv["type"] = ts
	}
	for name, is := range e.Attrs {
		if len(is) == 0 {
			continue
		}
		a := is.Instance("")
		if a == nil {
			a = is[0]
		}
		kv[shortName(name)] = simpleValue(a, CanonicalNames)
	}
	return kv
}

// describeViolations renders violations for a ProblemDetails detail.
func describeViolations(id, model string, vs []schemas.Violation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "entity %s does not match the %s data model:", id, model)
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(';')
		}
		p := v.Pointer
		if p == "" {
			p = "/"
		}
		fmt.Fprintf(&b, " %s: %s", p, v.Message)
	}
	return b.String()
}
