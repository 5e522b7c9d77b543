package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestReadmeTryIt posts the entity of the README's "Try it" section to a
// node with the default validation policy, as a newcomer would, and reads it
// back: the first example of the README must work.
func TestReadmeTryIt(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Try it")
	if !ok {
		t.Fatal("README has no Try it section")
	}
	_, body, ok := strings.Cut(section, "-d '")
	if !ok {
		t.Fatal("the Try it section has no curl -d '...' body")
	}
	body, _, ok = strings.Cut(body, "'\n")
	if !ok {
		t.Fatal("the curl body is not closed")
	}
	n, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", NATSAddr: "off", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	base := "http://" + n.HTTPAddr() + "/ngsi-ld/v1/entities"
	resp, err := http.Post(base, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the README's entity: %d %s", resp.StatusCode, got)
	}
	resp, err = http.Get(base + "?type=AirQualityObserved&options=keyValues")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(got), `"no2":41.5`) {
		t.Fatalf("read back: %s", got)
	}
}
