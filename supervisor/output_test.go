package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hupd/hupd/internal/logev"
)

// copyLines runs o's copier over input, written to a pipe, to the sink and
// returns once it has copied everything.
func copyLines(t testing.TB, o *output, to sink, input []byte) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o.copy(r, to)
	go func() { w.Write(input); w.Close() }()
	o.copying.Wait()
}

func TestOutputRingKeepsLastLines(t *testing.T) {
	o := &output{gen: 3, pid: 42}
	var in bytes.Buffer
	for i := range keptLines + 5 {
		in.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	in.WriteString("unterminated")
	var out bytes.Buffer
	copyLines(t, o, sink{w: &out, stream: StreamStdout, prefix: "P "}, in.Bytes())
	if !strings.HasPrefix(out.String(), "P line 0\nP line 1\n") || !strings.HasSuffix(out.String(), "P unterminated") {
		t.Fatalf("copied %q, want every line prefixed", out.String())
	}
	kept := o.kept()
	if len(kept) != keptLines {
		t.Fatalf("kept %d lines, want %d", len(kept), keptLines)
	}
	if kept[0].Text != "line 6" || kept[len(kept)-1].Text != "unterminated" {
		t.Fatalf("kept %q … %q, want line 6 … unterminated", kept[0].Text, kept[len(kept)-1].Text)
	}
	for _, l := range kept {
		if l.Gen != 3 || l.PID != 42 || l.Stream != StreamStdout || l.Time.IsZero() {
			t.Fatalf("kept %+v, want gen 3 pid 42 stdout with a time", l)
		}
	}
	tail := o.tail()
	if len(tail) != tailLines || tail[tailLines-1] != "unterminated" || tail[0] != "line "+strconv.Itoa(keptLines+5-tailLines+1) {
		t.Fatalf("tail %q", tail)
	}
}

func TestOutputRecordsAreJSON(t *testing.T) {
	o := &output{gen: 2, pid: 7}
	s := &Supervisor{}
	s.book.add(o)
	var out bytes.Buffer
	rec := slog.New(slog.NewJSONHandler(&out, nil))
	long := strings.Repeat("x", 5000)
	copyLines(t, o, sink{w: io.Discard, rec: rec, stream: StreamStderr, prefix: "ignored "}, []byte("hello\nbad \xff\xfe byte\r\n"+long+"\n"))
	var texts []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if m["msg"] != logev.ChildOutput || m[KeyGen] != 2.0 || m[KeyPID] != 7.0 || m[KeyStream] != StreamStderr || m["time"] == nil {
			t.Fatalf("record %v, want %q with gen 2 pid 7 stream stderr", m, logev.ChildOutput)
		}
		texts = append(texts, m[KeyOutput].(string))
	}
	// A line longer than a record's worth (4 KiB) comes in records of
	// up to that each, nothing lost.
	if len(texts) < 3 || texts[0] != "hello" || texts[1] != `bad \xff\xfe byte` || strings.Join(texts[2:], "") != long {
		t.Fatalf("records carry %q", texts)
	}
	kept := s.Logs(0, 0)
	if len(kept) != 3 || kept[1].Text != `bad \xff\xfe byte` || len(kept[2].Text) != maxKeptLine {
		t.Fatalf("kept %+v: want 3 lines, escaped, the long one capped", kept)
	}
	if raw := o.tail(); raw[1] != "bad \xff\xfe byte" {
		t.Fatalf("tail %q: want the lines as written", raw)
	}
}

func TestLogbookKeepsNewestGenerations(t *testing.T) {
	s := &Supervisor{}
	outs := make([]*output, keptGens+1)
	for i := range outs {
		outs[i] = &output{gen: i + 1, pid: 100 + i}
		s.book.add(outs[i])
		outs[i].keep(StreamStdout, "a"+strconv.Itoa(i+1))
		outs[i].keep(StreamStderr, "b"+strconv.Itoa(i+1))
	}
	if got := s.Logs(1, 0); len(got) != 0 {
		t.Fatalf("generation 1 beyond the last %d: kept %+v", keptGens, got)
	}
	if got := s.Logs(2, 0); len(got) != 2 || got[0].Text != "a2" || got[1].Text != "b2" {
		t.Fatalf("generation 2: %+v", got)
	}
	got := s.Logs(0, 3)
	if len(got) != 3 || got[0].Text != "b4" || got[1].Text != "a5" || got[2].Text != "b5" {
		t.Fatalf("last 3 lines of all: %+v", got)
	}
}

func TestFollowLogs(t *testing.T) {
	s := &Supervisor{}
	o1, o2 := &output{gen: 1, pid: 10}, &output{gen: 2, pid: 20}
	s.book.add(o1)
	s.book.add(o2)
	o1.keep(StreamStdout, "before")
	kept, lines, stop := s.FollowLogs(2, 10)
	if len(kept) != 0 {
		t.Fatalf("generation 2 kept %+v, want none yet", kept)
	}
	o1.keep(StreamStdout, "other generation")
	o2.keep(StreamStderr, "after")
	select {
	case l := <-lines:
		if l.Gen != 2 || l.PID != 20 || l.Text != "after" || l.Stream != StreamStderr {
			t.Fatalf("followed %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no line followed")
	}
	for range followBuffer + 3 {
		o2.keep(StreamStdout, "flood")
	}
	// The follower catches up: the next line it gets says how many it
	// lost before it; the one after, none.
	for i := range followBuffer {
		if l := <-lines; l.Text != "flood" || l.Dropped != 0 {
			t.Fatalf("queued line %d: %+v", i, l)
		}
	}
	o2.keep(StreamStdout, "next")
	o2.keep(StreamStdout, "then")
	if l := <-lines; l.Text != "next" || l.Dropped != 3 {
		t.Fatalf("line after the drops: %+v, want next with 3 dropped", l)
	}
	if l := <-lines; l.Text != "then" || l.Dropped != 0 {
		t.Fatalf("line after that: %+v, want then with none dropped", l)
	}
	for range followBuffer + 1 {
		o2.keep(StreamStdout, "flood")
	}
	if dropped := stop(); dropped != 4 {
		t.Fatalf("dropped %d, want 4", dropped)
	}
	o2.keep(StreamStdout, "after stop")
	if n := len(lines); n != followBuffer {
		t.Fatalf("%d lines queued after stop, want %d", n, followBuffer)
	}
}

// TestKeptLinesHandover: the kept lines an upgrade hands over (as JSON)
// come back the same: time, stream, and bytes that are not UTF-8.
func TestKeptLinesHandover(t *testing.T) {
	var b logbook
	o1, o2 := &output{gen: 1, pid: 10}, &output{gen: 2, pid: 20}
	b.add(o1)
	b.add(o2)
	o1.keepAt(time.Unix(100, 5), StreamStderr, "bad \xff byte")
	o1.keepAt(time.Unix(101, 0), StreamStdout, "two")
	o2.keepAt(time.Unix(102, 0), "", "handed over before")
	data, err := json.Marshal(b.handover())
	if err != nil {
		t.Fatal(err)
	}
	var kept []KeptOutput
	if err := json.Unmarshal(data, &kept); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Gen != 1 || kept[0].PID != 10 || kept[1].Gen != 2 {
		t.Fatalf("handed over %+v", kept)
	}
	for i, o := range []*output{o1, o2} {
		back := &output{gen: kept[i].Gen, pid: kept[i].PID}
		back.restore(kept[i].Lines)
		got, want := back.kept(), o.kept()
		if len(got) != len(want) {
			t.Fatalf("generation %d: %+v, want %+v", o.gen, got, want)
		}
		for j := range want {
			if !got[j].Time.Equal(want[j].Time) || got[j].Stream != want[j].Stream || got[j].Text != want[j].Text || got[j].PID != want[j].PID {
				t.Errorf("generation %d line %d: %+v, want %+v", o.gen, j, got[j], want[j])
			}
		}
	}
}

// BenchmarkOutputCopy measures what copying a child's output costs per
// line: raw (text logs, as before records existed) and as JSON records.
func BenchmarkOutputCopy(b *testing.B) {
	line := []byte(strings.Repeat("0123456789", 8) + "\n")
	input := bytes.Repeat(line, 1000)
	for _, mode := range []string{"raw", "json"} {
		b.Run(mode, func(b *testing.B) {
			to := sink{w: io.Discard, stream: StreamStdout}
			if mode == "json" {
				to.rec = slog.New(slog.NewJSONHandler(io.Discard, nil))
			}
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				o := &output{gen: 1, pid: 1}
				var book logbook
				book.add(o)
				copyLines(b, o, to, input)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/line")
		})
	}
}

// TestSinkPrefixes: raw lines (text logs) are labelled "[gen N pid P] "
// with OutputPrefix, "[gen N.I pid P] " for instance I; a program of
// several adds its name ("[web gen N pid P] "), or alone "[web] ";
// one program without OutputPrefix is copied unchanged; records get none.
func TestSinkPrefixes(t *testing.T) {
	s := &Supervisor{}
	for _, tc := range []struct {
		prefix  bool
		program string
		inst    int
		want    string
	}{
		{false, "", 0, ""},
		{true, "", 0, "[gen 3 pid 42] "},
		{true, "", 1, "[gen 3.1 pid 42] "},
		{false, "web", 0, "[web] "},
		{true, "web", 0, "[web gen 3 pid 42] "},
		{true, "web", 2, "[web gen 3.2 pid 42] "},
	} {
		o := &Options{OutputPrefix: tc.prefix, OutputProgram: tc.program}
		out, errs := s.sinks(o, 3, tc.inst, 42)
		if out.prefix != tc.want || errs.prefix != tc.want {
			t.Errorf("prefix %v, program %q, instance %d: %q and %q, want %q", tc.prefix, tc.program, tc.inst, out.prefix, errs.prefix, tc.want)
		}
		o.OutputRecords = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }
		if out, _ := s.sinks(o, 3, tc.inst, 42); out.prefix != "" || out.rec == nil {
			t.Errorf("records: prefix %q", out.prefix)
		}
	}
}

// writeLog is a shared output (hupd's stdout) that records each Write.
type writeLog struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(b))
	w.mu.Unlock()
	return len(b), nil
}

// TestPrefixedLinesWholeWrites: two programs' copiers writing many lines
// at once to one stdout: each prefixed line is one Write, its prefix in
// it, so that no line of one lands between the other's prefix and its
// line (they were two writes); a line longer than a piece is written as
// prefixed lines of up to PIPE_BUF each (its continuation was
// unlabelled).
func TestPrefixedLinesWholeWrites(t *testing.T) {
	const n = 2000
	long := strings.Repeat("x", 10000)
	shared := &writeLog{}
	input := func(name string) []byte {
		var in bytes.Buffer
		for i := range n {
			fmt.Fprintf(&in, "%s line %d\n", name, i)
			if i == n/2 {
				in.WriteString(long + "\n")
			}
		}
		return in.Bytes()
	}
	var wg sync.WaitGroup
	for _, name := range []string{"app", "web"} {
		wg.Go(func() {
			copyLines(t, &output{gen: 1, pid: 1}, sink{w: shared, stream: StreamStdout, prefix: "[" + name + "] "}, input(name))
		})
	}
	wg.Wait()
	got := map[string][]string{}
	for _, w := range shared.writes {
		name, line, ok := strings.Cut(strings.TrimPrefix(w, "["), "] ")
		if !strings.HasPrefix(w, "[") || !ok || !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("a write that is not one prefixed line: %.80q", w)
		}
		got[name] = append(got[name], strings.TrimSuffix(line, "\n"))
	}
	for _, name := range []string{"app", "web"} {
		lines := got[name]
		if len(lines) != n+3 { // the long line in 3 pieces
			t.Fatalf("%s: %d lines, want %d", name, len(lines), n+3)
		}
		if joined := strings.Join(lines[n/2+1:n/2+4], ""); joined != long || len(lines[n/2+1]) > 4<<10 {
			t.Fatalf("%s: the long line's pieces %d, %d, %d bytes", name, len(lines[n/2+1]), len(lines[n/2+2]), len(lines[n/2+3]))
		}
		if lines[0] != name+" line 0" || lines[n+2] != fmt.Sprintf("%s line %d", name, n-1) {
			t.Fatalf("%s: first %q, last %q", name, lines[0], lines[n+2])
		}
	}
}

// TestLongLinePieces: a line longer than one piece (PIPE_BUF with its
// prefix, or a record's worth) is copied in pieces, each one Write of a
// prefixed line or one record, cut between UTF-8 characters; a piece goes
// only once more of its line has come, so that none is empty (a 4096-byte
// line gave a line of the prefix alone, and a record with no output) and
// output that ends without a newline gets none. Unprefixed output is
// copied unchanged.
func TestLongLinePieces(t *testing.T) {
	x := strings.Repeat
	const prefix = "[a] " // pieces of 4091 bytes: 4096 with the prefix and a newline
	for _, tc := range []struct {
		name, in string
		prefixed []int // the pieces' lengths, prefixed
		records  []int // as records
	}{
		{"4095", x("x", 4095) + "\n", []int{4091, 4}, []int{4095}},
		{"4096", x("x", 4096) + "\n", []int{4091, 5}, []int{4096}},
		{"4097", x("x", 4097) + "\n", []int{4091, 6}, []int{4096, 1}},
		{"8192", x("x", 8192) + "\n", []int{4091, 4091, 10}, []int{4096, 4096}},
		{"crlf", x("x", 4096) + "\r\n", []int{4091, 5}, []int{4096}},
		{"crlf after a piece", x("x", 4097) + "\r\nnext\n", []int{4091, 6, 4}, []int{4096, 1, 4}},
		// A line of a whole piece's bytes whose "\r\n" would make its Write
		// one byte more than PIPE_BUF: its last byte goes with the ending.
		{"crlf at the piece limit", x("x", 4091) + "\r\n", []int{4090, 1}, []int{4091}},
		{"newline at the piece limit", x("x", 4091) + "\n", []int{4091}, []int{4091}},
		{"crlf at the write limit", x("x", 4094) + "\r\n", []int{4091, 3}, []int{4094}},
		{"utf8 at the piece", x("x", 4090) + "é" + "y\n", []int{4090, 3}, []int{4093}},
		{"utf8 at the buffer", x("x", 4095) + "é\n", []int{4091, 6}, []int{4095, 2}},
		{"no newline", x("x", 8192), []int{4091, 4091, 10}, []int{4096, 4096}},
		{"no newline 4096", x("x", 4096), []int{4091, 5}, []int{4096}},
		{"short lines", "a\n\nb", []int{1, 0, 1}, []int{1, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string // the input's lines, without newlines
			for l := range strings.Lines(tc.in) {
				lines = append(lines, strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r"))
			}
			checkKept := func(o *output) {
				t.Helper()
				kept := o.kept()
				if len(kept) != len(lines) {
					t.Fatalf("kept %d lines, want %d", len(kept), len(lines))
				}
				for i, k := range kept {
					if want := lines[i][:min(len(lines[i]), maxKeptLine)]; k.Text != want {
						t.Fatalf("kept line %d: %d bytes %.20q, want %d bytes", i, len(k.Text), k.Text, len(want))
					}
				}
			}

			// Prefixed: one Write per piece, within PIPE_BUF, a prefixed
			// line but for the input's last if it has no newline.
			o, w := &output{gen: 1, pid: 1}, &writeLog{}
			copyLines(t, o, sink{w: w, stream: StreamStdout, prefix: prefix}, []byte(tc.in))
			var got []int
			var joined strings.Builder
			for i, s := range w.writes {
				body, ok := strings.CutPrefix(s, prefix)
				if !ok || len(s) > 4096 || !utf8.ValidString(s) {
					t.Fatalf("write %d: %d bytes %.20q, want a prefixed piece of valid UTF-8 within 4096 bytes", i, len(s), s)
				}
				last := i == len(w.writes)-1 && !strings.HasSuffix(tc.in, "\n")
				if !last && !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") > 1 {
					t.Fatalf("write %d: %.20q…%q, want one line", i, s, s[max(0, len(s)-8):])
				}
				piece := trimNewline([]byte(body))
				joined.Write(piece)
				got = append(got, len(piece))
			}
			if !slices.Equal(got, tc.prefixed) {
				t.Fatalf("prefixed pieces of %v bytes, want %v", got, tc.prefixed)
			}
			if want := strings.Join(lines, ""); joined.String() != want {
				t.Fatalf("pieces carry %d bytes, want %d", joined.Len(), len(want))
			}
			checkKept(o)

			// Records: one per piece, valid UTF-8.
			o, w = &output{gen: 1, pid: 1}, &writeLog{}
			copyLines(t, o, sink{w: io.Discard, rec: slog.New(slog.NewJSONHandler(w, nil)), stream: StreamStdout}, []byte(tc.in))
			got = got[:0]
			var text strings.Builder
			for _, s := range w.writes {
				var m map[string]any
				if err := json.Unmarshal([]byte(s), &m); err != nil {
					t.Fatal(err)
				}
				out := m[KeyOutput].(string)
				if strings.ContainsRune(out, utf8.RuneError) || strings.Contains(out, `\x`) {
					t.Fatalf("record %.20q…: a character cut", out)
				}
				text.WriteString(out)
				got = append(got, len(out))
			}
			if !slices.Equal(got, tc.records) {
				t.Fatalf("records of %v bytes, want %v", got, tc.records)
			}
			if want := strings.Join(lines, ""); text.String() != want {
				t.Fatalf("records carry %d bytes, want %d", text.Len(), len(want))
			}
			checkKept(o)

			// Unprefixed: byte for byte, each Write within PIPE_BUF.
			w = &writeLog{}
			copyLines(t, &output{gen: 1, pid: 1}, sink{w: w, stream: StreamStdout}, []byte(tc.in))
			for i, s := range w.writes {
				if len(s) > 4096 {
					t.Fatalf("unprefixed write %d: %d bytes, want at most 4096", i, len(s))
				}
			}
			if raw := strings.Join(w.writes, ""); raw != tc.in {
				t.Fatalf("copied %d bytes %.20q…, want the input's %d unchanged", len(raw), raw, len(tc.in))
			}
		})
	}
}
