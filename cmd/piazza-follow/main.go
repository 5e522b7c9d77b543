// Command piazza-follow is the example app for Piazza's NATS contract: it
// follows the changes of one entity type and prints one JSON line per change.
//
// It is written as a third-party app would be, against the documented
// contract (README, "For app developers") and nats.go only: it encodes and
// decodes subject tokens itself rather than importing Piazza's packages.
// Live, it is a core NATS subscription to piazza.<tenant>.<Type>.>; with
// -from-seq, -from-time or -current it is a JetStream ordered consumer on the
// tenant's stream, which replays from that point and then continues live.
//
//	piazza-follow AirQualityObserved
//	piazza-follow -from-time 2026-11-01T00:00:00Z -tenant mantova Ufficio
//	piazza-follow -nats-url ws://piazza.example.org:8080 -current Sensor
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// The contract this app follows (version 1).
const (
	subjectPrefix  = "piazza"
	defaultTenant  = "@"
	headerOp       = "Piazza-Op"
	headerVersion  = "Piazza-Version"
	payloadVersion = "1"
)

// change is one output line.
type change struct {
	// Seq and Time are the message's stream sequence and commit time; a live
	// core subscription has neither (use -from-seq to get them).
	Seq    uint64          `json:"seq,omitempty"`
	Time   string          `json:"time,omitempty"`
	Op     string          `json:"op"`
	Tenant string          `json:"tenant"`
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Entity json.RawMessage `json:"entity"`
}

type options struct {
	natsURL, creds, tenant string
	fromSeq                uint64
	fromTime               string
	current                bool
	typ                    string
}

const usage = `Usage: piazza-follow [flags] <Type>

Follows the changes of one entity type in Piazza over NATS and prints one JSON
line per change on standard output:

  {"seq":42,"time":"2026-11-25T10:00:00Z","op":"merge","tenant":"","type":"Sensor",
   "id":"urn:ngsi-ld:Sensor:1","entity":{...the entity's full new state...}}

<Type> is the entity type as it appears in payloads: the short name for types
of the NGSI-LD core and default contexts (AirQualityObserved), else the full
IRI. An entity is followed under the type it had when it was created.

Without -from-seq, -from-time or -current it follows live changes only (a core
NATS subscription to piazza.<tenant>.<Type>.>: lowest latency, no sequence).
With one of them it replays the tenant's JetStream log from that point and
then keeps following live; "seq" lets a restarted app resume where it stopped.

Flags (each also read from the environment variable in brackets):
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("piazza-follow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "Piazza's NATS: nats://, tls:// or ws:// (WebSocket listener) URL, comma-separated for a cluster [PIAZZA_NATS_URL]")
	fs.StringVar(&o.creds, "creds", "", "NATS credentials file (JWT and NKey seed), if the server needs one [PIAZZA_NATS_CREDS]")
	fs.StringVar(&o.tenant, "tenant", "", "NGSI-LD tenant; empty for the default tenant [PIAZZA_TENANT]")
	fs.Uint64Var(&o.fromSeq, "from-seq", 0, "replay from this stream sequence (a \"seq\" printed earlier, +1 to resume after it)")
	fs.StringVar(&o.fromTime, "from-time", "", "replay the changes committed at or after this RFC 3339 time (2026-11-25T08:00:00Z)")
	fs.BoolVar(&o.current, "current", false, "start with the current state of every entity of the type, then follow live")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	for _, env := range []struct{ flag, name string }{
		{"nats-url", "PIAZZA_NATS_URL"}, {"creds", "PIAZZA_NATS_CREDS"}, {"tenant", "PIAZZA_TENANT"},
	} {
		if v := getenv(env.name); v != "" {
			_ = fs.Set(env.flag, v)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fmt.Fprintln(stderr, "piazza-follow: give exactly one entity type (see -h)")
		return 2
	}
	o.typ = fs.Arg(0)
	var startTime time.Time
	modes := 0
	if o.fromSeq > 0 {
		modes++
	}
	if o.fromTime != "" {
		t, err := time.Parse(time.RFC3339Nano, o.fromTime)
		if err != nil {
			fmt.Fprintf(stderr, "piazza-follow: -from-time %q is not an RFC 3339 time such as 2026-11-25T08:00:00Z\n", o.fromTime)
			return 2
		}
		startTime = t
		modes++
	}
	if o.current {
		modes++
	}
	if modes > 1 {
		fmt.Fprintln(stderr, "piazza-follow: -from-seq, -from-time and -current exclude each other")
		return 2
	}
	if err := follow(ctx, o, startTime, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "piazza-follow: %v\n", err)
		return 1
	}
	return 0
}

// follow connects and prints changes until ctx ends.
func follow(ctx context.Context, o options, startTime time.Time, stdout, stderr io.Writer) error {
	copts := []nats.Option{nats.Name("piazza-follow"), nats.Timeout(5 * time.Second), nats.MaxReconnects(-1)}
	if o.creds != "" {
		copts = append(copts, nats.UserCredentials(o.creds))
	}
	nc, err := nats.Connect(o.natsURL, copts...)
	if err != nil {
		return fmt.Errorf("cannot connect to NATS at %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	tenantTok := defaultTenant
	if o.tenant != "" {
		tenantTok = encodeToken(o.tenant)
	}
	filter := subjectPrefix + "." + tenantTok + "." + encodeToken(o.typ) + ".>"
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	emit := func(subject string, h nats.Header, data []byte, seq uint64, at time.Time) error {
		c, err := decodeChange(subject, h, data)
		if err != nil {
			fmt.Fprintf(stderr, "piazza-follow: skipping a message on %s: %v\n", subject, err)
			return nil
		}
		c.Seq = seq
		if !at.IsZero() {
			c.Time = at.UTC().Format(time.RFC3339Nano)
		}
		return enc.Encode(c)
	}

	if o.fromSeq == 0 && startTime.IsZero() && !o.current {
		msgs := make(chan *nats.Msg, 1024)
		sub, err := nc.ChanSubscribe(filter, msgs)
		if err != nil {
			return fmt.Errorf("subscribing to %s: %w", filter, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			return fmt.Errorf("subscribing to %s: %w", filter, err)
		}
		fmt.Fprintf(stderr, "piazza-follow: following %s live on %s\n", filter, nc.ConnectedUrlRedacted())
		for {
			select {
			case <-ctx.Done():
				return nil
			case m := <-msgs:
				if err := emit(m.Subject, m.Header, m.Data, 0, time.Time{}); err != nil {
					return err
				}
			}
		}
	}

	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.StreamNameBySubject(ctx, filter)
	if err != nil {
		return fmt.Errorf("no stream holds %s (has Piazza written anything for this tenant yet?): %w", filter, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	from := ""
	switch {
	case o.fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.fromSeq
		from = fmt.Sprintf("sequence %d", o.fromSeq)
	case !startTime.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &startTime
		from = startTime.UTC().Format(time.RFC3339Nano)
	default:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
		from = "the current state"
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("creating a consumer on stream %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consuming stream %s: %w", stream, err)
	}
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()
	fmt.Fprintf(stderr, "piazza-follow: replaying %s of stream %s from %s, then live, on %s\n", filter, stream, from, nc.ConnectedUrlRedacted())
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("reading stream %s: %w", stream, err)
		}
		var seq uint64
		var at time.Time
		if md, err := m.Metadata(); err == nil {
			seq, at = md.Sequence.Stream, md.Timestamp
		}
		if err := emit(m.Subject(), m.Headers(), m.Data(), seq, at); err != nil {
			return err
		}
	}
}

// decodeChange reads a message of the contract.
func decodeChange(subject string, h nats.Header, data []byte) (change, error) {
	var c change
	if v := h.Get(headerVersion); v != payloadVersion {
		return c, fmt.Errorf("payload version %q, this app reads version %s", v, payloadVersion)
	}
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != subjectPrefix {
		return c, errors.New("not a subject of the form piazza.<tenant>.<Type>.<id>")
	}
	var err error
	if parts[1] != defaultTenant {
		if c.Tenant, err = decodeToken(parts[1]); err != nil {
			return c, err
		}
	}
	if c.Type, err = decodeToken(parts[2]); err != nil {
		return c, err
	}
	if c.ID, err = decodeToken(parts[3]); err != nil {
		return c, err
	}
	if !json.Valid(data) {
		return c, errors.New("payload is not JSON")
	}
	c.Op, c.Entity = h.Get(headerOp), json.RawMessage(data)
	return c, nil
}

// encodeToken writes a tenant, type or id as a subject token: ASCII letters,
// digits, '-', '_' and ':' as they are, every other byte %XX (upper-case);
// the empty string is "%".
func encodeToken(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// decodeToken reverses encodeToken; any URL decoder does the same.
func decodeToken(t string) (string, error) {
	if t == "%" {
		return "", nil
	}
	s, err := url.PathUnescape(t)
	if err != nil {
		return "", fmt.Errorf("subject token %q: %w", t, err)
	}
	return s, nil
}
