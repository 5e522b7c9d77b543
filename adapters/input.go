package adapters

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Input is the input of a file-reading source: a file it opens by path
// ("-" for standard input) or a reader its caller owns. Sources embed it to
// have Size and Close as Source and Sizer require. Open is called from the
// goroutine running Source.Run; Size and Close may be called from any
// goroutine.
type Input struct {
	// Path is the file to open when R is nil ("-": standard input).
	Path string
	// R, when set, is read instead of Path; Close leaves it alone.
	R io.Reader
	// Kind prefixes errors ("csv", "json").
	Kind string

	mu   sync.Mutex
	file *os.File
	size int64
}

// Open returns the reader to read: R, standard input, or the file at Path,
// which Close closes.
func (in *Input) Open() (io.Reader, error) {
	if in.R != nil {
		return in.R, nil
	}
	if in.Path == "-" {
		return os.Stdin, nil
	}
	f, err := os.Open(in.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Kind, err)
	}
	in.mu.Lock()
	in.file = f
	if st, err := f.Stat(); err == nil {
		in.size = st.Size()
	}
	in.mu.Unlock()
	return f, nil
}

// Size returns the size of the file once Open has opened it (0 for readers
// and standard input).
func (in *Input) Size() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.size
}

// Close closes the file Open opened, if any; it is safe to call more than
// once.
func (in *Input) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.file == nil {
		return nil
	}
	err := in.file.Close()
	in.file = nil
	return err
}
