package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/schemas"
)

const validateUsage = `Usage:
  piazza validate [flags] FILE...

Checks NGSI-LD entities against their Smart Data Models, offline, as Piazza does when they are
written: the models built into Piazza, plus your own with --schemas-dir. Each FILE ('-' for standard
input) holds one entity or an array of entities, in the normalized, concise or keyValues form (read as
keyValues when no member looks like an NGSI-LD attribute, or always with --key-values), with an
"@context" of its own (JSON-LD; the Smart Data Models contexts are built in) or none (the NGSI-LD core
context). A type with no model is not checked (invalid with --unknown-types reject).

Prints a report per entity: OK, or each problem as a JSON pointer into the keyValues form and what is
wrong there. Flags may come before or after the files.

Examples:
  piazza validate AirQualityObserved.example.json
  piazza validate --schemas-dir ./models --json data/*.json > report.json

Exit status: 0 every entity is valid; 1 an entity is invalid or cannot be read as an entity;
2 bad usage, or a file that cannot be read or is not JSON.

Flags:
`

// validateFlags are the flags of 'piazza validate'.
type validateFlags struct {
	schemasDir, contextFiles, unknownTypes string
	keyValues, asJSON, offline             bool
	contextTimeout                         time.Duration
}

// validateViolation is one problem of an entity, in the --json report.
type validateViolation struct {
	Model   string `json:"model"`
	Pointer string `json:"pointer"`
	Message string `json:"message"`
	Keyword string `json:"keyword"`
}

// The statuses of an entity in the report.
const (
	statusValid     = "valid"     // it matches the model of each of its types that has one
	statusInvalid   = "invalid"   // a model objects, or its type has none under --unknown-types reject
	statusUnchecked = "unchecked" // none of its types has a model
	statusError     = "error"     // it could not be read as an NGSI-LD entity
)

// validateResult is the verdict on one entity.
type validateResult struct {
	File       string              `json:"file"`
	Index      int                 `json:"index"`
	ID         string              `json:"id,omitempty"`
	Types      []string            `json:"types,omitempty"`
	Form       string              `json:"form,omitempty"` // keyValues, or normalized (normalized or concise)
	Status     string              `json:"status"`
	Models     []string            `json:"models,omitempty"`
	Violations []validateViolation `json:"violations,omitempty"`
	Error      string              `json:"error,omitempty"`
}

// fileError is a file that could not be read as JSON.
type fileError struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// validateReport is the --json output.
type validateReport struct {
	OK         bool             `json:"ok"`
	ExitCode   int              `json:"exitCode"`
	Files      int              `json:"files"`
	Entities   int              `json:"entities"`
	Valid      int              `json:"valid"`
	Invalid    int              `json:"invalid"`
	Unchecked  int              `json:"unchecked"`
	Errors     int              `json:"errors"`
	Results    []validateResult `json:"results"`
	FileErrors []fileError      `json:"fileErrors,omitempty"`
}

func validate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f validateFlags
	fs.StringVar(&f.schemasDir, "schemas-dir", "", "directory of your own Smart Data Models schemas, <Type>.json (as piazza serve --schemas-dir)")
	fs.BoolVar(&f.keyValues, "key-values", false, "read every entity as keyValues (simplified), whatever it looks like")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON on standard output")
	fs.StringVar(&f.unknownTypes, "unknown-types", "allow", "entities whose types have no data model: allow (not checked) or reject (invalid)")
	fs.StringVar(&f.contextFiles, "context-files", "", "serve @context URLs from files: URL=PATH,URL=PATH")
	fs.BoolVar(&f.offline, "offline", false, "never fetch an @context that is neither built in nor in --context-files")
	fs.DurationVar(&f.contextTimeout, "context-timeout", 5*time.Second, "time allowed to fetch a remote @context")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), validateUsage)
		fs.PrintDefaults()
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "piazza validate: "+format+"\nRun 'piazza validate --help' for the flags and examples.\n", a...)
		return exitUsage
	}
	// Flags may follow the files: parse, take one file, parse the rest.
	var files []string
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
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) == 0 {
		return usageErr("no file to validate")
	}
	if f.unknownTypes != "allow" && f.unknownTypes != "reject" {
		return usageErr("--unknown-types: %q is neither allow nor reject", f.unknownTypes)
	}
	ctxFiles, err := parseContextFiles(f.contextFiles)
	if err != nil {
		return usageErr("--context-files: %v", err)
	}
	reg, err := schemas.NewRegistry(schemas.Options{Dir: f.schemasDir})
	if err != nil {
		return usageErr("%v", err)
	}
	reader := broker.NewDocumentReader(broker.DocumentOptions{
		KeyValues: f.keyValues, ContextFiles: ctxFiles, ContextTimeout: f.contextTimeout, Offline: f.offline,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := validateReport{Files: len(files), Results: []validateResult{}}
	stdinUsed := false
	for _, file := range files {
		var data []byte
		if file == "-" {
			if stdinUsed {
				return usageErr("standard input ('-') named twice")
			}
			stdinUsed = true
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			rep.FileErrors = append(rep.FileErrors, fileError{File: file, Error: err.Error()})
			continue
		}
		v, err := broker.DecodeJSON(data)
		if err != nil {
			rep.FileErrors = append(rep.FileErrors, fileError{File: file, Error: "not JSON: " + err.Error()})
			continue
		}
		des, err := reader.Read(ctx, v)
		if err != nil {
			rep.FileErrors = append(rep.FileErrors, fileError{File: file, Error: broker.Detail(err)})
			continue
		}
		for _, de := range des {
			rep.Results = append(rep.Results, judge(reg, file, de, f.unknownTypes == "reject"))
		}
	}
	for _, r := range rep.Results {
		switch r.Status {
		case statusValid:
			rep.Valid++
		case statusInvalid:
			rep.Invalid++
		case statusUnchecked:
			rep.Unchecked++
		case statusError:
			rep.Errors++
		}
	}
	rep.Entities = len(rep.Results)
	switch {
	case len(rep.FileErrors) > 0:
		rep.ExitCode = exitUsage
	case rep.Invalid > 0 || rep.Errors > 0:
		rep.ExitCode = exitFailed
	}
	rep.OK = rep.ExitCode == exitOK
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "piazza validate: %v\n", err)
			return exitUsage
		}
	} else {
		printReport(stdout, rep)
	}
	for _, fe := range rep.FileErrors {
		fmt.Fprintf(stderr, "piazza validate: %s: %s\n", fe.File, fe.Error)
	}
	return rep.ExitCode
}

// judge checks one entity read from a file.
func judge(reg *schemas.Registry, file string, de broker.DocumentEntity, rejectUnknown bool) validateResult {
	r := validateResult{File: file, Index: de.Index, ID: de.ID, Form: "normalized"}
	if de.KeyValues {
		r.Form = "keyValues"
	}
	if de.Err != nil {
		r.Status, r.Error = statusError, broker.Detail(de.Err)
		return r
	}
	r.Types = de.Entity.Types
	checks, err := broker.CheckModels(reg, de.Entity)
	if err != nil {
		r.Status, r.Error = statusError, err.Error()
		return r
	}
	var unknown []string
	for _, c := range checks {
		if c.Model == "" {
			unknown = append(unknown, c.Type)
			continue
		}
		r.Models = append(r.Models, c.Model)
		for _, v := range c.Violations {
			r.Violations = append(r.Violations, validateViolation{Model: c.Model, Pointer: v.Pointer, Message: v.Message, Keyword: v.Keyword})
		}
	}
	switch {
	case len(r.Violations) > 0:
		r.Status = statusInvalid
	case len(unknown) > 0 && rejectUnknown:
		r.Status, r.Error = statusInvalid, "no data model for type "+strings.Join(unknown, ", ")
	case len(r.Models) == 0:
		r.Status = statusUnchecked
	default:
		r.Status = statusValid
	}
	return r
}

// printReport writes the readable report: the entities of each file, then
// a summary line.
func printReport(w io.Writer, rep validateReport) {
	file := ""
	for _, r := range rep.Results {
		if r.File != file || file == "" {
			file = r.File
			fmt.Fprintf(w, "%s\n", displayName(file))
		}
		name := r.ID
		if name == "" {
			name = fmt.Sprintf("entity #%d (no id)", r.Index)
		}
		types := ""
		if len(r.Types) > 0 {
			types = " (" + strings.Join(r.Types, ", ") + ")"
		}
		switch r.Status {
		case statusValid:
			fmt.Fprintf(w, "  OK       %s%s: matches %s\n", name, types, strings.Join(r.Models, ", "))
		case statusUnchecked:
			fmt.Fprintf(w, "  OK       %s%s: no data model for this type, not checked\n", name, types)
		case statusError:
			fmt.Fprintf(w, "  ERROR    %s: %s\n", name, r.Error)
		case statusInvalid:
			if r.Error != "" {
				fmt.Fprintf(w, "  INVALID  %s%s: %s\n", name, types, r.Error)
				continue
			}
			var objecting []string
			for _, v := range r.Violations {
				if len(objecting) == 0 || objecting[len(objecting)-1] != v.Model {
					objecting = append(objecting, v.Model)
				}
			}
			multi := len(objecting) > 1
			if multi {
				fmt.Fprintf(w, "  INVALID  %s%s: %s\n", name, types, problems(len(r.Violations)))
			} else {
				fmt.Fprintf(w, "  INVALID  %s%s: %s with the %s model\n", name, types, problems(len(r.Violations)), objecting[0])
			}
			model := ""
			for _, v := range r.Violations {
				if multi && v.Model != model {
					model = v.Model
					fmt.Fprintf(w, "           %s model:\n", model)
				}
				p := v.Pointer
				if p == "" {
					p = "/"
				}
				fmt.Fprintf(w, "           %s: %s\n", p, v.Message)
			}
		}
	}
	fmt.Fprintf(w, "\n%s, %s: %d valid, %d invalid, %d not checked, %d unreadable\n",
		plural(rep.Files, "file"), plural(rep.Entities, "entity"), rep.Valid, rep.Invalid, rep.Unchecked, rep.Errors)
}

func displayName(file string) string {
	if file == "-" {
		return "(standard input)"
	}
	return file
}

func problems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
