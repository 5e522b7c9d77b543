// Command probe is the health check of Piazza's container image, which has
// no shell and no curl (distroless): it sends one GET and exits 0 when the
// answer is 2xx, 1 otherwise, printing why on stderr.
//
//	probe                               GET /readyz on the port of PIAZZA_HTTP_ADDR (default :1026)
//	probe http://127.0.0.1:1026/healthz GET that URL
//
// Docker and Compose run it as the image's HEALTHCHECK; Kubernetes uses its
// own httpGet probes and does not need it.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run probes the URL in args, or the readiness endpoint derived from
// PIAZZA_HTTP_ADDR, and returns the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: probe [URL]")
		return 2
	}
	url := ""
	if len(args) == 1 {
		url = args[0]
	} else {
		var err error
		if url, err = readyURL(getenv("PIAZZA_HTTP_ADDR")); err != nil {
			fmt.Fprintf(stderr, "probe: %v\n", err)
			return 2
		}
	}
	if err := probe(url, 3*time.Second); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	return 0
}

// readyURL turns a listen address such as ":1026" or "0.0.0.0:8080" into the
// loopback URL of its /readyz endpoint.
func readyURL(addr string) (string, error) {
	if addr == "" {
		addr = ":1026"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("PIAZZA_HTTP_ADDR %q: want host:port with a fixed port", addr)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz", nil
}

// probe GETs url and reports an error unless the status is 2xx.
func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}
