package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/node"
	"go.yaml.in/yaml/v3"
)

// Config is the configuration of 'piazza serve': the schema of its YAML
// file (--config, PIAZZA_CONFIG). Every value comes from, in increasing
// precedence: the defaults (defaultConfig), the file, PIAZZA_* variables,
// and flags. deploy/piazza.example.yaml documents every key, and a test
// keeps it complete. Sections of other components add a field here, a key
// to the example file, and their mapping in nodeConfig.
type Config struct {
	// DataDir holds the embedded NATS JetStream files.
	DataDir    string                  `yaml:"data_dir"`
	HTTP       HTTPConfig              `yaml:"http"`
	NATS       NATSConfig              `yaml:"nats"`
	Contexts   ContextsConfig          `yaml:"contexts"`
	Schemas    SchemasConfig           `yaml:"schemas"`
	Validation broker.ValidationConfig `yaml:"validation"`
	Metrics    MetricsConfig           `yaml:"metrics"`
	Logging    LoggingConfig           `yaml:"logging"`
	Shutdown   ShutdownConfig          `yaml:"shutdown"`
	// MQTT and WebSocket are listeners of the embedded NATS for apps.
	MQTT          ListenerConfig      `yaml:"mqtt"`
	WebSocket     ListenerConfig      `yaml:"websocket"`
	Notifications NotificationsConfig `yaml:"notifications"`
	// Pipelines are pipeline files (the format of piazza ingest --config)
	// that serve runs in process.
	Pipelines []string `yaml:"pipelines"`
}

// ListenerConfig is an optional listener: "off" opens none.
type ListenerConfig struct {
	Addr string `yaml:"addr"`
}

// NotificationsConfig is the delivery of NGSI-LD subscriptions' notifications.
type NotificationsConfig struct {
	Hosts        []string      `yaml:"hosts"`
	MaxAttempts  int           `yaml:"max_attempts"`
	Timeout      time.Duration `yaml:"timeout"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
}

// HTTPConfig is the NGSI-LD API's listener.
type HTTPConfig struct {
	Addr              string        `yaml:"addr"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// NATSConfig is the log: the embedded server, or an existing cluster.
type NATSConfig struct {
	Addr            string `yaml:"addr"`
	URL             string `yaml:"url"`
	Replicas        int    `yaml:"replicas"`
	History         int64  `yaml:"history"`
	CredentialsFile string `yaml:"credentials_file"`
	Token           Secret `yaml:"token"`
	User            string `yaml:"user"`
	Password        Secret `yaml:"password"`
}

// ContextsConfig is the @context loader.
type ContextsConfig struct {
	Files   map[string]string `yaml:"files"`
	Offline bool              `yaml:"offline"`
	Timeout time.Duration     `yaml:"timeout"`
}

// SchemasConfig is where the city's own Smart Data Models are.
type SchemasConfig struct {
	Dir string `yaml:"dir"`
}

// MetricsConfig is the Prometheus and probes listener.
type MetricsConfig struct {
	Addr string `yaml:"addr"`
}

// LoggingConfig is the log output.
type LoggingConfig struct {
	Level     string `yaml:"level"`
	Format    string `yaml:"format"`
	AccessLog bool   `yaml:"access_log"`
}

// ShutdownConfig is the stop on SIGTERM.
type ShutdownConfig struct {
	Grace time.Duration `yaml:"grace"`
	Delay time.Duration `yaml:"delay"`
}

// Secret is a config value that is never printed: --check-config shows it
// as <secret>.
type Secret string

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) {
	if s == "" {
		return "", nil
	}
	return "<secret>", nil
}

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// defaultMetricsAddr is the default metrics listener. Prometheus's own
// ports (9090 server, 9091 pushgateway, 9093 alertmanager) are avoided, and
// so is 9464, the default of OpenTelemetry's Prometheus exporter, which
// other services on the same host may well use. The exporter range
// 9100-9999 is fully allocated; 9126 belongs to the New Relic exporter, a
// bridge to a hosted service that has no reason to run beside a city's
// broker.
const defaultMetricsAddr = ":9126"

// defaultConfig is the configuration with no file, variable or flag.
func defaultConfig() Config {
	return Config{
		DataDir: "./data",
		HTTP: HTTPConfig{Addr: ":1026", MaxBodyBytes: 8 << 20, MaxHeaderBytes: 1 << 20,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second},
		NATS:          NATSConfig{Addr: "127.0.0.1:4222", Replicas: 1},
		Contexts:      ContextsConfig{Timeout: 5 * time.Second},
		Validation:    broker.ValidationConfig{PolicySet: broker.PolicySet{Default: broker.PolicyEnforce, Unknown: "allow"}},
		Metrics:       MetricsConfig{Addr: defaultMetricsAddr},
		Logging:       LoggingConfig{Level: "info", Format: "text"},
		Shutdown:      ShutdownConfig{Grace: 10 * time.Second},
		MQTT:          ListenerConfig{Addr: "off"},
		WebSocket:     ListenerConfig{Addr: "off"},
		Notifications: NotificationsConfig{MaxAttempts: 5, Timeout: 10 * time.Second, RetryBackoff: time.Second},
	}
}

// setting binds a flag, a PIAZZA_* variable, or both, to a config key.
type setting struct {
	key   string // dotted YAML path, e.g. http.addr
	flag  string // "" when only the environment sets it (secrets)
	env   string // default: PIAZZA_ and the flag, upper case, _ for -
	usage string
}

func (s setting) envName() string {
	if s.env != "" {
		return s.env
	}
	return "PIAZZA_" + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_"))
}

// settings are the flags and variables of piazza serve. Secrets have no
// flag: command lines show in process lists.
var settings = []setting{
	{key: "http.addr", flag: "http-addr", usage: "listen address of the NGSI-LD HTTP API"},
	{key: "data_dir", flag: "data-dir", usage: "directory of the embedded NATS JetStream files"},
	{key: "nats.addr", flag: "nats-addr", usage: "client listener of the embedded NATS for apps; 'off' for none"},
	{key: "mqtt.addr", flag: "mqtt-addr", usage: "MQTT 3.1.1 listener of the embedded NATS for apps (topics piazza/<tenant>/<Type>/<id>), e.g. 127.0.0.1:1883; 'off' for none"},
	{key: "websocket.addr", flag: "websocket-addr", usage: "WebSocket (ws://) listener of the embedded NATS for apps in browsers, e.g. 127.0.0.1:8080; 'off' for none"},
	{key: "nats.url", flag: "nats-url", usage: "use an existing NATS (cluster) at this URL instead of the embedded one"},
	{key: "nats.replicas", flag: "replicas", usage: "replicas of each tenant's stream: 1 on one server, 3 on a cluster"},
	{key: "nats.history", flag: "history", usage: "states kept per entity in the log; 0 keeps all"},
	{key: "nats.credentials_file", flag: "nats-credentials", usage: "NATS credentials file (JWT and NKey seed) for --nats-url"},
	{key: "nats.user", env: "PIAZZA_NATS_USER"},
	{key: "nats.password", env: "PIAZZA_NATS_PASSWORD"},
	{key: "nats.token", env: "PIAZZA_NATS_TOKEN"},
	{key: "metrics.addr", flag: "metrics-addr", usage: "listen address of /metrics, /healthz and /readyz; 'off' for none"},
	{key: "logging.level", flag: "log-level", usage: "debug, info, warn or error"},
	{key: "logging.format", flag: "log-format", usage: "text or json"},
	{key: "logging.access_log", flag: "access-log", usage: "log every HTTP request at info level"},
	{key: "contexts.files", flag: "context-files", usage: "serve @context URLs from files offline: URL=PATH,URL=PATH"},
	{key: "contexts.offline", flag: "contexts-offline", usage: "never fetch a @context over the network: only built-in ones and --context-files"},
	{key: "contexts.timeout", flag: "context-timeout", usage: "time allowed to fetch a remote @context"},
	{key: "schemas.dir", flag: "schemas-dir", usage: "directory of the city's own Smart Data Models schemas, <Type>.json"},
	{key: "validation.default", flag: "validation", usage: "policy for entities that fail their data model: enforce, warn, quarantine or off"},
	{key: "validation.unknown", flag: "unknown-types", usage: "entity types without a data model: allow or reject"},
	{key: "shutdown.grace", flag: "shutdown-grace", usage: "time allowed for a stop on SIGTERM: drain in-flight requests, stop every component"},
	{key: "shutdown.delay", flag: "shutdown-delay", usage: "time /readyz answers 503 before the API stops accepting, within the grace"},
	{key: "notifications.hosts", flag: "notification-hosts", usage: "the only hosts notifications may go to: names, *.domain, IPs, CIDRs, comma-separated; empty allows all"},
	{key: "pipelines", flag: "pipelines", usage: "pipeline files (piazza ingest --config format) to run in process, comma-separated"},
}

// serveOptions is what the command line asks beyond the config.
type serveOptions struct {
	configFile  string
	checkConfig bool
}

// loadConfig builds the effective configuration of piazza serve from the
// defaults, the config file, the environment (lookup) and the command line.
// It returns flag.ErrHelp after printing the usage for -h.
func loadConfig(args []string, lookup func(string) (string, bool), stderr io.Writer) (Config, serveOptions, error) {
	var opts serveOptions
	given := map[string]string{}
	fs := serveFlagSet(&opts, given, stderr)
	if err := fs.Parse(args); err != nil {
		return Config{}, opts, err
	}
	if fs.NArg() > 0 {
		return Config{}, opts, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opts.configFile == "" {
		opts.configFile, _ = lookup("PIAZZA_CONFIG")
	}
	cfg := defaultConfig()
	if opts.configFile != "" {
		if err := loadConfigFile(opts.configFile, &cfg); err != nil {
			return Config{}, opts, err
		}
	}
	for _, s := range settings {
		if v, ok := lookup(s.envName()); ok {
			if err := setValue(mustField(&cfg, s.key), v); err != nil {
				return Config{}, opts, fmt.Errorf("%s=%q: %v", s.envName(), v, err)
			}
		}
	}
	for _, s := range settings {
		if v, ok := given[s.flag]; ok {
			if err := setValue(mustField(&cfg, s.key), v); err != nil {
				return Config{}, opts, fmt.Errorf("--%s %q: %v", s.flag, v, err)
			}
		}
	}
	if err := cfg.check(); err != nil {
		if opts.configFile != "" {
			return Config{}, opts, fmt.Errorf("config (%s, environment, flags): %w", opts.configFile, err)
		}
		return Config{}, opts, err
	}
	return cfg, opts, nil
}

// serveFlagSet declares the flags of piazza serve: --config,
// --check-config, and one per setting with a flag. Settings given are
// recorded in given, by flag name.
func serveFlagSet(opts *serveOptions, given map[string]string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.configFile, "config", "", "YAML config file; PIAZZA_* variables and flags override its keys (PIAZZA_CONFIG)")
	fs.BoolVar(&opts.checkConfig, "check-config", false, "print the effective config (secrets hidden) and exit: 0 if it is valid")
	def := defaultConfig()
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		v := mustField(&def, s.key)
		fv := &flagValue{s: s, given: given, isBool: v.Kind() == reflect.Bool}
		if !v.IsZero() {
			fv.def = formatValue(v) // -h shows no default for zero values, as flag does
		}
		fs.Var(fv, s.flag, s.usage+" ("+s.envName()+"; "+s.key+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: piazza serve [--config FILE] [flags]\n\n"+
			"Runs Piazza: an embedded NATS server with JetStream in --data-dir, the NGSI-LD API on --http-addr,\n"+
			"Prometheus metrics and probes on --metrics-addr. Settings come from, in increasing precedence:\n"+
			"the defaults, the config file (deploy/piazza.example.yaml documents every key), PIAZZA_*\n"+
			"variables, and these flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// flagValue records a flag's text; it is applied after the file and the
// environment, so that flags win. Set checks the text at once, so that a
// bad value fails like any bad flag.
type flagValue struct {
	s      setting
	given  map[string]string
	def    string
	isBool bool
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.def
}

func (f *flagValue) Set(v string) error {
	scratch := defaultConfig()
	if err := setValue(mustField(&scratch, f.s.key), v); err != nil {
		return err
	}
	f.given[f.s.flag] = v
	return nil
}

// IsBoolFlag lets boolean flags stand alone (--access-log).
func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// loadConfigFile decodes a YAML config file over cfg. Unknown keys and
// values of the wrong type are errors naming the key and its line.
func loadConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := decodeConfig(data, cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func decodeConfig(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty, or only comments
		}
		return yamlError(err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return fmt.Errorf("holds more than one YAML document")
	}
	return nil
}

var (
	unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type ([\w.]+)`)
	badValue     = regexp.MustCompile("line (\\d+): cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// yamlError rewrites the YAML decoder's messages in the config's terms:
// section keys instead of Go type names.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	sections := sectionNames()
	var out []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			where := "at the top level"
			if s := sections[m[3]]; s != "" {
				where = "in " + s
			}
			out = append(out, fmt.Sprintf("line %s: unknown key %q %s", m[1], m[2], where))
			continue
		}
		if m := badValue.FindStringSubmatch(e); m != nil {
			want := strings.TrimPrefix(m[4], "time.")
			if want == "Duration" {
				want = `a duration such as "5s" or "1m30s"`
			}
			out = append(out, fmt.Sprintf("line %s: %q is not %s", m[1], m[3], article(want)))
			continue
		}
		out = append(out, e)
	}
	return errors.New(strings.Join(out, "; "))
}

func article(t string) string {
	switch {
	case strings.HasPrefix(t, "a "):
		return t
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "float64":
		return "a number"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a " + t
}

// sectionNames maps the Go type of each section (as the YAML decoder names
// it, e.g. main.HTTPConfig) to its key path.
func sectionNames() map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, inline := yamlName(f)
			if name == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct {
				p := join(path, name) + ".<name>"
				out[typeName(ft.Elem())] = p
				walk(ft.Elem(), p)
				continue
			}
			if ft.Kind() != reflect.Struct || ft == reflect.TypeOf(time.Duration(0)) {
				continue
			}
			p := join(path, name)
			if inline {
				p = path
			} else {
				out[typeName(ft)] = p
			}
			walk(ft, p)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

func typeName(t reflect.Type) string { return t.String() }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// yamlName is a struct field's key, and whether it is inlined.
func yamlName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	inline := strings.Contains(opts, "inline")
	if name == "" && !inline {
		name = strings.ToLower(f.Name)
	}
	return name, inline
}

// configKeys lists every key of the config schema as dotted paths, in
// file order. Mappings of names (validation.types, contexts.files) are
// keys themselves; their entries are the operator's.
func configKeys() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, inline := yamlName(f)
			if name == "-" || !f.IsExported() {
				continue
			}
			if inline {
				walk(f.Type, path)
				continue
			}
			p := join(path, name)
			out = append(out, p)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, p)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// mustField returns the field of cfg at a dotted key path; the settings
// table is checked by a test, so a bad path is a programming error.
func mustField(cfg *Config, key string) reflect.Value {
	v, err := field(reflect.ValueOf(cfg).Elem(), strings.Split(key, "."))
	if err != nil {
		panic(err)
	}
	return v
}

func field(v reflect.Value, path []string) (reflect.Value, error) {
	if len(path) == 0 {
		return v, nil
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config key %s: not a section", path[0])
	}
	t := v.Type()
	for i := range t.NumField() {
		name, inline := yamlName(t.Field(i))
		if inline {
			if f, err := field(v.Field(i), path); err == nil {
				return f, nil
			}
			continue
		}
		if name == path[0] {
			return field(v.Field(i), path[1:])
		}
	}
	return reflect.Value{}, fmt.Errorf("no config key %s", path[0])
}

var durationType = reflect.TypeOf(time.Duration(0))

// setValue sets a config field from the text of a flag or variable.
func setValue(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration such as \"5s\" or \"1m30s\"")
		}
		v.SetInt(int64(d))
		return nil
	case v.Kind() == reflect.String:
		v.SetString(s)
		return nil
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		v.SetBool(b)
		return nil
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
		return nil
	case v.Kind() == reflect.Map && v.Type().Elem().Kind() == reflect.String:
		m, err := parsePairs(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var l []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				l = append(l, p)
			}
		}
		v.Set(reflect.ValueOf(l))
		return nil
	}
	return fmt.Errorf("cannot be set from text (%s)", v.Type())
}

// formatValue is the text of a config field, as a flag shows its default.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Map:
		var parts []string
		for _, k := range v.MapKeys() {
			parts = append(parts, k.String()+"="+v.MapIndex(k).String())
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	case v.Kind() == reflect.Slice:
		var parts []string
		for i := range v.Len() {
			parts = append(parts, v.Index(i).String())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// parsePairs reads URL=PATH,URL=PATH.
func parsePairs(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not URL=PATH", pair)
		}
		out[k] = v
	}
	return out, nil
}

// check reports the first problem of a configuration, naming its key.
func (c *Config) check() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	checkAddr := func(key, addr string, offOK bool) {
		if offOK && addr == "off" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not a host:port address (%v)", addr, err)
		}
	}
	checkAddr("http.addr", c.HTTP.Addr, false)
	checkAddr("nats.addr", c.NATS.Addr, true)
	checkAddr("mqtt.addr", c.MQTT.Addr, true)
	checkAddr("websocket.addr", c.WebSocket.Addr, true)
	if c.NATS.URL != "" {
		for _, l := range []struct{ key, addr string }{{"mqtt.addr", c.MQTT.Addr}, {"websocket.addr", c.WebSocket.Addr}} {
			if l.addr != "off" {
				bad(l.key, "is a listener of the embedded NATS: with nats.url, enable it on the NATS cluster")
			}
		}
	}
	checkAddr("metrics.addr", c.Metrics.Addr, true)
	if c.Notifications.MaxAttempts < 1 {
		bad("notifications.max_attempts", "must be at least 1")
	}
	if _, err := node.LoadPipelineFiles(c.Pipelines); err != nil {
		bad("pipelines", "%v", err)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("http.max_body_bytes", "must be positive")
	}
	if c.HTTP.MaxHeaderBytes <= 0 {
		bad("http.max_header_bytes", "must be positive")
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout},
		{"contexts.timeout", c.Contexts.Timeout}, {"shutdown.grace", c.Shutdown.Grace},
		{"notifications.timeout", c.Notifications.Timeout}, {"notifications.retry_backoff", c.Notifications.RetryBackoff}} {
		if d.d <= 0 {
			bad(d.key, "must be a positive duration, such as \"5s\"")
		}
	}
	if c.Shutdown.Delay < 0 || (c.Shutdown.Grace > 0 && c.Shutdown.Delay >= c.Shutdown.Grace) {
		bad("shutdown.delay", "must be at least 0 and shorter than shutdown.grace (%v)", c.Shutdown.Grace)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		bad("nats.replicas", "must be 1 to 5 (JetStream's limit), not %d", c.NATS.Replicas)
	}
	if c.NATS.History < 0 {
		bad("nats.history", "must be 0 (keep all) or more")
	}
	if c.NATS.URL == "" {
		for _, s := range []struct {
			key string
			set bool
		}{{"nats.credentials_file", c.NATS.CredentialsFile != ""}, {"nats.token", c.NATS.Token != ""}, {"nats.user", c.NATS.User != ""}} {
			if s.set {
				bad(s.key, "is for an external NATS: set nats.url too (the embedded server needs no credentials)")
			}
		}
	}
	if c.NATS.Token != "" && c.NATS.User != "" {
		bad("nats.token", "and nats.user are two ways to authenticate: set one")
	}
	if c.NATS.Password != "" && c.NATS.User == "" {
		bad("nats.password", "needs nats.user")
	}
	if f := c.NATS.CredentialsFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			bad("nats.credentials_file", "%v", err)
		}
	}
	for u, p := range c.Contexts.Files {
		if _, err := os.Stat(p); err != nil {
			bad("contexts.files", "%s: %v", u, err)
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Logging.Level)); err != nil {
		bad("logging.level", "%q: use debug, info, warn or error", c.Logging.Level)
	}
	if c.Logging.Format != "text" && c.Logging.Format != "json" {
		bad("logging.format", "%q: use text or json", c.Logging.Format)
	}
	if err := c.Validation.Check(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; ")) // one line, every problem
}

// nodeConfig is the node's configuration for this one.
func (c *Config) nodeConfig() node.Config {
	return node.Config{
		HTTPAddr: c.HTTP.Addr, MaxBodyBytes: c.HTTP.MaxBodyBytes, MaxHeaderBytes: c.HTTP.MaxHeaderBytes,
		ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout, ReadTimeout: c.HTTP.ReadTimeout,
		WriteTimeout: c.HTTP.WriteTimeout, IdleTimeout: c.HTTP.IdleTimeout,
		MetricsAddr: c.Metrics.Addr, MQTTAddr: c.MQTT.Addr, WebSocketAddr: c.WebSocket.Addr,
		DataDir: c.DataDir, NATSAddr: c.NATS.Addr, NATSURL: c.NATS.URL, Replicas: c.NATS.Replicas, History: c.NATS.History,
		NATSCredentials: c.NATS.CredentialsFile, NATSToken: string(c.NATS.Token),
		NATSUser: c.NATS.User, NATSPassword: string(c.NATS.Password),
		ContextFiles: c.Contexts.Files, ContextsOffline: c.Contexts.Offline, ContextTimeout: c.Contexts.Timeout,
		SchemasDir: c.Schemas.Dir, Validation: c.Validation,
		ShutdownGrace: c.Shutdown.Grace, ShutdownDelay: c.Shutdown.Delay,
		AccessLog:         c.Logging.AccessLog,
		NotificationHosts: c.Notifications.Hosts, NotificationMaxAttempts: c.Notifications.MaxAttempts,
		NotificationTimeout: c.Notifications.Timeout, NotificationRetryBackoff: c.Notifications.RetryBackoff,
		Pipelines: c.Pipelines,
	}
}

// printConfig writes the effective configuration as YAML, secrets hidden.
func printConfig(w io.Writer, c Config) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	return enc.Close()
}

// unknownEnv lists the PIAZZA_* variables of environ that no setting reads,
// so that a misspelt one is reported instead of silently ignored. The
// variables Kubernetes derives from a Service named piazza
// (PIAZZA_SERVICE_HOST, PIAZZA_PORT_1026_TCP...) are not reported.
func unknownEnv(environ []string) []string {
	known := map[string]bool{"PIAZZA_CONFIG": true}
	for _, s := range settings {
		known[s.envName()] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PIAZZA_") || known[name] || kubernetesServiceVar(name) {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// kubernetesServiceVar reports whether name is one of the variables
// Kubernetes sets for a Service (docker links use the same names).
func kubernetesServiceVar(name string) bool {
	rest := strings.TrimPrefix(name, "PIAZZA_")
	for _, p := range []string{"SERVICE_HOST", "SERVICE_PORT", "PORT"} {
		if rest == p || strings.HasPrefix(rest, p+"_") {
			return true
		}
	}
	return false
}
