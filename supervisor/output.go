package supervisor

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// tailLines is how many output lines hupd keeps per generation.
const tailLines = 20

// output copies a generation's stdout or stderr to hupd's own, unchanged
// or with a "[gen N pid P] " prefix per line, and keeps the last lines so
// that a failed start can be explained.
type output struct {
	copying sync.WaitGroup // the copiers, until their pipes close
	// files guards closing the read ends, which the copiers do at EOF:
	// an upgrade pins them to hand the open ones over.
	files  sync.Mutex
	closed map[*os.File]bool
	mu     sync.Mutex
	lines  []string // ring of the last tailLines lines
	next   int
	full   bool
}

// copyFrom reads r until EOF (every holder of the pipe's write end has
// exited or closed it) and writes to w. It runs in its own goroutine.
func (o *output) copyFrom(r *os.File, w io.Writer, prefix string) {
	defer o.copying.Done()
	defer o.closeFile(r)
	br := bufio.NewReaderSize(r, 4<<10)
	atStart := true
	var partial []byte // of a line longer than the buffer, capped
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart && prefix != "" {
				io.WriteString(w, prefix)
			}
			w.Write(chunk)
			atStart = chunk[len(chunk)-1] == '\n'
			if len(partial) < maxKeptLine {
				partial = append(partial, chunk[:min(len(chunk), maxKeptLine-len(partial))]...)
			}
			if atStart {
				o.keep(string(trimNewline(partial)))
				partial = partial[:0]
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(partial) > 0 {
				o.keep(string(partial))
			}
			return
		}
	}
}

// maxKeptLine caps each kept line.
const maxKeptLine = 1024

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func (o *output) keep(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines == nil {
		o.lines = make([]string, tailLines)
	}
	o.lines[o.next] = line
	o.next = (o.next + 1) % tailLines
	if o.next == 0 {
		o.full = true
	}
}

func (o *output) closeFile(r *os.File) {
	o.files.Lock()
	defer o.files.Unlock()
	r.Close()
	if o.closed == nil {
		o.closed = make(map[*os.File]bool)
	}
	o.closed[r] = true
}

// pin keeps the copiers from closing their pipes until release is
// called; meanwhile open tells whether r is still open.
func (o *output) pin() (open func(r *os.File) bool, release func()) {
	o.files.Lock()
	return func(r *os.File) bool { return r != nil && !o.closed[r] }, o.files.Unlock
}

// copy starts copying r to w in its own goroutine.
func (o *output) copy(r *os.File, w io.Writer, prefix string) {
	o.copying.Add(1)
	go o.copyFrom(r, w, prefix)
}

// settle waits, up to d, until everything the generation wrote has been
// copied: its pipes close once it and its process group are gone, unless
// a process that left the group still holds them.
func (o *output) settle(d time.Duration) {
	done := make(chan struct{})
	go func() { o.copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// tail returns the kept lines, oldest first.
func (o *output) tail() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.full {
		return append([]string(nil), o.lines[:o.next]...)
	}
	return append(append([]string(nil), o.lines[o.next:]...), o.lines[:o.next]...)
}

func genPrefix(gen, pid int) string {
	return "[gen " + strconv.Itoa(gen) + " pid " + strconv.Itoa(pid) + "] "
}
