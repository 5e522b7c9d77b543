package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run Piazza as a real process, as an operator would: they build
// the binary once, start it, talk HTTP to it, and kill it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func piazzaBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the piazza binary; skipped with -short")
	}
	buildOnce.Do(func() {
		binPath, buildErr = buildPiazza(true)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// piazzaBinaryFor builds the binary without the race detector, for benchmarks.
func piazzaBinaryFor(tb testing.TB) string {
	tb.Helper()
	bin, err := buildPiazza(false)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func buildPiazza(race bool) (string, error) {
	dir, err := os.MkdirTemp("", "piazza-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "piazza")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// proc is a running piazza process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

// startTimeout bounds a start of piazza serve (a million entities load in
// well under it).
const startTimeout = 5 * time.Minute

var addrLine = regexp.MustCompile(`msg="serving the NGSI-LD API".* addr=(\S+)`)

// startPiazza runs 'piazza serve' with args and waits until it serves.
func startPiazza(t *testing.T, args ...string) *proc {
	t.Helper()
	return startPiazzaBin(t, piazzaBinary(t), args...)
}

func startPiazzaBin(t testing.TB, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := addrLine.FindStringSubmatch(line); m != nil {
				found <- m[1]
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	select {
	case addr := <-found:
		p.url = "http://" + addr
	case <-time.After(startTimeout):
		t.Fatalf("piazza did not start within %v:\n%s", startTimeout, p.logText())
	}
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *proc) kill9(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func do(method, url, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestKill9KeepsAcknowledgedWrites writes under load, kills Piazza with
// SIGKILL in the middle, restarts it on the same data directory, and checks
// that every write that was acknowledged is there.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	p := startPiazza(t, "--data-dir", dir, "--nats-addr", "off")
	var (
		mu      sync.Mutex
		created = map[string]bool{} // acknowledged creates
		merged  = map[string]int{}  // highest acknowledged counter per entity
		stop    atomic.Bool
		wg      sync.WaitGroup
		acked   atomic.Int64
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("urn:ngsi-ld:Sensor:w%d-%d", w, i)
				code, _, err := do("POST", p.url+"/ngsi-ld/v1/entities", fmt.Sprintf(`{"id":%q,"type":"Sensor","n":{"type":"Property","value":0}}`, id))
				if err != nil || code != http.StatusCreated {
					continue
				}
				mu.Lock()
				created[id] = true
				mu.Unlock()
				acked.Add(1)
				for n := 1; n <= 3 && !stop.Load(); n++ {
					code, _, err := do("PATCH", p.url+"/ngsi-ld/v1/entities/"+id, fmt.Sprintf(`{"n":{"type":"Property","value":%d}}`, n))
					if err == nil && code == http.StatusNoContent {
						mu.Lock()
						merged[id] = n
						mu.Unlock()
						acked.Add(1)
					}
				}
			}
		}()
	}
	// Let the writers run, then kill in the middle of their writes.
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < 1500 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.kill9(t)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(created) < 100 {
		t.Fatalf("only %d creates were acknowledged before the kill", len(created))
	}
	t.Logf("killed after %d acknowledged writes (%d creates)", acked.Load(), len(created))

	p2 := startPiazza(t, "--data-dir", dir, "--nats-addr", "off")
	missing := 0
	for id := range created {
		code, body, err := do("GET", p2.url+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
		if err != nil || code != http.StatusOK {
			missing++
			t.Errorf("acknowledged create of %s lost: %d %s %v", id, code, body, err)
			continue
		}
		var kv struct{ N int }
		if err := json.Unmarshal(body, &kv); err != nil {
			t.Fatal(err)
		}
		if kv.N < merged[id] {
			t.Errorf("%s: acknowledged merge n=%d lost, found n=%d", id, merged[id], kv.N)
		}
		if missing > 10 {
			t.Fatal("too many losses")
		}
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNATSServer builds and runs a separate nats-server process with JetStream.
func startNATSServer(t *testing.T) string {
	t.Helper()
	piazzaBinary(t) // same -short rule
	bin := filepath.Join(filepath.Dir(binPath), "nats-server")
	if _, err := os.Stat(bin); err != nil {
		out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			t.Fatalf("building nats-server: %v\n%s", err, out)
		}
	}
	port := freePort(t)
	cmd := exec.Command(bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return url
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("nats-server did not start")
	return ""
}

// TestTwoPiazzasOnOneNATS runs two Piazza processes on a separately started
// nats-server: each sees the other's writes within a second, and concurrent
// merges through both land.
func TestTwoPiazzasOnOneNATS(t *testing.T) {
	url := startNATSServer(t)
	a := startPiazza(t, "--nats-url", url)
	b := startPiazza(t, "--nats-url", url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = ctx
	id := "urn:ngsi-ld:Building:1"
	code, body, err := do("POST", a.url+"/ngsi-ld/v1/entities", `{"id":"`+id+`","type":"Building","floors":3}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create through A: %d %s %v", code, body, err)
	}
	start := time.Now()
	for {
		code, _, _ = do("GET", b.url+"/ngsi-ld/v1/entities/"+id, "")
		if code == http.StatusOK {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("B did not see A's write within a second (last status %d)", code)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("B saw A's write after %v", time.Since(start))
	// A tenant created through B is known to A.
	req, _ := http.NewRequest("POST", b.url+"/ngsi-ld/v1/entities", strings.NewReader(`{"id":"urn:x:1","type":"T"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("NGSILD-Tenant", "messina")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create in tenant through B: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", a.url+"/ngsi-ld/v1/entities/urn:x:1", nil)
	req.Header.Set("NGSILD-Tenant", "messina")
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("A reading B's tenant: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	// Concurrent merges of distinct attributes through both processes.
	var wg sync.WaitGroup
	const n = 20
	for i := range n {
		for _, p := range []*proc{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				attr := fmt.Sprintf("a%d_%s", i, strings.TrimPrefix(p.url, "http://127.0.0.1:"))
				code, body, err := do("PATCH", p.url+"/ngsi-ld/v1/entities/"+id, fmt.Sprintf(`{%q:%d}`, attr, i))
				if err != nil || code != http.StatusNoContent {
					t.Errorf("merge %s: %d %s %v", attr, code, body, err)
				}
			}()
		}
	}
	wg.Wait()
	for _, p := range []*proc{a, b} {
		code, body, err := do("GET", p.url+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("%d %v", code, err)
		}
		var kv map[string]any
		_ = json.Unmarshal(body, &kv)
		if len(kv) != 2*n+3 { // id, type, floors
			// B may lag A by a moment: poll once more after a short while.
			time.Sleep(200 * time.Millisecond)
			_, body, _ = do("GET", p.url+"/ngsi-ld/v1/entities/"+id+"?options=keyValues", "")
			kv = nil
			_ = json.Unmarshal(body, &kv)
			if len(kv) != 2*n+3 {
				t.Fatalf("%s: %d members after %d concurrent merges through two replicas: %s", p.url, len(kv), 2*n, body)
			}
		}
	}
}

// TestServeFailsClearly checks the one-line errors at start.
func TestServeFailsClearly(t *testing.T) {
	bin := piazzaBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unwritable data dir", []string{"--data-dir", "/proc/piazza-cannot-write"}, "data dir"},
		{"unreachable nats", []string{"--nats-url", "nats://127.0.0.1:1"}, "cannot connect to NATS"},
		{"bad duration", []string{"--shutdown-grace", "soon"}, "invalid value"},
		{"unknown flag", []string{"--no-such-flag"}, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--metrics-addr", "off"}, tc.args...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want failure; output:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}
