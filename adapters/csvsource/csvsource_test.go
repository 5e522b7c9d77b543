package csvsource

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/piazza-city/piazza/adapters"
)

// collect is an Emitter that keeps everything.
type collect struct {
	recs    []adapters.Record
	rejects []adapters.Record
	errs    []error
}

func (c *collect) Emit(r adapters.Record) error { c.recs = append(c.recs, r); return nil }
func (c *collect) Reject(r adapters.Record, err error) error {
	c.rejects = append(c.rejects, r)
	c.errs = append(c.errs, err)
	return nil
}
func (c *collect) Sync() error { return nil }

func read(t *testing.T, input string, cfg Config) *collect {
	t.Helper()
	s, err := FromReader("in.csv", strings.NewReader(input), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	if err := s.Run(context.Background(), &c); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return &c
}

func values(r adapters.Record) []string {
	out := make([]string, len(r.Values))
	for i, v := range r.Values {
		out[i] = v.(string)
	}
	return out
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		cfg     Config
		header  []string
		rows    [][]string
		lines   []int
		rejects int
	}{
		{"comma", "A,B\n1,2\n3,4\n", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}, {"3", "4"}}, []int{2, 3}, 0},
		{"semicolon auto", "A;B;C\n1,5;2;x\n", Config{}, []string{"A", "B", "C"}, [][]string{{"1,5", "2", "x"}}, []int{2}, 0},
		{"tab auto", "A\tB\n1\t2\n", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}}, []int{2}, 0},
		{"pipe configured", "A|B\n1|2\n", Config{Separator: "|"}, []string{"A", "B"}, [][]string{{"1", "2"}}, []int{2}, 0},
		{"bom utf8", "\xEF\xBB\xBFDATA,N\n01,ALÌ\n", Config{}, []string{"DATA", "N"}, [][]string{{"01", "ALÌ"}}, []int{2}, 0},
		{"crlf", "A,B\r\n1,2\r\n3,4", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}, {"3", "4"}}, []int{2, 3}, 0},
		{"quotes", "A,B\n\"x, y\",\"say \"\"hi\"\"\"\n", Config{}, []string{"A", "B"}, [][]string{{"x, y", `say "hi"`}}, []int{2}, 0},
		{"newline in quotes", "A,B\n\"two\nlines\",2\n3,4\n", Config{}, []string{"A", "B"}, [][]string{{"two\nlines", "2"}, {"3", "4"}}, []int{2, 4}, 0},
		{"blank lines", "A,B\n\n1,2\n  \t\n\n3,4\n", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}, {"3", "4"}}, []int{3, 6}, 0},
		{"latin1", "COMUNE\nCESAR\xd2\n", Config{Encoding: "latin-1"}, []string{"COMUNE"}, [][]string{{"CESARÒ"}}, []int{2}, 0},
		{"cp1252", "P\n\x8010\n", Config{Encoding: "windows-1252"}, []string{"P"}, [][]string{{"€10"}}, []int{2}, 0},
		{"skip lines", "Title of the table\nA,B\n1,2\n", Config{SkipLines: 1}, []string{"A", "B"}, [][]string{{"1", "2"}}, []int{3}, 0},
		{"columns", "1,2\n", Config{Columns: []string{"X", "Y"}}, []string{"X", "Y"}, [][]string{{"1", "2"}}, []int{1}, 0},
		{"trailing empty fields", "A,B\n1,2,,\n", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}}, []int{2}, 0},
		{"too few fields", "A,B\n1\n2,3\n", Config{}, []string{"A", "B"}, [][]string{{"2", "3"}}, []int{3}, 1},
		{"invalid utf8", "A\nCESAR\xd2\nok\n", Config{}, []string{"A"}, [][]string{{"ok"}}, []int{3}, 1},
		{"garbage after quote", "A,B\n\"x\"y,2\n3,4\n", Config{}, []string{"A", "B"}, [][]string{{"3", "4"}}, []int{3}, 1},
		{"unterminated quote at end", "A,B\n1,2\n\"open,3\n", Config{}, []string{"A", "B"}, [][]string{{"1", "2"}}, []int{2}, 1},
		{"header only", "A,B\n", Config{}, nil, nil, nil, 0},
		{"empty", "", Config{}, nil, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := read(t, tt.in, tt.cfg)
			if len(c.recs) != len(tt.rows) {
				t.Fatalf("got %d records, want %d (rejects: %v)", len(c.recs), len(tt.rows), c.errs)
			}
			for i, r := range c.recs {
				if got := strings.Join(r.Header.Names(), "|"); got != strings.Join(tt.header, "|") {
					t.Errorf("header %q, want %q", got, strings.Join(tt.header, "|"))
				}
				if got, want := strings.Join(values(r), "|"), strings.Join(tt.rows[i], "|"); got != want {
					t.Errorf("record %d = %q, want %q", i, got, want)
				}
				if r.Line != tt.lines[i] {
					t.Errorf("record %d line %d, want %d", i, r.Line, tt.lines[i])
				}
			}
			if len(c.rejects) != tt.rejects {
				t.Fatalf("got %d rejects (%v), want %d", len(c.rejects), c.errs, tt.rejects)
			}
			for _, err := range c.errs {
				if !errors.Is(err, adapters.ErrMalformedRecord) {
					t.Errorf("reject error %v does not wrap ErrMalformedRecord", err)
				}
			}
		})
	}
}

func TestRejectKeepsRawAndPosition(t *testing.T) {
	c := read(t, "A,B\n1,2\n\"x\"y,2\nCESAR\xd2,5\n", Config{})
	if len(c.rejects) != 2 {
		t.Fatalf("rejects = %d", len(c.rejects))
	}
	if c.rejects[0].Raw != `"x"y,2` || c.rejects[0].Line != 3 {
		t.Errorf("reject 0 = %q line %d", c.rejects[0].Raw, c.rejects[0].Line)
	}
	if c.rejects[1].Raw != "CESAR\xd2,5" || c.rejects[1].Line != 4 {
		t.Errorf("reject 1 = %q line %d", c.rejects[1].Raw, c.rejects[1].Line)
	}
	var re *adapters.RecordError
	if !errors.As(c.errs[1], &re) || re.Column != 1 || !strings.Contains(re.Error(), "latin-1") {
		t.Errorf("invalid UTF-8 error = %v, want column 1 and a hint about latin-1", c.errs[1])
	}
	if c.recs[0].Header.Raw() != "A,B" {
		t.Errorf("header raw = %q", c.recs[0].Header.Raw())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Path: "x.csv", Separator: "::"},
		{Path: "x.csv", Encoding: "ebcdic"},
		{Path: "x.csv", SkipLines: -1},
		{Path: "x.csv", Columns: []string{"a", " "}},
	} {
		if _, err := New(cfg); !errors.Is(err, adapters.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	cfg, _ := adapters.NewSourceConfig("csv", map[string]any{"path": "x.csv", "separtor": ";"})
	_, err := adapters.NewSource(cfg)
	if !errors.Is(err, adapters.ErrInvalidConfig) || !strings.Contains(err.Error(), `"separtor"`) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.csv")
	if err := os.WriteFile(p, []byte("A\n1\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // before Run
		t.Fatal(err)
	}
	var c collect
	if err := s.Run(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	if s.Size() != 6 || len(c.recs) != 2 || c.recs[1].Offset != 6 {
		t.Errorf("size %d, records %d, last offset %d", s.Size(), len(c.recs), c.recs[len(c.recs)-1].Offset)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // twice
		t.Fatal(err)
	}
	missing, _ := New(Config{Path: filepath.Join(dir, "nope.csv")})
	if err := missing.Run(context.Background(), &c); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_ = missing.Close()
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, _ := FromReader("x", strings.NewReader("A\n1\n"), Config{})
	if err := s.Run(ctx, &collect{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// FuzzCSV checks that any input is read without panicking, and that every
// record and reject carries a position and its raw text from the input.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{"A,B\n1,2\n", "A;B\n\"x\"\"y\";2\n", "\xEF\xBB\xBFA\n\"open\n", "A\n\"a\"b\n", "a,b\r\n\r\n1,2", "\"\n"} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, latin bool) {
		cfg := Config{}
		if latin {
			cfg.Encoding = "latin-1"
		}
		s, err := FromReader("fuzz", strings.NewReader(string(data)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var c collect
		if err := s.Run(context.Background(), &c); err != nil && !errors.Is(err, adapters.ErrMalformedRecord) {
			t.Fatalf("Run: %v", err) // only a malformed header may stop the input
		}
		for _, r := range append(c.recs, c.rejects...) {
			if r.Line < 1 || !strings.Contains(string(data), strings.TrimRight(r.Raw[:min(len(r.Raw), 200)], "\r")) {
				t.Fatalf("record line %d raw %q not from input", r.Line, r.Raw)
			}
		}
	})
}

func TestOverlongRecord(t *testing.T) {
	for name, in := range map[string]string{
		"open quote":    "A,B\n\"open" + strings.Repeat("x", MaxRecordBytes+10) + "\n1,2\n",
		"one long line": "A,B\n" + strings.Repeat("x", MaxRecordBytes+100_000) + ",1\n1,2\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := read(t, in, Config{})
			if len(c.rejects) != 1 || len(c.recs) != 1 || values(c.recs[0])[1] != "2" || c.recs[0].Line != 3 {
				t.Fatalf("records %d, rejects %d", len(c.recs), len(c.rejects))
			}
			if len(c.rejects[0].Raw) != 200 || !strings.Contains(c.errs[0].Error(), "longer than") {
				t.Errorf("reject raw %d bytes, error %v", len(c.rejects[0].Raw), c.errs[0])
			}
		})
	}
}

// FuzzCSVRoundTrip writes arbitrary cells with encoding/csv and checks that
// the reader gives back exactly those cells, with no record lost or added.
func FuzzCSVRoundTrip(f *testing.F) {
	f.Add("a\x00b\x00c,d\x00\"q\"\x00line\nbreak\x00 lead\x00", uint8(0), false)
	f.Add("ALÌ\x00\r\n\x00;\x00", uint8(1), true)
	f.Fuzz(func(t *testing.T, s string, cols uint8, crlf bool) {
		s = strings.ToValidUTF8(s, "?")
		ncol := 2 + int(cols%3)
		cells := strings.Split(s, "\x00")
		var rows [][]string
		for len(cells) > 0 {
			row := make([]string, ncol)
			for i := range row {
				row[i] = "x"
				if len(cells) > 0 {
					row[i], cells = cells[0], cells[1:]
				}
			}
			rows = append(rows, row)
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		w.UseCRLF = crlf
		header := make([]string, ncol)
		for i := range header {
			header[i] = fmt.Sprintf("c%d", i)
		}
		w.Write(header)
		w.WriteAll(rows)
		c := read(t, b.String(), Config{Separator: ","})
		if len(c.rejects) > 0 {
			t.Fatalf("rejects %v for %q", c.errs, b.String())
		}
		if len(c.recs) != len(rows) {
			t.Fatalf("%d records, want %d, from %q", len(c.recs), len(rows), b.String())
		}
		for i, r := range c.recs {
			want := rows[i]
			for j := range want {
				if crlf {
					want[j] = strings.ReplaceAll(want[j], "\r", "") // encoding/csv's writer drops \r with UseCRLF
				}
				want[j] = strings.ReplaceAll(want[j], "\r\n", "\n") // as encoding/csv reads it too
			}
			if got := values(r); !reflect.DeepEqual(got, want) {
				t.Fatalf("record %d = %q, want %q (input %q)", i, got, want, b.String())
			}
		}
	})
}
