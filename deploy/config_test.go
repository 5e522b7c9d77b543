package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestPiazzaAcceptsDeployConfigs runs the real piazza binary with
// --check-config on the settings each deployment gives it: the image's ENV
// plus the compose service's environment, and the image's ENV plus the
// Kubernetes ConfigMap's file and the Deployment's env and args. Piazza
// must accept them (unknown config keys and bad values are errors), every
// PIAZZA_* variable must be one piazza knows (it ignores others, so a typo
// would go unnoticed), and the effective config must listen where the
// probes, the Services and Prometheus look.
func TestPiazzaAcceptsDeployConfigs(t *testing.T) {
	bin := piazzaBinary(t)
	known := knownVariables(t, bin)
	imageEnv, err := dockerfileEnv(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) (env map[string]string, args []string)
		wantErr string
	}{
		{name: "compose", setup: func(t *testing.T) (map[string]string, []string) {
			return composeEnv(t, composeFile, "piazza-1"), []string{"serve"}
		}},
		{name: "kubernetes", setup: func(t *testing.T) (map[string]string, []string) {
			return kubernetesConfig(t, filepath.Join(k8sDir, "configmap.yaml"))
		}},
		{name: "compose with a misspelt variable", wantErr: "PIAZZA_METRIC_ADDR", setup: func(t *testing.T) (map[string]string, []string) {
			return composeEnv(t, "testdata/compose-env-typo.bad.yml", "piazza"), []string{"serve"}
		}},
		{name: "ConfigMap with an unknown key", wantErr: "address", setup: func(t *testing.T) (map[string]string, []string) {
			return kubernetesConfig(t, "testdata/configmap-unknown-key.bad.yaml")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, args := tc.setup(t)
			merged := map[string]string{}
			for k, v := range imageEnv {
				merged[k] = v
			}
			for k, v := range env {
				merged[k] = v
			}
			errs := checkConfig(bin, known, merged, args)
			if testing.Verbose() && tc.wantErr != "" {
				t.Logf("rejected: %v", errors.Join(errs...))
			}
			checkWant(t, errs, tc.wantErr)
		})
	}
}

// checkConfig runs piazza with args and --check-config in an environment
// of only env, and checks the effective config it prints.
func checkConfig(bin string, known map[string]bool, env map[string]string, args []string) []error {
	var errs []error
	cmdEnv := []string{"HOME=" + os.TempDir()}
	for _, k := range sortedKeys(env) {
		if strings.HasPrefix(k, "PIAZZA_") && !known[k] {
			errs = append(errs, fmt.Errorf("%s is not a variable piazza serve reads", k))
		}
		cmdEnv = append(cmdEnv, k+"="+env[k])
	}
	cmd := exec.Command(bin, append(slices.Clone(args), "--check-config")...)
	cmd.Env = cmdEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return append(errs, fmt.Errorf("piazza %s --check-config: %v: %s", strings.Join(args, " "), err, stderr.String()))
	}
	var cfg struct {
		HTTP struct {
			Addr string `yaml:"addr"`
		} `yaml:"http"`
		Metrics struct {
			Addr string `yaml:"addr"`
		} `yaml:"metrics"`
		NATS struct {
			URL      string `yaml:"url"`
			Replicas int    `yaml:"replicas"`
		} `yaml:"nats"`
	}
	if err := yaml.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		return append(errs, fmt.Errorf("reading the effective config: %w\n%s", err, stdout.String()))
	}
	if !strings.HasSuffix(cfg.HTTP.Addr, ":"+apiPort) {
		errs = append(errs, fmt.Errorf("http.addr %q, want port %s", cfg.HTTP.Addr, apiPort))
	}
	if !strings.HasSuffix(cfg.Metrics.Addr, ":"+metricsPort) {
		errs = append(errs, fmt.Errorf("metrics.addr %q, want port %s", cfg.Metrics.Addr, metricsPort))
	}
	if cfg.NATS.URL == "" || cfg.NATS.Replicas != 3 {
		errs = append(errs, fmt.Errorf("nats.url %q with %d replicas, want a cluster URL and 3", cfg.NATS.URL, cfg.NATS.Replicas))
	}
	return errs
}

// composeEnv is the environment a compose service sets.
func composeEnv(t *testing.T, file, service string) map[string]string {
	t.Helper()
	doc, err := readYAML(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	switch e := dig(doc, "services", service, "environment").(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case nil:
		t.Fatalf("%s: service %s has no environment", file, service)
	default:
		t.Fatalf("%s: service %s: write environment as a map", file, service)
	}
	return env
}

// kubernetesConfig writes the piazza.yaml of a ConfigMap file to a
// temporary file and returns the Deployment's env and args, its --config
// pointed at that file.
func kubernetesConfig(t *testing.T, configMap string) (map[string]string, []string) {
	t.Helper()
	ms, errs := checkManifests(configMap)
	if len(errs) > 0 || len(ms) != 1 {
		t.Fatalf("%s: %v", configMap, errs)
	}
	cfgFile := filepath.Join(t.TempDir(), "piazza.yaml")
	if err := os.WriteFile(cfgFile, []byte(str(ms[0].obj, "data", "piazza.yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	deps, errs := checkManifests(filepath.Join(k8sDir, "deployment.yaml"))
	if len(errs) > 0 || len(deps) != 1 {
		t.Fatalf("deployment.yaml: %v", errs)
	}
	c := asSlice(dig(deps[0].obj, "spec", "template", "spec", "containers"))[0]
	env := map[string]string{}
	for _, e := range asSlice(dig(c, "env")) {
		env[str(e, "name")] = str(e, "value")
	}
	var args []string
	for _, a := range asSlice(dig(c, "args")) {
		args = append(args, fmt.Sprint(a))
	}
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the Deployment's args %v do not pass --config FILE", args)
	}
	args[i+1] = cfgFile
	return env, args
}

// knownVariables lists the PIAZZA_* variables 'piazza serve -h' documents.
func knownVariables(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	known := map[string]bool{}
	for _, v := range regexp.MustCompile(`PIAZZA_[A-Z0-9_]+`).FindAllString(string(out), -1) {
		known[v] = true
	}
	if !known["PIAZZA_NATS_URL"] {
		t.Fatalf("piazza serve -h documents no PIAZZA_NATS_URL:\n%s", out)
	}
	return known
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// piazzaBinary builds cmd/piazza once per test binary, with the race
// detector as cmd/piazza's own process tests do, so that CI's build cache
// serves both.
func piazzaBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the piazza binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "piazza-deploy-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "piazza")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/piazza").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
