package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/node"
	"go.yaml.in/yaml/v3"
)

const exampleConfig = "../../deploy/piazza.example.yaml"

func writeConfigFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is a lookup over a fixed set of variables.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func yamlOf(t *testing.T, c Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := printConfig(&b, c); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestExampleConfig loads deploy/piazza.example.yaml strictly and checks
// that it states the defaults, so that the example cannot drift from the
// code.
func TestExampleConfig(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--config", exampleConfig}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := yamlOf(t, cfg), yamlOf(t, defaultConfig()); got != want {
		t.Fatalf("the example's values are not the defaults:\n%s\nwant\n%s", got, want)
	}
}

// TestExampleDocumentsEveryKey checks that every key of the config schema
// is in the example file with a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			documented[p] = k.HeadComment != "" || k.LineComment != ""
			walk(v, p)
		}
	}
	walk(doc.Content[0], "")
	for _, key := range configKeys() {
		t.Run(key, func(t *testing.T) {
			has, ok := documented[key]
			if !ok {
				t.Fatalf("%s is not in %s", key, exampleConfig)
			}
			if !has {
				t.Fatalf("%s has no comment in %s", key, exampleConfig)
			}
		})
	}
}

// TestEveryFlagHasAKey checks that each flag of piazza serve (but --config
// and --check-config) sets a config key, and that the flag, its variable
// and the file agree on it.
func TestEveryFlagHasAKey(t *testing.T) {
	var opts serveOptions
	fs := serveFlagSet(&opts, map[string]string{}, io.Discard)
	keys := configKeys()
	bySetting := map[string]setting{}
	for _, s := range settings {
		bySetting[s.flag] = s
		if !slices.Contains(keys, s.key) {
			t.Errorf("setting %s names no config key", s.key)
		}
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || f.Name == "check-config" {
			return
		}
		n++
		s, ok := bySetting[f.Name]
		if !ok {
			t.Errorf("--%s has no config key", f.Name)
			return
		}
		if !strings.Contains(f.Usage, s.envName()) || !strings.Contains(f.Usage, s.key) {
			t.Errorf("--%s usage does not name %s and %s: %q", f.Name, s.envName(), s.key, f.Usage)
		}
	})
	if n < 19 {
		t.Fatalf("only %d flags seen", n)
	}
}

// TestPrecedence checks defaults < file < environment < flags, key by key.
func TestPrecedence(t *testing.T) {
	file := writeConfigFile(t, "piazza.yaml", `
http:
  addr: "127.0.0.1:1111"
logging:
  level: warn
shutdown:
  grace: 20s
validation:
  default: warn
  tenants:
    mantova:
      default: quarantine
      types: {AirQualityObserved: off}
`)
	cases := []struct {
		name  string
		args  []string
		env   []string
		check func(c Config) bool
	}{
		{"default", nil, nil, func(c Config) bool { return c.HTTP.Addr == ":1026" && c.Shutdown.Grace == 10*time.Second }},
		{"file over default", []string{"--config", file}, nil, func(c Config) bool {
			return c.HTTP.Addr == "127.0.0.1:1111" && c.Logging.Level == "warn" && c.Shutdown.Grace == 20*time.Second &&
				c.Validation.Default == "warn" && c.Validation.Tenants["mantova"].Types["AirQualityObserved"] == "off" &&
				c.Logging.Format == "text" // untouched keys keep their default
		}},
		{"config file from the environment", nil, []string{"PIAZZA_CONFIG", file}, func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:1111" }},
		{"environment over file", []string{"--config", file}, []string{"PIAZZA_HTTP_ADDR", "127.0.0.1:2222", "PIAZZA_SHUTDOWN_GRACE", "30s"},
			func(c Config) bool {
				return c.HTTP.Addr == "127.0.0.1:2222" && c.Shutdown.Grace == 30*time.Second && c.Logging.Level == "warn"
			}},
		{"flag over environment", []string{"--config", file, "--http-addr", "127.0.0.1:3333", "--validation", "off"},
			[]string{"PIAZZA_HTTP_ADDR", "127.0.0.1:2222"}, func(c Config) bool {
				return c.HTTP.Addr == "127.0.0.1:3333" && c.Validation.Default == "off" &&
					c.Validation.Tenants["mantova"].Default == "quarantine" // the file's tenant policies stay
			}},
		{"boolean flag alone", []string{"--access-log", "--contexts-offline"}, nil, func(c Config) bool {
			return c.Logging.AccessLog && c.Contexts.Offline
		}},
		{"secrets from the environment", nil, []string{"PIAZZA_NATS_URL", "nats://n:4222", "PIAZZA_NATS_USER", "piazza", "PIAZZA_NATS_PASSWORD", "s3cret"},
			func(c Config) bool { return c.NATS.User == "piazza" && c.NATS.Password == "s3cret" }},
		{"lists from a flag and a variable", []string{"--notification-hosts", "a.org, *.b.org,10.0.0.0/8"}, []string{"PIAZZA_NOTIFICATION_HOSTS", "ignored.org"},
			func(c Config) bool {
				return slices.Equal(c.Notifications.Hosts, []string{"a.org", "*.b.org", "10.0.0.0/8"})
			}},
		{"context files", []string{"--context-files", "https://x.org/c.jsonld=" + file}, nil, func(c Config) bool {
			return c.Contexts.Files["https://x.org/c.jsonld"] == file
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := loadConfig(tc.args, env(tc.env...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config:\n%s", yamlOf(t, c))
			}
		})
	}
}

// TestConfigErrors checks that bad configurations fail with an error that
// names the key (and the line, in a file) or the variable or flag.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		file string
		args []string
		env  []string
		want []string
	}{
		{"unknown top-level key", "htpp:\n  addr: x\n", nil, nil, []string{`line 1: unknown key "htpp" at the top level`}},
		{"unknown nested key", "http:\n  addr: \":1\"\n  adr: x\n", nil, nil, []string{`line 3: unknown key "adr" in http`}},
		{"unknown key in a tenant", "validation:\n  tenants:\n    mn:\n      defualt: warn\n", nil, nil, []string{`line 4: unknown key "defualt" in validation.tenants.<name>`}},
		{"bad duration", "shutdown:\n  grace: 5x\n", nil, nil, []string{`line 2: "5x" is not a duration such as "5s"`}},
		{"duration without unit", "shutdown:\n  grace: 5\n", nil, nil, []string{`line 2`, "duration"}},
		{"not an integer", "nats:\n  replicas: three\n", nil, nil, []string{`line 2: "three" is not an integer`}},
		{"replicas out of range", "nats:\n  replicas: 7\n", nil, nil, []string{"nats.replicas: must be 1 to 5"}},
		{"bad policy", "validation:\n  tenants:\n    mn:\n      types: {AirQualityObserved: reject}\n", nil, nil,
			[]string{`validation.tenants.mn.types.AirQualityObserved: unknown policy "reject"`}},
		{"bad unknown-types", "validation:\n  unknown: maybe\n", nil, nil, []string{`validation.unknown: "maybe" is neither allow nor reject`}},
		{"bad address", "metrics:\n  addr: 9126\n", nil, nil, []string{`metrics.addr: "9126" is not a host:port`}},
		{"credentials without url", "nats:\n  token: abc\n", nil, nil, []string{"nats.token: is for an external NATS"}},
		{"delay past grace", "shutdown:\n  grace: 5s\n  delay: 6s\n", nil, nil, []string{"shutdown.delay: must be"}},
		{"two documents", "data_dir: a\n---\ndata_dir: b\n", nil, nil, []string{"more than one YAML document"}},
		{"bad level from the environment", "", nil, []string{"PIAZZA_LOG_LEVEL", "loud"}, []string{`logging.level: "loud"`}},
		{"bad duration from the environment", "", nil, []string{"PIAZZA_SHUTDOWN_GRACE", "soon"}, []string{`PIAZZA_SHUTDOWN_GRACE="soon": not a duration`}},
		{"bad flag value", "", []string{"--replicas", "x"}, nil, []string{`invalid value "x" for flag -replicas`}},
		{"missing file", "", []string{"--config", "/nonexistent/piazza.yaml"}, nil, []string{"config file", "no such file"}},
		{"missing pipeline file", "pipelines: [/nonexistent/p.yaml]\n", nil, nil, []string{"pipelines: pipelines file /nonexistent/p.yaml"}},
		{"no notification attempts", "notifications:\n  max_attempts: 0\n", nil, nil, []string{"notifications.max_attempts: must be at least 1"}},
		{"hosts is a list", "notifications:\n  hosts: example.org\n", nil, nil, []string{`line 2: "example...`, "is not a list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeConfigFile(t, "piazza.yaml", tc.file)}, args...)
			}
			_, _, err := loadConfig(args, env(tc.env...), io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestCheckConfig runs 'piazza serve --check-config': the effective
// config on stdout with secrets hidden and exit 0; a bad config exits
// non-zero with the error.
func TestCheckConfig(t *testing.T) {
	file := writeConfigFile(t, "piazza.yaml", "nats:\n  url: nats://nats-1:4222\n  user: piazza\n  password: hunter2\nlogging:\n  format: json\n")
	t.Setenv("PIAZZA_NATS_PASSWORD", "from-env-s3cret")
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--config", file, "--check-config", "--replicas", "3"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"password: <secret>", "user: piazza", "replicas: 3", "format: json", "grace: 10s", "addr: :9126"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "hunter2") || strings.Contains(s, "s3cret") {
		t.Fatalf("a secret is printed:\n%s", s)
	}
	// The output is itself a valid config file.
	var c Config
	if err := decodeConfig(out.Bytes(), &c); err != nil {
		t.Fatalf("printed config does not load: %v", err)
	}

	bad := writeConfigFile(t, "bad.yaml", "http:\n  adr: x\n")
	out.Reset()
	errOut.Reset()
	if code := run([]string{"serve", "--config", bad, "--check-config"}, &out, &errOut); code == 0 {
		t.Fatal("bad config: exit 0")
	}
	if !strings.Contains(errOut.String(), `unknown key "adr" in http`) || out.Len() != 0 {
		t.Fatalf("bad config: stdout %q stderr %q", out.String(), errOut.String())
	}
}

// FuzzConfigFile feeds arbitrary YAML to the config decoder and checker:
// an error or a config, never a panic.
func FuzzConfigFile(f *testing.F) {
	if data, err := os.ReadFile(exampleConfig); err == nil {
		f.Add(data)
	}
	for _, s := range []string{"", "http: {addr: x}", "validation:\n  tenants:\n    a: {types: {T: warn}}", "shutdown: {grace: -1s}", "- a\n- b", "nats: {replicas: 99999999999999999999}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaultConfig()
		if err := decodeConfig(data, &c); err != nil {
			return
		}
		_ = c.check()
		var b bytes.Buffer
		_ = printConfig(&b, c)
	})
}

// TestNewLogger checks the formats and levels of the log.
func TestNewLogger(t *testing.T) {
	cases := []struct {
		level, format string
		want          []string // substrings of the output
		not           []string
		err           bool
	}{
		{"info", "json", []string{`"level":"INFO","msg":"shown"`, `"k":"v"`}, []string{"hidden"}, false},
		{"debug", "text", []string{"level=DEBUG msg=hidden", "level=INFO msg=shown k=v"}, nil, false},
		{"warn", "text", nil, []string{"shown", "hidden"}, false},
		{"loud", "text", nil, nil, true},
		{"info", "xml", nil, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.level+" "+tc.format, func(t *testing.T) {
			var b bytes.Buffer
			l, err := newLogger(&b, tc.level, tc.format)
			if tc.err {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("hidden")
			l.Info("shown", "k", "v")
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q: %s", w, b.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("output has %q: %s", w, b.String())
				}
			}
		})
	}
}

// TestValidationPoliciesFromConfig checks that the validation section of a
// config file reaches the write path: policies per tenant and per type.
func TestValidationPoliciesFromConfig(t *testing.T) {
	file := writeConfigFile(t, "piazza.yaml", `
validation:
  default: enforce
  unknown: allow
  tenants:
    mantova:
      default: quarantine
    sandbox:
      types:
        AirQualityObserved: "off"
      unknown: reject
`)
	cfg, _, err := loadConfig([]string{"--config", file, "--http-addr", "127.0.0.1:0", "--metrics-addr", "off",
		"--nats-addr", "off", "--data-dir", t.TempDir()}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), cfg.nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	const badAQ = `{"id":"urn:ngsi-ld:AirQualityObserved:MN-1","type":"AirQualityObserved","dateObserved":"2024-01-10T10:00:00","tsp":73.3}`
	for _, tc := range []struct {
		tenant, body string
		status       int
		says         string
	}{
		{"", badAQ, 400, "BadRequestData"},
		{"mantova", badAQ, 400, "quarantine"},
		{"sandbox", badAQ, 201, ""},
		{"sandbox", `{"id":"urn:x:1","type":"Bench"}`, 400, "rejects unknown types"},
		{"", `{"id":"urn:x:1","type":"Bench"}`, 201, ""},
	} {
		t.Run(tc.tenant+" "+tc.body[:30], func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/ngsi-ld/v1/entities", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.tenant != "" {
				req.Header.Set("NGSILD-Tenant", tc.tenant)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.says) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestServeBadConfigOneLine checks that piazza serve with a bad config
// stops before starting anything, with one line naming every problem and
// a non-zero exit.
func TestServeBadConfigOneLine(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "http:\n  addr: \":0\"\n  max_body: 1\n", []string{`line 3: unknown key "max_body" in http`}},
		{"bad duration", "shutdown:\n  grace: soon\n", []string{`line 2: "soon" is not a duration`}},
		{"two problems", "nats:\n  replicas: 0\nlogging:\n  format: xml\n", []string{"nats.replicas: must be 1 to 5", `logging.format: "xml"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"serve", "--config", writeConfigFile(t, "piazza.yaml", tc.file), "--data-dir", t.TempDir()}, &out, &errOut)
			if code == 0 {
				t.Fatal("exit 0")
			}
			msg := errOut.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "piazza: ") {
				t.Fatalf("not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("%q does not say %q", msg, w)
				}
			}
		})
	}
}

func TestUnknownEnv(t *testing.T) {
	got := unknownEnv([]string{
		"PIAZZA_HTTP_ADDR=:1026", "PIAZZA_CONFIG=/etc/piazza.yaml", "PIAZZA_NATS_PASSWORD=x",
		"PIAZZA_HTTP_ADRR=:1", "PIAZZA_VALIDATON=warn", // typos
		"PIAZZA_SERVICE_HOST=10.0.0.1", "PIAZZA_PORT=tcp://10.0.0.1:1026", "PIAZZA_PORT_1026_TCP_ADDR=10.0.0.1", // Kubernetes
		"HOME=/root", "PIAZZAX=1",
	})
	if want := "PIAZZA_HTTP_ADRR PIAZZA_VALIDATON"; strings.Join(got, " ") != want {
		t.Fatalf("unknownEnv = %v, want %s", got, want)
	}
}
