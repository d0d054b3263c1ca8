package supervisor

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hupd/hupd/internal/logev"
)

// What hupd keeps of its children's output, per generation, for a failed
// start's explanation and for hupd logs. The bound is fixed: at most
// keptLines lines of at most maxKeptLine bytes for each of the last
// keptGens generations (live or exited), so at most about 400 KiB however
// much the children write (typically a few KiB: lines are short). A
// generation of N instances keeps a ring per instance of keptLines*16/N
// lines (ringSize: at least minRing), and of its exited starts the last
// keptPerGen rings.
const (
	// tailLines is how many of the last lines a failed start or reload
	// reports (ReloadResult.Output, an upgrade's hand-over).
	tailLines = 20
	// keptLines is how many lines the ring of each generation holds.
	keptLines = 100
	// keptGens is how many generations' rings hupd keeps: the newest ones,
	// exited ones included, so that an operator sees why a start failed.
	keptGens = 4
	// keptRuns is how many starts of one instance of a generation keep
	// their rings (an instance is restarted alone, in its generation).
	keptRuns = 2
	// keptPerGen bounds the rings of exited instance starts kept per
	// generation.
	keptPerGen = 16
	// maxKeptLine caps each kept line.
	maxKeptLine = 1024
)

// Output streams (OutputLine.Stream).
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// KeyStream is the stream a child's output line came from.
const KeyStream = "stream"

// OutputLine is one line a generation wrote, as hupd keeps it. Text has no
// newline; bytes that are not UTF-8 are escaped as \xNN.
type OutputLine struct {
	Time time.Time `json:"time"`
	Gen  int       `json:"gen"`
	PID  int       `json:"pid"`
	// Instance is the index of the instance that wrote it (Options.Instances).
	Instance int    `json:"instance,omitempty"`
	Stream   string `json:"stream,omitempty"` // "" for lines handed over by an upgrade
	Text     string `json:"line"`
	// Dropped, in a followed line (FollowLogs), is how many lines the
	// follower lost just before this one, not keeping up.
	Dropped int `json:"-"`
}

// output copies a generation's stdout or stderr to hupd's own, unchanged
// or with a "[gen N pid P] " prefix per line (a program of several: its
// name in it, or "[NAME] " alone), or as log records (JSON logs), and
// keeps the last lines (a ring of keptLines) so that a failed start can be
// explained and hupd logs can show them. A prefixed line is written with
// its prefix in one Write, so that another copier's line (another
// program's, on the same stdout) cannot land between them; a line longer
// than fits in PIPE_BUF with its prefix is written as several lines,
// each prefixed (copyFrom).
type output struct {
	copying sync.WaitGroup // the copiers, until their pipes close
	// files guards closing the read ends, which the copiers do at EOF:
	// an upgrade pins them to hand the open ones over.
	files  sync.Mutex
	closed map[*os.File]bool

	gen, pid int // set before the copiers start
	inst     int // the instance's index (Options.Instances)
	// size is the ring's length (0: keptLines): smaller for each of many
	// instances (ringSize), so that a generation keeps about as much as
	// one of a single program.
	size int
	// ended: its process has exited (onExit): only such rings are dropped
	// beyond keptPerGen.
	ended atomic.Bool
	book  *logbook // nil: lines are kept but nobody follows them

	mu    sync.Mutex // the ring; taken after book.mu
	lines []keptLine
	next  int
	full  bool
}

// keptLine is a line in the ring: small, with one pointer (the ring is
// written for every line a child writes; its generation and PID are the
// output's).
type keptLine struct {
	at     int64 // Unix nanoseconds
	text   string
	stream uint8 // an index in streams
}

// streams are the kept lines' streams: "" for a line handed over by an
// upgrade.
var streams = [...]string{"", StreamStdout, StreamStderr}

func streamIndex(stream string) uint8 {
	switch stream {
	case StreamStdout:
		return 1
	case StreamStderr:
		return 2
	}
	return 0
}

func (o *output) line(k keptLine) OutputLine {
	return OutputLine{Time: time.Unix(0, k.at), Gen: o.gen, PID: o.pid, Instance: o.inst, Stream: streams[k.stream], Text: k.text}
}

// sink is where one stream's lines go.
type sink struct {
	w      io.Writer    // raw lines, when rec is nil
	prefix string       // before each raw line
	rec    *slog.Logger // non-nil: each line becomes a record here
	stream string
	// inst is the instance's index in records (KeyInst), for a program
	// that runs as several instances; empty otherwise.
	inst slog.Attr
}

// maxPiece bounds what one Write or record of a child's line carries:
// PIPE_BUF, so that a Write of a prefixed line to a pipe is atomic
// (another program's copier cannot land inside it). A longer line is
// copied in pieces, each prefixed, as lines of their own.
const maxPiece = 4096

// copyBuf is the copier's read buffer: a line of maxPiece bytes fits in
// it with its "\r\n".
const copyBuf = maxPiece + 2

// copier is the state of one stream's copier (copyFrom): its buffers are
// reused for every line.
type copier struct {
	o     *output
	to    sink
	limit int // of a line's bytes in one piece (pieceLimit)
	// read is when the data being copied was read: one clock read per
	// read from the pipe, not one per line (the clock costs more than the
	// rest).
	read     time.Time
	partial  []byte // the line being copied, capped at maxKeptLine, to keep
	prefixed []byte // a prefix and its piece, for one Write
}

// pieceLimit is how many bytes of a line one piece carries to the sink:
// with a prefix, what fits in maxPiece with the prefix and a newline.
func (to sink) pieceLimit() int {
	if to.rec != nil || to.prefix == "" {
		return maxPiece
	}
	return max(maxPiece-len(to.prefix)-1, 64)
}

// fits reports whether the rest of a line, b (its line ending included),
// goes to the sink as one piece: at most limit bytes of the line, and as
// a Write, prefix and line ending included, at most maxPiece bytes (a
// "\r\n" is one byte more than the newline pieceLimit counts).
func (c *copier) fits(b []byte) bool {
	return len(trimNewline(b)) <= c.limit && (c.to.rec != nil || len(c.to.prefix)+len(b) <= maxPiece)
}

// cutRune is where to cut b before its byte n (0 < n < len(b)) so that a
// UTF-8 character is not split: n, or the start of the character n is
// in (never 0); bytes that are not UTF-8 are cut anywhere.
func cutRune(b []byte, n int) int {
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i < n && !utf8.FullRune(b[i:n]) {
				return i
			}
			return n
		}
	}
	return n
}

// copyFrom reads r until EOF (every holder of the pipe's write end has
// exited or closed it) and writes to the sink. It runs in its own
// goroutine. A line longer than a piece (sink.pieceLimit) is copied in
// pieces cut between UTF-8 characters, each a prefixed line of its own or
// a record, and a piece is written only once more of its line has
// arrived: no piece is empty, and a line that ends without a newline gets
// none. The line is kept capped.
func (o *output) copyFrom(r *os.File, to sink) {
	defer o.copying.Done()
	defer o.closeFile(r)
	c := copier{o: o, to: to, limit: to.pieceLimit()}
	buf := make([]byte, copyBuf)
	n := 0 // bytes in buf: the start of a line, or the rest of one
	for {
		m, err := r.Read(buf[n:])
		if m > 0 {
			c.read = time.Now()
		}
		n += m
		start := 0
		for start < n {
			i := bytes.IndexByte(buf[start:n], '\n')
			if i < 0 {
				break
			}
			start += c.line(buf[start:start+i+1], true)
		}
		if err != nil {
			if start < n {
				c.line(buf[start:n], true) // it ends without a newline
			}
			return
		}
		if start == 0 && n == len(buf) {
			// The line goes on beyond the buffer: its pieces go now but
			// the last, which waits for the rest.
			start = c.line(buf, false)
		}
		n = copy(buf, buf[start:n])
	}
}

// line copies b to the sink in pieces of at most limit bytes of the line
// and returns how many bytes it copied. b is a whole line (with its
// newline, or without one at EOF) if whole, all of which it copies;
// otherwise the start of a longer line, of which it leaves at least 2
// bytes to go with what follows (so that the rest of a line is never
// empty, nor "\r" alone before its newline). A line goes to the ring when
// its last piece is copied, kept before it is written: whoever sees a
// line in hupd's output finds it in hupd logs.
func (c *copier) line(b []byte, whole bool) int {
	done := 0
	for {
		rest := b[done:]
		piece, last := rest, whole
		switch {
		case whole && c.fits(rest):
		case !whole && len(rest) <= c.limit+1:
			return done
		default:
			n := c.limit
			if t := len(trimNewline(rest)); whole && t <= c.limit {
				// Only its line ending does not fit: the line's last
				// byte goes with it, as a piece of its own.
				n = t - 1
			}
			piece, last = rest[:cutRune(rest, n)], false
		}
		if len(c.partial) < maxKeptLine {
			c.partial = append(c.partial, piece[:min(len(piece), maxKeptLine-len(c.partial))]...)
		}
		if last {
			c.o.keepAt(c.read, c.to.stream, string(trimNewline(c.partial)))
			c.partial = c.partial[:0]
		}
		switch {
		case c.to.rec != nil:
			c.o.record(c.to, trimNewline(piece))
		case c.to.prefix == "":
			c.to.w.Write(piece)
		default:
			c.prefixed = append(append(c.prefixed[:0], c.to.prefix...), piece...)
			if !last {
				c.prefixed = append(c.prefixed, '\n') // the rest is a line of its own, prefixed too
			}
			c.to.w.Write(c.prefixed)
		}
		done += len(piece)
		if last {
			return done
		}
	}
}

// record logs one line (or a piece of a long one) as a record.
func (o *output) record(to sink, line []byte) {
	to.rec.LogAttrs(context.Background(), slog.LevelInfo, logev.ChildOutput,
		slog.Int(KeyGen, o.gen), slog.Int(KeyPID, o.pid), slog.String(KeyStream, to.stream),
		slog.String(KeyOutput, escapeText(line)), to.inst)
}

// escapeText is b as a string with every byte that is not part of valid
// UTF-8 written as \xNN (JSON would otherwise turn them all into U+FFFD).
func escapeText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = append(out, '\\', 'x', hex[b[0]>>4], hex[b[0]&0xf])
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return string(out)
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// keep adds a line written now to the ring and hands it to whoever
// follows.
func (o *output) keep(stream, text string) { o.keepAt(time.Now(), stream, text) }

// keepAt adds a line written at t. The ring holds the text as it was
// written: it is escaped (escapeText) where it leaves hupd as JSON.
func (o *output) keepAt(t time.Time, stream, text string) {
	k := keptLine{at: t.UnixNano(), text: text, stream: streamIndex(stream)}
	if o.book != nil {
		o.book.mu.Lock()
		defer o.book.mu.Unlock()
	}
	o.mu.Lock()
	if o.lines == nil {
		o.lines = make([]keptLine, cmp.Or(o.size, keptLines))
	}
	o.lines[o.next] = k
	o.next = (o.next + 1) % len(o.lines)
	if o.next == 0 {
		o.full = true
	}
	o.mu.Unlock()
	if o.book != nil {
		o.book.publish(o, k)
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

// copy starts copying r to the sink in its own goroutine.
func (o *output) copy(r *os.File, to sink) {
	o.copying.Add(1)
	go o.copyFrom(r, to)
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

// kept returns the kept lines, oldest first.
func (o *output) kept() []OutputLine {
	o.mu.Lock()
	defer o.mu.Unlock()
	ring := o.lines[:o.next]
	if o.full {
		ring = append(o.lines[o.next:len(o.lines):len(o.lines)], ring...)
	}
	out := make([]OutputLine, len(ring))
	for i, k := range ring {
		out[i] = o.line(k)
	}
	return out
}

// restore keeps lines handed over by an upgrade (KeptOutput), as they were
// kept: with their time and stream.
func (o *output) restore(lines []KeptLine) {
	for _, l := range lines[max(0, len(lines)-keptLines):] {
		o.keepAt(l.Time, l.Stream, string(l.Text))
	}
}

// handover returns every kept generation's lines, oldest generation first,
// for an upgrade to hand over (Upgrade.Kept).
func (b *logbook) handover() []KeptOutput {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]KeptOutput, 0, len(b.outs))
	for _, o := range b.outs {
		k := KeptOutput{Gen: o.gen, Inst: o.inst, PID: o.pid}
		for _, l := range o.kept() {
			k.Lines = append(k.Lines, KeptLine{Time: l.Time, Stream: l.Stream, Text: []byte(l.Text)})
		}
		out = append(out, k)
	}
	return out
}

// tail returns the text of the last tailLines kept lines, oldest first.
func (o *output) tail() []string {
	ls := o.kept()
	ls = ls[max(0, len(ls)-tailLines):]
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// minRing is the smallest ring an instance gets (ringSize).
const minRing = 10

// ringSize is the ring length of each of n instances: keptLines for up to
// 16, then shrinking so that a generation keeps about 16 rings' worth.
func ringSize(n int) int {
	if n <= 16 {
		return keptLines
	}
	return max(keptLines*16/n, minRing)
}

// genPrefix is "[gen N pid P] ", or "[gen N.I pid P] " for instance I > 0
// of a program that runs as several (multi), as hupd logs and hupd status
// name it; with a program's name (one of several), "[NAME gen N pid P] ".
func genPrefix(program string, gen, inst int, multi bool, pid int) string {
	g := strconv.Itoa(gen)
	if multi && inst > 0 {
		g += "." + strconv.Itoa(inst)
	}
	if program != "" {
		program += " "
	}
	return "[" + program + "gen " + g + " pid " + strconv.Itoa(pid) + "] "
}

// sinks are where generation gen's (PID pid) stdout and stderr go under
// the options o.
func (s *Supervisor) sinks(o *Options, gen, inst, pid int) (stdout, stderr sink) {
	stdout = sink{w: orStdout(o.Stdout), stream: StreamStdout}
	stderr = sink{w: orStderr(o.Stderr), stream: StreamStderr}
	multi := o.Instances > 1 || inst > 0
	if o.OutputRecords != nil {
		stdout.rec = slog.New(o.OutputRecords(stdout.w))
		stderr.rec = slog.New(o.OutputRecords(stderr.w))
		if multi {
			stdout.inst = slog.Int(KeyInst, inst)
			stderr.inst = stdout.inst
		}
	} else if o.OutputPrefix {
		stdout.prefix = genPrefix(o.OutputProgram, gen, inst, multi, pid)
		stderr.prefix = stdout.prefix
	} else if o.OutputProgram != "" {
		stdout.prefix = "[" + o.OutputProgram + "] "
		stderr.prefix = stdout.prefix
	}
	return stdout, stderr
}

// logbook holds the outputs of the last keptGens generations and the
// followers of their lines (hupd logs -f). Its methods are safe anywhere.
type logbook struct {
	mu   sync.Mutex
	outs []*output // by generation, oldest first
	subs map[*follower]struct{}
}

// follower receives the lines of one generation (gen 0: of all) as they
// are kept. A follower that does not keep up loses lines (counted in
// dropped) rather than slow the copiers down.
type follower struct {
	gen     int
	ch      chan OutputLine
	dropped int
	missed  int // lost since the last line it got (OutputLine.Dropped)
}

// followBuffer is how many lines a follower may lag behind.
const followBuffer = 256

// add starts keeping o's lines, forgetting the oldest generation beyond
// keptGens.
func (b *logbook) add(o *output) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o.book = b
	// An instance restarted alone keeps the same generation: of each
	// instance, the outputs of its last keptRuns starts are kept.
	same := func(x *output) bool { return x.gen == o.gen && x.inst == o.inst }
	drop := 0
	for _, x := range b.outs {
		if same(x) {
			drop++
		}
	}
	drop -= keptRuns - 1
	b.outs = slices.DeleteFunc(b.outs, func(x *output) bool {
		if drop <= 0 || !same(x) {
			return false
		}
		drop--
		return true
	})
	b.outs = append(b.outs, o)
	// Of a generation's exited starts, the newest keptPerGen rings are
	// kept (live instances keep theirs: each is sized by ringSize).
	ended := func(x *output) bool { return x.gen == o.gen && x.ended.Load() }
	if n := len(slices.DeleteFunc(slices.Clone(b.outs), func(x *output) bool { return !ended(x) })); n > keptPerGen {
		drop := n - keptPerGen
		b.outs = slices.DeleteFunc(b.outs, func(x *output) bool {
			if drop == 0 || !ended(x) {
				return false
			}
			drop--
			return true
		})
	}
	// The newest keptGens generations by number (an instance of an older
	// one may be added after a newer one started).
	gens := make([]int, 0, len(b.outs))
	for _, x := range b.outs {
		gens = append(gens, x.gen)
	}
	slices.Sort(gens)
	if gens = slices.Compact(gens); len(gens) > keptGens {
		oldest := gens[len(gens)-keptGens-1]
		b.outs = slices.DeleteFunc(b.outs, func(x *output) bool { return x.gen <= oldest })
	}
}

// publish hands o's line k to the followers; b.mu is held.
func (b *logbook) publish(o *output, k keptLine) {
	if len(b.subs) == 0 {
		return
	}
	l := o.line(k)
	l.Text = escapeText([]byte(l.Text))
	for f := range b.subs {
		if f.gen != 0 && f.gen != l.Gen {
			continue
		}
		fl := l
		fl.Dropped = f.missed
		select {
		case f.ch <- fl:
			f.missed = 0
		default:
			f.dropped++
			f.missed++
		}
	}
}

// lines returns the last n kept lines (n <= 0: all) of generation gen
// (0: of every kept generation), oldest first; with f, f follows from
// there on, missing none and repeating none.
func (b *logbook) lines(gen, n int, f *follower) []OutputLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ls []OutputLine
	for _, o := range b.outs {
		if gen == 0 || o.gen == gen {
			ls = append(ls, o.kept()...)
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].Time.Before(ls[j].Time) })
	if n > 0 && len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	for i := range ls {
		ls[i].Text = escapeText([]byte(ls[i].Text))
	}
	if f != nil {
		if b.subs == nil {
			b.subs = make(map[*follower]struct{})
		}
		b.subs[f] = struct{}{}
	}
	return ls
}

func (b *logbook) unfollow(f *follower) (dropped int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, f)
	return f.dropped
}

// Logs returns the last n output lines hupd keeps (n <= 0: all of them)
// of generation gen, or of every kept generation when gen is 0, oldest
// first. hupd keeps the last lines of the newest few generations, exited
// ones included (see keptLines, keptGens).
func (s *Supervisor) Logs(gen, n int) []OutputLine {
	return s.book.lines(gen, n, nil)
}

// FollowLogs is Logs, then every line kept from then on, on lines, until
// stop is called; stop returns how many lines were lost because the
// receiver did not keep up, and each line says how many were lost just
// before it (OutputLine.Dropped). lines is never closed.
func (s *Supervisor) FollowLogs(gen, n int) (kept []OutputLine, lines <-chan OutputLine, stop func() (dropped int)) {
	f := &follower{gen: gen, ch: make(chan OutputLine, followBuffer)}
	kept = s.book.lines(gen, n, f)
	return kept, f.ch, func() int { return s.book.unfollow(f) }
}
