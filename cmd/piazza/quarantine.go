package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const quarantineUsage = `Usage:
  piazza quarantine list [flags]          the writes kept in quarantine, oldest first
  piazza quarantine show SEQ [flags]      one entry: its problems and the entity that was not committed
  piazza quarantine replay SEQ [flags]    validate it again and commit it (after the model or the data was fixed)
  piazza quarantine drop SEQ [flags]      abandon it

Operates the quarantine of a running Piazza (policy 'quarantine': writes that do not match their Smart
Data Model are kept aside, with their problems, instead of being committed), through its API extension
/ngsi-ld/ex/v1/quarantine. SEQ is the entry's number, as listed and as answered to the rejected write
(ProblemDetails member "quarantine"). A replay that still does not match the model stays in quarantine
(as a new entry, which the error names). Flags may come before or after SEQ.

Examples:
  piazza quarantine list --tenant mantova
  piazza quarantine show 42 --tenant mantova
  piazza quarantine replay 42 --tenant mantova --url http://piazza:1026

Exit status: 0 done; 1 the broker refused or could not be reached; 2 bad usage.

Flags:
`

// quarantineFlags are the flags of 'piazza quarantine'.
type quarantineFlags struct {
	url, tenant string
	asJSON      bool
	timeout     time.Duration
}

// quarantineEntry is an entry as the API shows it.
type quarantineEntry struct {
	Seq        uint64          `json:"seq"`
	Tenant     string          `json:"tenant"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Op         string          `json:"op"`
	Model      string          `json:"model"`
	Violations []violation     `json:"violations"`
	Received   time.Time       `json:"received"`
	Entity     json.RawMessage `json:"entity,omitempty"`
}

type violation struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
	Keyword string `json:"keyword"`
}

// problem is an NGSI-LD ProblemDetails body, with Piazza's validation members.
type problem struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Status     int         `json:"status"`
	Detail     string      `json:"detail"`
	Violations []violation `json:"violations"`
	Quarantine uint64      `json:"quarantine"`
}

func quarantine(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quarantine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f quarantineFlags
	fs.StringVar(&f.url, "url", "http://localhost:1026", "the Piazza broker's base URL")
	fs.StringVar(&f.tenant, "tenant", "", "NGSILD-Tenant whose quarantine to operate (default: the broker's default tenant)")
	fs.BoolVar(&f.asJSON, "json", false, "print the broker's JSON answer on standard output")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time allowed for the request")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), quarantineUsage)
		fs.PrintDefaults()
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "piazza quarantine: "+format+"\nRun 'piazza quarantine --help' for the commands and flags.\n", a...)
		return exitUsage
	}
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		return usageErr("a command is required: list, show, replay or drop")
	}
	cmd := pos[0]
	want := 2
	if cmd == "list" {
		want = 1
	} else if cmd != "show" && cmd != "replay" && cmd != "drop" {
		return usageErr("unknown command %q: list, show, replay or drop", cmd)
	}
	if len(pos) != want {
		if want == 1 {
			return usageErr("list takes no argument, got %q", pos[1])
		}
		if len(pos) < want {
			return usageErr("%s needs the entry's sequence number: piazza quarantine %s SEQ", cmd, cmd)
		}
		return usageErr("%s takes one sequence number, got %q", cmd, strings.Join(pos[1:], " "))
	}
	var seq uint64
	if want == 2 {
		var err error
		if seq, err = strconv.ParseUint(pos[1], 10, 64); err != nil || seq == 0 {
			return usageErr("%q is not a sequence number (a positive integer)", pos[1])
		}
	}
	base, err := url.Parse(strings.TrimRight(f.url, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageErr("--url %q is not an http(s) URL", f.url)
	}
	c := &quarantineClient{base: base.String() + "/ngsi-ld/ex/v1/quarantine", tenant: f.tenant,
		http: &http.Client{Timeout: f.timeout}}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "piazza quarantine: %v\n", err)
		return exitFailed
	}

	switch cmd {
	case "list":
		body, err := c.do(ctx, http.MethodGet, "")
		if err != nil {
			return failProblem(stdout, stderr, f.asJSON, err)
		}
		if f.asJSON {
			return writeRaw(stdout, body)
		}
		var es []quarantineEntry
		if err := json.Unmarshal(body, &es); err != nil {
			return fail(fmt.Errorf("the broker's answer is not a list of entries: %v", err))
		}
		printQuarantineList(stdout, es, f.tenant)
	case "show":
		body, err := c.do(ctx, http.MethodGet, "/"+strconv.FormatUint(seq, 10))
		if err != nil {
			return failProblem(stdout, stderr, f.asJSON, err)
		}
		if f.asJSON {
			return writeRaw(stdout, body)
		}
		var e quarantineEntry
		if err := json.Unmarshal(body, &e); err != nil {
			return fail(fmt.Errorf("the broker's answer is not an entry: %v", err))
		}
		printQuarantineEntry(stdout, e)
	case "replay", "drop":
		method, path, done := http.MethodDelete, "/"+strconv.FormatUint(seq, 10), "dropped"
		if cmd == "replay" {
			method, path, done = http.MethodPost, path+"/replay", "replayed: the entity is committed"
		}
		if _, err := c.do(ctx, method, path); err != nil {
			return failProblem(stdout, stderr, f.asJSON, err)
		}
		if f.asJSON {
			return writeJSONValue(stdout, map[string]any{"ok": true, "seq": seq, "done": cmd})
		}
		fmt.Fprintf(stdout, "entry %d %s\n", seq, done)
	}
	return exitOK
}

// quarantineClient calls the quarantine API of one broker and tenant.
type quarantineClient struct {
	base, tenant string
	http         *http.Client
}

// problemError is a ProblemDetails answer, with the raw body for --json.
type problemError struct {
	status int
	p      problem
	body   []byte
}

func (e *problemError) Error() string {
	if e.p.Detail != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.p.Detail, e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, bytes.TrimSpace(e.body))
}

// do sends a request and returns the body of a 2xx answer; any other
// answer is a *problemError.
func (c *quarantineClient) do(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.tenant != "" {
		req.Header.Set("NGSILD-Tenant", c.tenant)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the broker: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the broker's answer: %w", err)
	}
	if res.StatusCode/100 != 2 {
		pe := &problemError{status: res.StatusCode, body: body}
		_ = json.Unmarshal(body, &pe.p)
		return nil, pe
	}
	return body, nil
}

// failProblem reports a failed request: the ProblemDetails with its
// violations (on stdout as JSON with --json) and exit status 1.
func failProblem(stdout, stderr io.Writer, asJSON bool, err error) int {
	var pe *problemError
	if !errors.As(err, &pe) {
		fmt.Fprintf(stderr, "piazza quarantine: %v\n", err)
		return exitFailed
	}
	if asJSON && json.Valid(pe.body) {
		writeRaw(stdout, pe.body)
		return exitFailed
	}
	fmt.Fprintf(stderr, "piazza quarantine: %v\n", pe)
	for _, v := range pe.p.Violations {
		fmt.Fprintf(stderr, "  %s: %s\n", pointerOrRoot(v.Pointer), v.Message)
	}
	if pe.p.Quarantine != 0 {
		fmt.Fprintf(stderr, "the write stays in quarantine as entry %d\n", pe.p.Quarantine)
	}
	return exitFailed
}

func pointerOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func writeRaw(w io.Writer, body []byte) int {
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") != nil {
		buf.Reset()
		buf.Write(body)
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
	return exitOK
}

func writeJSONValue(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return exitOK
}

func tenantName(t string) string {
	if t == "" {
		return "the default tenant"
	}
	return "tenant " + t
}

func printQuarantineList(w io.Writer, es []quarantineEntry, tenant string) {
	if len(es) == 0 {
		fmt.Fprintf(w, "The quarantine of %s is empty.\n", tenantName(tenant))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tRECEIVED\tOP\tENTITY\tMODEL\tPROBLEMS")
	for _, e := range es {
		first := ""
		if len(e.Violations) > 0 {
			first = pointerOrRoot(e.Violations[0].Pointer)
			if len(e.Violations) > 1 {
				first += fmt.Sprintf(" and %d more", len(e.Violations)-1)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Received.UTC().Format(time.RFC3339), e.Op, e.ID, e.Model, first)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%s in the quarantine of %s. 'piazza quarantine show SEQ' for the problems and the entity.\n", plural(len(es), "entry"), tenantName(tenant))
}

func printQuarantineEntry(w io.Writer, e quarantineEntry) {
	fmt.Fprintf(w, "Entry %d of %s, received %s\n", e.Seq, tenantName(e.Tenant), e.Received.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  entity    %s (%s)\n", e.ID, e.Type)
	fmt.Fprintf(w, "  operation %s\n", e.Op)
	fmt.Fprintf(w, "  model     %s: %s\n", e.Model, problems(len(e.Violations)))
	for _, v := range e.Violations {
		fmt.Fprintf(w, "    %s: %s\n", pointerOrRoot(v.Pointer), v.Message)
	}
	if len(e.Entity) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, e.Entity, "  ", "  ") == nil {
			fmt.Fprintf(w, "  the state that was not committed:\n  %s\n", buf.String())
		}
	}
}
