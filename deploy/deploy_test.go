package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/piazza-city/piazza/broker/node"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/xeipuuv/gojsonschema"
	"go.yaml.in/yaml/v3"
)

// The files checked, relative to this folder.
const (
	composeFile   = "docker-compose.yml"
	dockerfile    = "Dockerfile"
	alertsFile    = "prometheus/alerts.yml"
	promFile      = "prometheus/prometheus.yml"
	dashboardFile = "grafana/piazza-dashboard.json"
	k8sDir        = "kubernetes"
	natsValues    = "kubernetes/nats-values.yaml"
	composeSchema = "testdata/schemas/compose/compose-spec.json"
	k8sSchemaDir  = "testdata/schemas/kubernetes"
	natsChartVals = "testdata/schemas/nats-chart/values.yaml"
)

// The API port is fixed by NGSI-LD convention; the metrics port is Piazza's
// --metrics-addr default.
const (
	apiPort     = "1026"
	metricsPort = "9126"
)

// ---------------------------------------------------------------- compose

func TestComposeFile(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string // "" when the file must pass
	}{
		{file: composeFile},
		{file: "testdata/compose-unknown-key.bad.yml", wantErr: "restart_policy"},
		{file: "testdata/compose-missing-mount.bad.yml", wantErr: "nats/nats-cluster.conf"},
		{file: "testdata/compose-undeclared-volume.bad.yml", wantErr: `"nats-data" is not declared`},
		{file: "testdata/compose-bad-depends.bad.yml", wantErr: `depends on "nats-9"`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			checkWant(t, checkCompose(tc.file), tc.wantErr)
		})
	}
}

// checkCompose validates a compose file against the Compose Specification
// schema, then checks what the schema cannot: bind-mounted files exist
// (relative to the compose file, as Compose resolves them), named volumes are
// declared, depends_on names services, and the build context holds the
// Dockerfile.
func checkCompose(path string) []error {
	doc, err := readYAML(path)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, e := range validateSchema(composeSchema, doc) {
		errs = append(errs, fmt.Errorf("%s: %w", path, e))
	}
	top, _ := doc.(map[string]any)
	services, _ := top["services"].(map[string]any)
	volumes, _ := top["volumes"].(map[string]any)
	dir := filepath.Dir(path)
	for _, name := range sortedKeys(services) {
		svc, _ := services[name].(map[string]any)
		for _, v := range asSlice(svc["volumes"]) {
			s, ok := v.(string)
			if !ok {
				continue
			}
			src, _, ok := strings.Cut(s, ":")
			if !ok {
				continue // an anonymous volume: only a container path
			}
			switch {
			case strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/"):
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					errs = append(errs, fmt.Errorf("%s: service %s mounts %s, which does not exist", path, name, src))
				}
			default:
				if _, ok := volumes[src]; !ok {
					errs = append(errs, fmt.Errorf("%s: service %s: volume %q is not declared under the top-level volumes", path, name, src))
				}
			}
		}
		var deps []string
		switch d := svc["depends_on"].(type) {
		case []any:
			for _, x := range d {
				deps = append(deps, fmt.Sprint(x))
			}
		case map[string]any:
			deps = sortedKeys(d)
		}
		for _, d := range deps {
			if _, ok := services[d]; !ok {
				errs = append(errs, fmt.Errorf("%s: service %s depends on %q, which is not a service", path, name, d))
			}
		}
		if b, ok := svc["build"].(map[string]any); ok {
			ctx, _ := b["context"].(string)
			df, _ := b["dockerfile"].(string)
			if _, err := os.Stat(filepath.Join(dir, ctx, df)); err != nil {
				errs = append(errs, fmt.Errorf("%s: service %s builds %s in %s, which does not exist", path, name, df, ctx))
			}
		}
	}
	return errs
}

// ------------------------------------------------------------- kubernetes

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	type test struct {
		file    string
		wantErr string
	}
	var tests []test
	for _, f := range files {
		if f == natsValues {
			continue // Helm values, not a manifest: TestNATSHelmValues
		}
		tests = append(tests, test{file: f})
	}
	tests = append(tests,
		test{file: "testdata/deployment-unknown-field.bad.yaml", wantErr: "replica"},
		test{file: "testdata/deployment-wrong-type.bad.yaml", wantErr: "containerPort"},
		test{file: "testdata/service-unknown-kind.bad.yaml", wantErr: "no schema for networking.k8s.io/v1 Ingress"},
	)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, errs := checkManifests(tc.file)
			checkWant(t, errs, tc.wantErr)
		})
	}
}

// manifest is one Kubernetes object of a file.
type manifest struct {
	file       string
	apiVersion string
	kind       string
	name       string
	obj        map[string]any
}

// checkManifests reads every object of a (multi-document) YAML file and
// validates each against the strict JSON schema of its apiVersion and kind.
// A kustomization is checked instead for resources that exist.
func checkManifests(path string) ([]manifest, []error) {
	docs, err := readYAMLDocs(path)
	if err != nil {
		return nil, []error{err}
	}
	var out []manifest
	var errs []error
	for i, doc := range docs {
		obj, ok := doc.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: document %d is not a mapping", path, i+1))
			continue
		}
		m := manifest{file: path, obj: obj}
		m.apiVersion, _ = obj["apiVersion"].(string)
		m.kind, _ = obj["kind"].(string)
		m.name = str(obj, "metadata", "name")
		if m.kind == "Kustomization" {
			for _, r := range asSlice(obj["resources"]) {
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), fmt.Sprint(r))); err != nil {
					errs = append(errs, fmt.Errorf("%s: resource %v does not exist", path, r))
				}
			}
			continue
		}
		schema, ok := k8sSchemaFile(m.apiVersion, m.kind)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: document %d: no schema for %s %s in %s", path, i+1, m.apiVersion, m.kind, k8sSchemaDir))
			continue
		}
		for _, e := range validateSchema(schema, doc) {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", path, m.kind, m.name, e))
		}
		out = append(out, m)
	}
	return out, errs
}

// k8sSchemaFile names the schema of a kind the way kubernetes-json-schema
// does: <kind>-<group>-<version>.json, the group's first label only.
func k8sSchemaFile(apiVersion, kind string) (string, bool) {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group, version = "", apiVersion
	}
	name := strings.ToLower(kind)
	if group != "" {
		g, _, _ := strings.Cut(group, ".")
		name += "-" + g
	}
	name += "-" + version + ".json"
	p := filepath.Join(k8sSchemaDir, name)
	if _, err := os.Stat(p); err != nil {
		return "", false
	}
	return p, true
}

// TestKubernetesManifestsAgree checks that the objects fit together: the
// Service and the PodDisruptionBudget select the Deployment's pods, the
// ConfigMap the pods mount exists, probes name ports the container has,
// the kustomization applies every manifest and sets the image, and NATS is
// reached through the Helm release's service.
func TestKubernetesManifestsAgree(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	byKind := map[string][]manifest{}
	for _, f := range files {
		if f == natsValues {
			continue
		}
		ms, errs := checkManifests(f)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errors.Join(errs...))
		}
		for _, m := range ms {
			byKind[m.kind] = append(byKind[m.kind], m)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} {
		if len(byKind[kind]) != 1 {
			t.Fatalf("want one %s, have %d", kind, len(byKind[kind]))
		}
	}
	dep, svc, cm, pdb := byKind["Deployment"][0].obj, byKind["Service"][0].obj, byKind["ConfigMap"][0].obj, byKind["PodDisruptionBudget"][0].obj
	podLabels, _ := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(sel any) bool {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			return false
		}
		for k, v := range m {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(dig(dep, "spec", "selector", "matchLabels")) {
		t.Error("the Deployment's selector does not match its pod labels")
	}
	if !matches(dig(svc, "spec", "selector")) {
		t.Error("the Service does not select the Deployment's pods")
	}
	if !matches(dig(pdb, "spec", "selector", "matchLabels")) {
		t.Error("the PodDisruptionBudget does not select the Deployment's pods")
	}
	if r, _ := dig(dep, "spec", "replicas").(int); r < 2 {
		t.Errorf("the Deployment runs %d replicas, want 2 or more", r)
	}
	cmName := str(cm, "metadata", "name")
	mounted := false
	for _, v := range asSlice(dig(dep, "spec", "template", "spec", "volumes")) {
		if str(v, "configMap", "name") == cmName {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("no pod volume mounts the ConfigMap %q", cmName)
	}
	containers := asSlice(dig(dep, "spec", "template", "spec", "containers"))
	if len(containers) != 1 {
		t.Fatalf("want one container, have %d", len(containers))
	}
	c := containers[0]
	ports := map[string]string{}
	for _, p := range asSlice(dig(c, "ports")) {
		ports[str(p, "name")] = fmt.Sprint(dig(p, "containerPort"))
	}
	if ports["http"] != apiPort || ports["metrics"] != metricsPort {
		t.Errorf("container ports %v, want http %s and metrics %s", ports, apiPort, metricsPort)
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		port := fmt.Sprint(dig(c, probe, "httpGet", "port"))
		if _, ok := ports[port]; !ok {
			t.Errorf("%s probes port %q, which the container does not name", probe, port)
		}
	}
	if p := str(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("livenessProbe GETs %q, want /healthz", p)
	}
	if p := str(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readinessProbe GETs %q, want /readyz", p)
	}
	for _, p := range asSlice(dig(svc, "spec", "ports")) {
		if _, ok := ports[fmt.Sprint(dig(p, "targetPort"))]; !ok {
			t.Errorf("the Service targets port %v, which the container does not name", dig(p, "targetPort"))
		}
	}
	if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("the pod must run as non-root on a read-only root filesystem")
	}
	kust, err := readYAML(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed, want []string
	for _, r := range asSlice(dig(kust, "resources")) {
		listed = append(listed, filepath.Join(k8sDir, fmt.Sprint(r)))
	}
	for _, f := range files {
		if f != natsValues && filepath.Base(f) != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("kustomization.yaml lists %v, want every manifest: %v", listed, want)
	}
	image, _, _ := strings.Cut(str(c, "image"), ":")
	if !slices.ContainsFunc(asSlice(dig(kust, "images")), func(i any) bool { return str(i, "name") == image }) {
		t.Errorf("kustomization.yaml does not set the image %q of the Deployment", image)
	}
	env := map[string]string{}
	for _, e := range asSlice(dig(c, "env")) {
		env[str(e, "name")] = str(e, "value")
	}
	if !strings.HasPrefix(env["PIAZZA_NATS_URL"], "nats://nats:4222") {
		t.Errorf("PIAZZA_NATS_URL = %q, want the NATS Helm release's service nats://nats:4222", env["PIAZZA_NATS_URL"])
	}
}

// TestNATSHelmValues checks the values file for the official NATS chart:
// every key it sets is a key of the chart's own values.yaml (kept in
// testdata), except below the chart's free-form maps (merge, env, ...), and
// it asks for a 3-node cluster with JetStream on files.
func TestNATSHelmValues(t *testing.T) {
	defaults, err := readYAML(natsChartVals)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file    string
		wantErr string
	}{
		{file: natsValues},
		{file: "testdata/nats-values-typo.bad.yaml", wantErr: "config.jetstream.filestore"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			v, err := readYAML(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			errs := unknownKeys("", v, defaults)
			if tc.wantErr == "" {
				for path, want := range map[string]any{
					"config.cluster.enabled":             true,
					"config.cluster.replicas":            3,
					"config.jetstream.enabled":           true,
					"config.jetstream.fileStore.enabled": true,
				} {
					if got := dig(v, strings.Split(path, ".")...); got != want {
						errs = append(errs, fmt.Errorf("%s is %v, want %v", path, got, want))
					}
				}
			}
			checkWant(t, errs, tc.wantErr)
		})
	}
}

// unknownKeys reports the key paths of v that defaults does not have. A
// default that is an empty map or a list takes anything.
func unknownKeys(prefix string, v, defaults any) []error {
	vm, ok := v.(map[string]any)
	dm, dok := defaults.(map[string]any)
	if !ok || !dok || len(dm) == 0 {
		return nil
	}
	var errs []error
	for _, k := range sortedKeys(vm) {
		d, ok := dm[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s%s is not a value of the NATS chart", prefix, k))
			continue
		}
		errs = append(errs, unknownKeys(prefix+k+".", vm[k], d)...)
	}
	return errs
}

// ------------------------------------------------------------- Dockerfile

func TestDockerfile(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{file: dockerfile},
		{file: "testdata/Dockerfile-root.bad", wantErr: "runs as root"},
		{file: "testdata/Dockerfile-cgo.bad", wantErr: "CGO_ENABLED=0"},
		{file: "testdata/Dockerfile-env.bad", wantErr: "PIAZZA_HTTP_ADDR=:1026 PIAZZA_LOG_FORMAT=json"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			checkWant(t, checkDockerfile(tc.file), tc.wantErr)
		})
	}
}

// checkDockerfile checks the image's promises by reading its instructions:
// the Go of the builder is go.mod's, the binary is static and trimmed, the
// final stage is distroless or scratch, runs as a non-root user, exposes the
// API and metrics ports, sets no PIAZZA_* variable, and its HEALTHCHECK runs
// a file the image has.
func checkDockerfile(path string) []error {
	ins, err := parseDockerfile(path)
	if err != nil {
		return []error{err}
	}
	var errs []error
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		return []error{err}
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	var froms []string
	var finalStage []dockerInstr
	args := map[string]string{}
	build := ""
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok && len(froms) == 0 {
				args[k] = v
			}
		case "FROM":
			froms = append(froms, in.args)
			finalStage = nil
		case "RUN", "ENV":
			build += in.args + "\n"
		}
		finalStage = append(finalStage, in)
	}
	if len(froms) < 2 {
		return append(errs, fmt.Errorf("%s: want a multi-stage build, have %d stage(s)", path, len(froms)))
	}
	if goVersion == nil || !strings.HasPrefix(froms[0], "golang:${GO_VERSION}") || args["GO_VERSION"] != string(goVersion[1]) {
		errs = append(errs, fmt.Errorf("%s: the builder must be golang:${GO_VERSION} with GO_VERSION=%s as in go.mod (have FROM %s, GO_VERSION=%s)", path, goVersion[1], froms[0], args["GO_VERSION"]))
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/piazza", "./deploy/probe", "-X main.version="} {
		if !strings.Contains(build, want) {
			errs = append(errs, fmt.Errorf("%s: the build does not use %s", path, want))
		}
	}
	for _, dir := range []string{"../cmd/piazza", "probe"} {
		if _, err := os.Stat(dir); err != nil {
			errs = append(errs, fmt.Errorf("%s builds %s: %w", path, dir, err))
		}
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		errs = append(errs, fmt.Errorf("%s: the final image is %s, want distroless/static or scratch", path, final))
	}
	user, exposed, files := "", map[string]bool{}, map[string]bool{}
	health := ""
	for _, in := range finalStage {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed[p] = true
			}
		case "COPY":
			f := strings.Fields(in.args)
			files[f[len(f)-1]] = true
		case "HEALTHCHECK":
			health = in.args
		case "ENV":
			if strings.Contains(in.args, "PIAZZA_") {
				errs = append(errs, fmt.Errorf("%s: the final image sets %s: PIAZZA_* variables override a mounted config file", path, in.args))
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		errs = append(errs, fmt.Errorf("%s: the final image runs as root (USER %q)", path, user))
	}
	for _, p := range []string{apiPort, metricsPort} {
		if !exposed[p] {
			errs = append(errs, fmt.Errorf("%s: port %s is not exposed", path, p))
		}
	}
	if m := regexp.MustCompile(`CMD \["([^"]+)"`).FindStringSubmatch(health); m == nil || !files[m[1]] {
		errs = append(errs, fmt.Errorf("%s: HEALTHCHECK %q does not run a file the image has", path, health))
	}
	return errs
}

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct{ cmd, args string }

// parseDockerfile reads a Dockerfile's instructions, without comments.
func parseDockerfile(path string) ([]dockerInstr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ins []dockerInstr
	sc := bufio.NewScanner(bytes.NewReader(b))
	var cont strings.Builder
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSpace(strings.TrimSuffix(line, "\\")) + " ")
			continue
		}
		cont.WriteString(line)
		cmd, args, _ := strings.Cut(cont.String(), " ")
		ins = append(ins, dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cont.Reset()
	}
	return ins, sc.Err()
}

// dockerfileEnv returns the ENV of the final stage (KEY=VALUE pairs).
func dockerfileEnv(path string) (map[string]string, error) {
	ins, err := parseDockerfile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			clear(env)
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("%s: ENV %q: use KEY=VALUE", path, in.args)
				}
				env[k] = v
			}
		}
	}
	return env, nil
}

// -------------------------------------------------------------- prometheus

func TestAlertRules(t *testing.T) {
	exported := exportedMetrics(t)
	tests := []struct {
		file    string
		wantErr string
	}{
		{file: alertsFile},
		{file: "testdata/alerts-unknown-metric.bad.yml", wantErr: "piazza_http_errors_total"},
		{file: "testdata/alerts-bad-promql.bad.yml", wantErr: "unclosed left parenthesis"},
		{file: "testdata/alerts-unknown-field.bad.yml", wantErr: "field severity not found"},
		{file: "testdata/alerts-no-severity.bad.yml", wantErr: "severity"},
		{file: "testdata/alerts-no-for.bad.yml", wantErr: "no for:"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			checkWant(t, checkRules(tc.file, exported), tc.wantErr)
		})
	}
}

// checkRules parses a rules file as Prometheus loads it (rulefmt, unknown
// fields are errors, expressions and templates parsed), then checks
// Piazza's conventions: every alert waits (for:), has a severity of
// critical, warning or info, a summary and a description, and names only
// exported metrics.
func checkRules(path string, exported map[string]bool) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		for i, e := range errs {
			errs[i] = fmt.Errorf("%s: %w", path, e)
		}
		return errs
	}
	if len(groups.Groups) == 0 {
		return []error{fmt.Errorf("%s: no rule groups", path)}
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			where := fmt.Sprintf("%s: %s", path, name)
			if r.Alert != "" {
				if r.For == 0 {
					errs = append(errs, fmt.Errorf("%s: no for: an alert must hold for a while before it fires", where))
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
					errs = append(errs, fmt.Errorf("%s: severity label %q, want critical, warning or info", where, s))
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						errs = append(errs, fmt.Errorf("%s: no %s annotation", where, a))
					}
				}
			}
			if err := checkExpr(r.Expr, exported); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errs
}

// TestPrometheusConfig checks the compose Prometheus: it loads the rules
// file beside it and scrapes every Piazza service of the compose file on the
// metrics port.
func TestPrometheusConfig(t *testing.T) {
	v, err := readYAML(promFile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(asSlice(dig(v, "rule_files")), func(x any) bool {
		return filepath.Join(filepath.Dir(promFile), fmt.Sprint(x)) == alertsFile
	}) {
		t.Errorf("%s does not load %s", promFile, alertsFile)
	}
	var targets []string
	for _, sc := range asSlice(dig(v, "scrape_configs")) {
		if str(sc, "job_name") != "piazza" {
			continue
		}
		for _, s := range asSlice(dig(sc, "static_configs")) {
			for _, x := range asSlice(dig(s, "targets")) {
				targets = append(targets, fmt.Sprint(x))
			}
		}
	}
	compose, err := readYAML(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	services, _ := dig(compose, "services").(map[string]any)
	for _, name := range sortedKeys(services) {
		if strings.HasPrefix(str(services[name], "image"), "piazza") {
			want = append(want, name+":"+metricsPort)
			if got := str(services[name], "environment", "PIAZZA_METRICS_ADDR"); got != ":"+metricsPort {
				t.Errorf("compose service %s: PIAZZA_METRICS_ADDR %q, want :%s", name, got, metricsPort)
			}
		}
	}
	slices.Sort(targets)
	if len(want) < 2 || !slices.Equal(targets, want) {
		t.Errorf("job piazza scrapes %v, want the compose Piazza services %v", targets, want)
	}
}

// ----------------------------------------------------------------- grafana

func TestDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	tests := []struct {
		file    string
		wantErr string
	}{
		{file: dashboardFile},
		{file: "testdata/dashboard-unknown-metric.bad.json", wantErr: "piazza_http_request_seconds_bucket"},
		{file: "testdata/dashboard-bad-promql.bad.json", wantErr: "parse error"},
		{file: "testdata/dashboard-fixed-datasource.bad.json", wantErr: "datasource"},
		{file: "testdata/dashboard-truncated.bad.json", wantErr: "unexpected end of JSON input"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			checkWant(t, checkDashboard(tc.file, exported), tc.wantErr)
		})
	}
}

// checkDashboard parses a Grafana dashboard and checks that it has a
// datasource variable that every query panel uses, unique panel ids, and
// that every PromQL expression (panel targets and query variables) parses
// and names only exported metrics.
func checkDashboard(path string, exported map[string]bool) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var d struct {
		UID        string           `json:"uid"`
		Title      string           `json:"title"`
		Panels     []map[string]any `json:"panels"`
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	var errs []error
	if d.UID == "" || d.Title == "" {
		errs = append(errs, fmt.Errorf("%s: the dashboard needs a uid and a title", path))
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		name, _ := v["name"].(string)
		switch v["type"] {
		case "datasource":
			if v["query"] == "prometheus" {
				dsVar = name
			}
		case "query":
			q := v["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			expr, _ := q.(string)
			if m := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`).FindStringSubmatch(expr); m != nil {
				expr = m[1]
			}
			if err := checkExpr(expr, exported); err != nil {
				errs = append(errs, fmt.Errorf("%s: variable %s: %w", path, name, err))
			}
		}
	}
	if dsVar == "" {
		errs = append(errs, fmt.Errorf("%s: no Prometheus datasource variable", path))
	}
	ids := map[float64]bool{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			title := str(p, "title")
			id, _ := dig(p, "id").(float64)
			if ids[id] {
				errs = append(errs, fmt.Errorf("%s: panel %q: id %v is used twice", path, title, id))
			}
			ids[id] = true
			walk(asSlice(dig(p, "panels")))
			targets := asSlice(dig(p, "targets"))
			if len(targets) == 0 {
				continue
			}
			if ds := str(p, "datasource", "uid"); ds != "${"+dsVar+"}" && ds != "$"+dsVar {
				errs = append(errs, fmt.Errorf("%s: panel %q: datasource %q, want the variable ${%s}", path, title, ds, dsVar))
			}
			for _, tg := range targets {
				expr := str(tg, "expr")
				if expr == "" {
					errs = append(errs, fmt.Errorf("%s: panel %q: a target has no expr", path, title))
					continue
				}
				if err := checkExpr(expr, exported); err != nil {
					errs = append(errs, fmt.Errorf("%s: panel %q: %w", path, title, err))
				}
			}
		}
	}
	panels := make([]any, len(d.Panels))
	for i, p := range d.Panels {
		panels[i] = p
	}
	walk(panels)
	if len(ids) == 0 {
		errs = append(errs, fmt.Errorf("%s: no panels", path))
	}
	return errs
}

// ------------------------------------------------------------------ PromQL

var promParser = parser.NewParser(parser.Options{})

// grafanaVars matches Grafana's variables in an expression: $__interval
// and friends, $name, ${name}, ${name:format} and [[name]].
var grafanaVars = regexp.MustCompile(`\$__\w+|\$\{[^}]*\}|\$\w+|\[\[\w+\]\]`)

// noName marks a selector without a metric name, which no check can vouch for.
const noName = " (no metric name)"

// grafanaVar stands for a Grafana variable that is not a duration.
const grafanaVar = "grafana_var"

// checkExpr parses a PromQL expression (Grafana variables replaced by
// plain values) and reports the metrics it names that Piazza does not
// export.
func checkExpr(expr string, exported map[string]bool) error {
	names, err := metricNames(expr)
	if err != nil {
		return err
	}
	var unknown []string
	for _, n := range names {
		if !isExported(n, exported) && !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%q names metrics Piazza does not export: %s", expr, strings.Join(unknown, ", "))
	}
	return nil
}

// metricNames returns the metric names an expression selects.
func metricNames(expr string) ([]string, error) {
	e, err := promParser.ParseExpr(expandGrafanaVars(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			name = vs.String() + noName
		}
		names = append(names, name)
		return nil
	})
	return names, nil
}

// expandGrafanaVars replaces Grafana's variables with values PromQL parses.
func expandGrafanaVars(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.HasPrefix(v, "$__") {
			return "5m" // $__rate_interval, $__interval, $__range: durations
		}
		return grafanaVar
	})
}

// isExported reports whether a selected name is a series Piazza exports:
// one of its metrics, a histogram's _bucket, _sum or _count series, the
// standard Go and process collectors, or Prometheus's own 'up'.
func isExported(name string, exported map[string]bool) bool {
	if exported[name] || name == "up" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return true
		}
	}
	return false
}

func TestIsExported(t *testing.T) {
	exported := map[string]bool{"piazza_http_request_duration_seconds": true, "piazza_nats_connected": true}
	for name, want := range map[string]bool{
		"piazza_nats_connected":                       true,
		"piazza_http_request_duration_seconds_bucket": true,
		"piazza_http_request_duration_seconds_count":  true,
		"piazza_nats_connected_bucket":                true, // harmless: the parser cannot tell histograms
		"up":                                          true,
		"go_goroutines":                               true,
		"process_resident_memory_bytes":               true,
		"piazza_nats_disconnected":                    false,
		"piazza_http_request_duration":                false,
		"":                                            false,
	} {
		if got := isExported(name, exported); got != want {
			t.Errorf("isExported(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{expr: `sum by (route) (rate(piazza_http_requests_total{instance=~"$instance"}[$__rate_interval]))`, want: []string{"piazza_http_requests_total"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(piazza_http_request_duration_seconds_bucket{job="${job:regex}"}[5m])))`, want: []string{"piazza_http_request_duration_seconds_bucket"}},
		{expr: `{__name__="piazza_entities"} / on() group_left count(up)`, want: []string{"piazza_entities", "up"}},
		{expr: `time() - piazza_pipeline_last_success_timestamp_seconds > 3600`, want: []string{"piazza_pipeline_last_success_timestamp_seconds"}},
		{expr: `vector(1)`},
		{expr: `{__name__=~"piazza_.+"}`, want: []string{`{__name__=~"piazza_.+"}` + noName}},
		{expr: `rate(piazza_writes_total[5m]`, wantErr: "unclosed left parenthesis"},
		{expr: ``, wantErr: "no expression found"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("metricNames = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzMetricNames feeds arbitrary expressions, with Grafana variables, to
// the name extraction: it must not panic, and a name it returns must be in
// the expression as parsed.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		`sum(rate(piazza_http_requests_total{code=~"5.."}[$__rate_interval]))`,
		`{__name__="piazza_entities", type="${type}"}`,
		`[[x]] + $y`,
		`max_over_time(piazza_nats_connected[1h:5m])`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			return
		}
		expanded := expandGrafanaVars(expr)
		for _, n := range names {
			if !strings.HasSuffix(n, noName) && !strings.Contains(expanded, n) {
				t.Fatalf("metricNames(%q) returned %q, which %q does not contain", expr, n, expanded)
			}
		}
	})
}

// exportedMetrics is the set of metric names a Piazza node exports.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := node.MetricNames()
	if len(names) == 0 {
		t.Fatal("node.MetricNames is empty")
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// ----------------------------------------------------------------- helpers

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*gojsonschema.Schema{}
)

// validateSchema validates doc against the JSON schema in file (compiled
// once per test binary) and returns one error per violation.
func validateSchema(file string, doc any) []error {
	schemaMu.Lock()
	s, ok := schemaCache[file]
	if !ok {
		b, err := os.ReadFile(file)
		if err != nil {
			schemaMu.Unlock()
			return []error{err}
		}
		if s, err = gojsonschema.NewSchema(gojsonschema.NewBytesLoader(b)); err != nil {
			schemaMu.Unlock()
			return []error{fmt.Errorf("schema %s: %w", file, err)}
		}
		schemaCache[file] = s
	}
	schemaMu.Unlock()
	res, err := s.Validate(gojsonschema.NewGoLoader(doc))
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, e := range res.Errors() {
		errs = append(errs, fmt.Errorf("%s: %s", e.Field(), e.Description()))
	}
	return errs
}

// readYAML reads a one-document YAML file.
func readYAML(path string) (any, error) {
	docs, err := readYAMLDocs(path)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: want one YAML document, have %d", path, len(docs))
	}
	return docs[0], nil
}

// readYAMLDocs reads every document of a YAML file, with JSON-compatible
// maps (string keys) so that a JSON schema can validate them.
func readYAMLDocs(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if v == nil {
			continue
		}
		v, err = jsonCompatible(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		docs = append(docs, v)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return docs, nil
}

// jsonCompatible turns maps with non-string keys into string-keyed ones.
func jsonCompatible(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	}
	return v, nil
}

// dig walks maps by key.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// str is dig for a string value.
func str(v any, keys ...string) string {
	s, _ := dig(v, keys...).(string)
	return s
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkWant fails t unless errs is empty (wantErr "") or some error
// contains wantErr.
func checkWant(t *testing.T, errs []error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		for _, e := range errs {
			t.Error(e)
		}
		return
	}
	if len(errs) == 0 {
		t.Fatalf("accepted; want an error containing %q", wantErr)
	}
	for _, e := range errs {
		if strings.Contains(e.Error(), wantErr) {
			return
		}
	}
	t.Fatalf("errors %v; want one containing %q", errors.Join(errs...), wantErr)
}

// TestShowRejections prints why each bad fixture is refused (go test -v -run TestShowRejections).
func TestShowRejections(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("only with -v")
	}
	exported := exportedMetrics(t)
	files, _ := filepath.Glob("testdata/*.bad*")
	for _, f := range files {
		var errs []error
		switch {
		case strings.Contains(f, "compose"):
			errs = checkCompose(f)
		case strings.Contains(f, "alerts"):
			errs = checkRules(f, exported)
		case strings.Contains(f, "dashboard"):
			errs = checkDashboard(f, exported)
		case strings.Contains(f, "Dockerfile"):
			errs = checkDockerfile(f)
		case strings.Contains(f, "nats-values"):
			continue
		default:
			_, errs = checkManifests(f)
		}
		t.Logf("%s:\n%v", f, errors.Join(errs...))
	}
}
