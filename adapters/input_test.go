package adapters

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInput(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "in.csv")
		if err := os.WriteFile(p, []byte("a;b\n1;2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		in := &Input{Path: p, Kind: "csv"}
		if in.Size() != 0 || in.Close() != nil {
			t.Fatal("before Open: size 0 and Close a no-op")
		}
		r, err := in.Open()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(r); string(b) != "a;b\n1;2\n" || in.Size() != 8 {
			t.Fatalf("read %q, size %d", b, in.Size())
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
		if err := in.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := r.Read(make([]byte, 1)); err == nil {
			t.Fatal("the file is still open after Close")
		}
	})
	t.Run("reader", func(t *testing.T) {
		in := &Input{Path: "ignored", R: strings.NewReader("x"), Kind: "json"}
		r, err := in.Open()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(r); string(b) != "x" || in.Size() != 0 || in.Close() != nil {
			t.Fatalf("reader input: %q size %d", b, in.Size())
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := (&Input{Path: filepath.Join(t.TempDir(), "none"), Kind: "csv"}).Open()
		if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "csv: ") {
			t.Fatalf("missing file: %v", err)
		}
	})
}
