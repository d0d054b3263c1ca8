package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// rawResponse is an answer as read off the wire.
type rawResponse struct {
	status string            // the status line
	header map[string]string // by canonical name; a repeated name fails
	body   string
}

func (r rawResponse) code() int {
	c, _ := strconv.Atoi(strings.Fields(r.status + " 0 0")[1])
	return c
}

// parseRaw parses an answer of the server strictly: CRLF line ends, each
// field once, the Content-Length of the body (or of a GET's, for a HEAD),
// and Connection: close; the body is all that follows the head.
func parseRaw(t *testing.T, raw string, head bool) rawResponse {
	t.Helper()
	h, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		t.Fatalf("answer without an end of head: %q", raw)
	}
	lines := strings.Split(h, "\r\n")
	r := rawResponse{status: lines[0], header: map[string]string{}, body: body}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ": ")
		if !ok || strings.ContainsAny(l, "\r\n") {
			t.Fatalf("malformed field %q in %q", l, raw)
		}
		if _, dup := r.header[k]; dup {
			t.Fatalf("%s twice in %q", k, raw)
		}
		r.header[k] = v
	}
	if !strings.HasPrefix(r.status, "HTTP/1.1 ") || r.status != "HTTP/1.1 "+strconv.Itoa(r.code())+" "+statusText(r.code()) {
		t.Fatalf("status line %q", r.status)
	}
	if r.header["Connection"] != "close" || r.header["Date"] == "" || r.header["Content-Type"] == "" {
		t.Fatalf("head %q: want Connection: close, a Date and a Content-Type", h)
	}
	if _, err := time.Parse(time.RFC1123, r.header["Date"]); err != nil || !strings.HasSuffix(r.header["Date"], " GMT") {
		t.Fatalf("Date %q: %v", r.header["Date"], err)
	}
	n, err := strconv.Atoi(r.header["Content-Length"])
	if err != nil || !head && n != len(body) || head && (body != "" || n == 0) {
		t.Fatalf("Content-Length %q, body %q (HEAD %v)", r.header["Content-Length"], body, head)
	}
	return r
}

// rawDo sends req on a new connection and reads until the server closes
// it, which must be a clean close (FIN, not RST).
func rawDo(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%q (%d bytes): %v after %q", req[:min(len(req), 80)], len(req), err, b)
	}
	return string(b)
}

// TestRawHTTP drives the server with requests written by hand: line
// endings, versions, request targets, bodies and pipelining that are
// valid, and malformed request lines and fields, which get 400 (505 for
// HTTP/2 and later). Each connection carries one answer, then EOF.
func TestRawHTTP(t *testing.T) {
	ts := start(t, Options{}, &fakeSource{st: ready(1)})
	addr := ts.Addr().String()
	const host = "Host: x\r\n"
	for _, tc := range []struct {
		name, req string
		code      int
		body      string // "" for any
	}{
		{"GET", "GET /livez HTTP/1.1\r\n" + host + "\r\n", 200, "ok\n"},
		{"HTTP/1.0 without Host", "GET /livez HTTP/1.0\r\n\r\n", 200, "ok\n"},
		{"HTTP/1.0 with Host", "GET /readyz HTTP/1.0\r\n" + host + "\r\n", 200, "ok\n"},
		{"LF only", "GET /readyz HTTP/1.1\nHost: x\nUser-Agent: raw\n\n", 200, "ok\n"},
		{"LF then CRLF", "GET /readyz HTTP/1.1\nHost: x\n\r\n", 200, "ok\n"},
		{"query", "GET /livez?verbose=1&x HTTP/1.1\r\n" + host + "\r\n", 200, "ok\n"},
		{"absolute form", "GET http://x:1/livez?a HTTP/1.1\r\nHost: x:1\r\n\r\n", 200, "ok\n"},
		{"fields without space", "GET /livez HTTP/1.1\r\nHost:x\r\nAccept:*/*\r\n\r\n", 200, "ok\n"},
		{"pipelined: one answer", "GET /livez HTTP/1.1\r\n" + host + "\r\nGET /readyz HTTP/1.1\r\n" + host + "\r\n", 200, "ok\n"},
		{"POST with a body", "POST /livez HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", 405, ""},
		{"chunked body", "PUT /metrics HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 405, ""},
		{"GET with a body", "GET /livez HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi", 200, "ok\n"},
		{"methods are case-sensitive", "get /livez HTTP/1.1\r\n" + host + "\r\n", 405, ""},
		{"unknown path", "GET /livez/ HTTP/1.1\r\n" + host + "\r\n", 404, ""},
		{"HTTP/0.9", "GET /livez\r\n\r\n", 400, "malformed request line\n"},
		{"empty request line", "\r\n\r\n", 400, "malformed request line\n"},
		{"two spaces", "GET  /livez HTTP/1.1\r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"space in target", "GET /li vez HTTP/1.1\r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"trailing space", "GET /livez HTTP/1.1 \r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"not a token", "G@T /livez HTTP/1.1\r\n" + host + "\r\n", 400, "malformed request line\n"},
		{"relative target", "GET livez HTTP/1.1\r\n" + host + "\r\n", 400, "malformed request target\n"},
		{"asterisk", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 400, "malformed request target\n"},
		{"control byte in target", "GET /livez\x01 HTTP/1.1\r\n" + host + "\r\n", 400, "malformed request target\n"},
		{"bad version", "GET /livez HTTX/1.1\r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"lowercase version", "GET /livez http/1.1\r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"HTTP/2.0", "GET /livez HTTP/2.0\r\n" + host + "\r\n", 505, "HTTP/1.1 only\n"},
		{"bare CR in the request line", "GET /livez HTTP/1.1\r\r\n" + host + "\r\n", 400, "malformed HTTP version\n"},
		{"no Host", "GET /livez HTTP/1.1\r\n\r\n", 400, "missing or repeated Host header field\n"},
		{"two Hosts", "GET /livez HTTP/1.1\r\n" + host + host + "\r\n", 400, "missing or repeated Host header field\n"},
		{"field without colon", "GET /livez HTTP/1.1\r\n" + host + "Accept */*\r\n\r\n", 400, "malformed header field\n"},
		{"space before colon", "GET /livez HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header field\n"},
		{"obsolete folding", "GET /livez HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", 400, "obsolete line folding\n"},
		{"bare CR in a field", "GET /livez HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", 400, "malformed header field\n"},
		{"bad Content-Length", "POST /livez HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400, "malformed Content-Length\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseRaw(t, rawDo(t, addr, tc.req), false)
			if r.code() != tc.code || tc.body != "" && r.body != tc.body {
				t.Fatalf("%q: %s %q; want %d %q", tc.req, r.status, r.body, tc.code, tc.body)
			}
			if r.header["Content-Type"] != textPlain {
				t.Errorf("Content-Type %q", r.header["Content-Type"])
			}
			if allow, ok := r.header["Allow"]; tc.code == 405 && allow != "GET, HEAD" || tc.code != 405 && ok {
				t.Errorf("%d with Allow %q", tc.code, allow)
			}
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		for path, ctype := range map[string]string{"/livez": textPlain, "/metrics": contentType} {
			get := parseRaw(t, rawDo(t, addr, "GET "+path+" HTTP/1.1\r\n"+host+"\r\n"), false)
			r := parseRaw(t, rawDo(t, addr, "HEAD "+path+" HTTP/1.1\r\n"+host+"\r\n"), true)
			if r.code() != 200 || r.header["Content-Type"] != ctype || get.header["Content-Type"] != ctype {
				t.Errorf("HEAD %s: %s, Content-Type %q; GET's %q; want 200 and %q", path, r.status, r.header["Content-Type"], get.header["Content-Type"], ctype)
			}
			if path == "/livez" && r.header["Content-Length"] != get.header["Content-Length"] {
				t.Errorf("HEAD %s: Content-Length %s, GET's %s", path, r.header["Content-Length"], get.header["Content-Length"])
			}
		}
	})
}

// TestHeadSize: a head of maxHead bytes is served; one byte more is
// answered 431, with the rest of what the client sent read and dropped so
// that the client gets the answer rather than a reset.
func TestHeadSize(t *testing.T) {
	ts := start(t, Options{}, &fakeSource{st: ready(1)})
	addr := ts.Addr().String()
	head := func(size int) string {
		const pre, post = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
		return pre + strings.Repeat("a", size-len(pre)-len(post)) + post
	}
	if r := parseRaw(t, rawDo(t, addr, head(maxHead)), false); r.code() != 200 {
		t.Errorf("a head of %d bytes: %s", maxHead, r.status)
	}
	for _, req := range []string{
		head(maxHead + 1),
		head(64 << 10),
		"GET /" + strings.Repeat("a", maxHead) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		strings.Repeat("b", maxHead), // no line end at all
	} {
		if r := parseRaw(t, rawDo(t, addr, req), false); r.code() != 431 || r.body != "request head larger than 8 KiB\n" {
			t.Errorf("a head of %d bytes: %s %q, want 431", len(req), r.status, r.body)
		}
	}
}

// TestHalfClosed: a client that ends its side within the head gets 400;
// one that ends it after a whole head gets its answer.
func TestHalfClosed(t *testing.T) {
	ts := start(t, Options{}, &fakeSource{st: ready(1)})
	for req, code := range map[string]int{
		"GET /livez HTTP/1.1\r\nHost: x\r\n":     400,
		"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n": 200,
	} {
		c, err := net.Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(deadline))
		io.WriteString(c, req)
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r := parseRaw(t, string(b), false); r.code() != code {
			t.Errorf("%q then EOF: %s %q, want %d", req, r.status, r.body, code)
		}
	}
}

// TestSlowloris: a client that does not finish its head within
// HeaderTimeout is closed without an answer, whether it sends nothing or
// trickles bytes (the deadline counts from the accept, not from the last
// byte); the server goes on serving.
func TestSlowloris(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ts := start(t, Options{HeaderTimeout: timeout}, &fakeSource{st: ready(1)})
	addr := ts.Addr().String()
	for _, trickle := range []bool{false, true} {
		began := time.Now() // before the server's accept, from which it counts
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		if trickle {
			go func() {
				defer close(done)
				io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				for {
					if _, err := c.Write([]byte("a")); err != nil {
						return // the server closed it
					}
					time.Sleep(timeout / 10) // the client's pace, not a synchronisation
				}
			}()
		} else {
			close(done)
		}
		c.SetReadDeadline(time.Now().Add(deadline))
		b, err := io.ReadAll(c)
		took := time.Since(began)
		c.Close()
		<-done
		// A reset when the server closed with trickled bytes unread.
		if len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("trickle %v: %q, %v; want the connection closed without an answer", trickle, b, err)
		}
		if took < timeout {
			t.Fatalf("trickle %v: closed after %v, before the header timeout %v", trickle, took, timeout)
		}
	}
	if r := parseRaw(t, rawDo(t, addr, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"), false); r.code() != 200 {
		t.Fatalf("after the slow clients: %s", r.status)
	}
}

// TestMaxConns: maxConns clients that never finish their request head
// (a slowloris) do not keep a probe waiting: the server accepts it and
// closes the connection that has waited longest for its head instead.
func TestMaxConns(t *testing.T) {
	ts := start(t, Options{HeaderTimeout: time.Hour}, &fakeSource{st: ready(1)})
	addr := ts.Addr().String()
	var held []net.Conn
	for range maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /livez HTTP/1.1\r\n")
		held = append(held, c)
	}
	for range 3 { // probes keep getting through
		probe, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(probe, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		probe.SetReadDeadline(time.Now().Add(deadline))
		b, err := io.ReadAll(probe)
		probe.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r := parseRaw(t, string(b), false); r.code() != 200 {
			t.Fatalf("a probe with %d idle clients held: %s", maxConns, r.status)
		}
	}
	// Some idle client was closed to make room: reading it ends.
	closed := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed == 0 {
		t.Fatal("no idle client was closed to make room for the probes")
	}
	ts.Close()
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(deadline))
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("a held connection after Close: %v, want it closed", err)
		}
	}
}

// TestCurl: curl, a real client, is happy with every kind of answer: no
// error, no warning, the status and fields the server sent.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl not installed (CI is set: it must be)")
		}
		t.Skip("curl not installed")
	}
	ts := start(t, Options{}, &fakeSource{st: ready(1)})
	url := "http://" + ts.Addr().String()
	for _, tc := range []struct {
		args   []string
		status string
		want   []string // in the output
	}{
		{[]string{url + "/livez"}, "HTTP/1.1 200 OK", []string{"Content-Type: text/plain; charset=utf-8", "Content-Length: 3", "Connection: close", "\r\n\r\nok\n"}},
		{[]string{"--http1.0", url + "/readyz?x=1"}, "HTTP/1.1 200 OK", []string{"\r\n\r\nok\n"}},
		{[]string{url + "/metrics"}, "HTTP/1.1 200 OK", []string{"Content-Type: text/plain; version=0.0.4; charset=utf-8", "\nhupd_up 1\n"}},
		{[]string{"-I", url + "/metrics"}, "HTTP/1.1 200 OK", []string{"Content-Type: text/plain; version=0.0.4; charset=utf-8"}},
		{[]string{"-X", "POST", "-d", "hello", url + "/livez"}, "HTTP/1.1 405 Method Not Allowed", []string{"Allow: GET, HEAD"}},
		{[]string{url + "/nope"}, "HTTP/1.1 404 Not Found", nil},
		{[]string{"-H", "X-Big: " + strings.Repeat("a", maxHead), url + "/livez"}, "HTTP/1.1 431 Request Header Fields Too Large", nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		cmd := exec.CommandContext(ctx, curl, append([]string{"-sS", "-i", "--max-time", "10"}, tc.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil || stderr.Len() != 0 {
			t.Errorf("curl %v: %v: %s", tc.args, err, stderr.Bytes())
			continue
		}
		if !strings.HasPrefix(string(out), tc.status+"\r\n") {
			t.Errorf("curl %v: %q, want %s", tc.args, out, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("curl %v: %q, want %q in it", tc.args, out, w)
			}
		}
	}
}

// TestReadHead: the end of a head is found across reads of any size.
func TestReadHead(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\nHost: x\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\n",
	} {
		want := in[:strings.LastIndex(in[:len(in)-1], "\n")+1]
		for _, r := range []io.Reader{strings.NewReader(in + "body"), iotest.OneByteReader(strings.NewReader(in + "body")), iotest.HalfReader(strings.NewReader(in))} {
			head, _, err := readHead(r, make([]byte, maxHead))
			if err != nil || string(head) != want {
				t.Errorf("%q: %q, %v; want %q", in, head, err, want)
			}
		}
	}
	if _, _, err := readHead(strings.NewReader(""), make([]byte, maxHead)); err != io.EOF {
		t.Errorf("nothing: %v, want EOF", err)
	}
}

// FuzzParseHead: reading and parsing never panic; a request they accept
// has a token for a method and an origin-form path without a query; a
// request is rejected with 400 or 505 only; and the end of a head is found
// the same whatever the size of the reads.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://x/metrics?a=b HTTP/1.0\n\n",
		"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: x\r\n b\r\n\r\n",
		"\r\n\r\n",
		"GET /livez HTTP/2.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		head, _, err := readHead(bytes.NewReader(b), make([]byte, maxHead))
		head1, _, err1 := readHead(iotest.OneByteReader(bytes.NewReader(b)), make([]byte, maxHead))
		if !bytes.Equal(head, head1) || err != err1 && !(errors.Is(err, errHeadCut) && errors.Is(err1, errHeadCut)) {
			t.Fatalf("%q: %q, %v at once; %q, %v a byte at a time", b, head, err, head1, err1)
		}
		if err != nil {
			return
		}
		req, code, why := parseHead(head)
		switch code {
		case 0:
			if !isToken(req.method) || !strings.HasPrefix(req.path, "/") || strings.ContainsAny(req.path, "? \r\n") {
				t.Fatalf("%q accepted as %+v", head, req)
			}
		case 400, 505:
			if why == "" {
				t.Fatalf("%q: %d without a reason", head, code)
			}
		default:
			t.Fatalf("%q: code %d", head, code)
		}
		text(200, why).appendTo(nil, req.method == "HEAD", time.Now())
	})
}
