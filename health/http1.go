package health

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The server side of HTTP/1.1 (RFC 9112) that the endpoint needs, on
// package net: hupd does not link net/http, which brings crypto/tls and
// costs every hupd process about 2 MiB of memory, endpoint on or off.
//
// One request per connection: probes and scrapes send one request each,
// so there is no keep-alive. Every answer says "Connection: close" and the
// connection is closed after it, which also makes request bodies and
// pipelined requests harmless: nothing after the head is ever parsed.

// maxHead bounds a request head: the request line, the header fields and
// the blank line.
const maxHead = 8 << 10

// Sentinels of readHead.
var (
	errHeadTooLarge = errors.New("health: request head larger than 8 KiB")
	errHeadCut      = errors.New("health: connection closed within the request head")
)

// request is what the endpoint uses of a request.
type request struct {
	method string
	path   string // the target's path, without the query
	query  string // the target's query, without the "?"
	body   bool   // it announced a body (Content-Length > 0 or Transfer-Encoding)
}

// readHead reads r into buf until the blank line that ends a request head
// (CRLF CRLF, or bare LFs). It returns the head up to and including its
// last line's end, and whether bytes followed the blank line in buf. The
// errors: errHeadTooLarge when buf fills first; errHeadCut when r ends
// after a part of a head; r's own (io.EOF when it ended before any byte, a
// timeout) otherwise.
func readHead(r io.Reader, buf []byte) (head []byte, more bool, err error) {
	n := 0
	for {
		m, err := r.Read(buf[n:])
		// The end may straddle two reads: look again at the two bytes
		// before the new ones ("\r\n" | "\r\n", "\n" | "\n").
		from := max(n-2, 0)
		n += m
		if h, end := headEnd(buf[from:n]); h >= 0 {
			return buf[:from+h], from+end < n, nil
		}
		switch {
		case err == io.EOF && n > 0:
			return nil, false, errHeadCut
		case err != nil:
			return nil, false, err
		case n == len(buf):
			return nil, true, errHeadTooLarge
		}
	}
}

// headEnd finds the first empty line in b: h is where it starts (the
// length of the head before it), end where it ends; -1, -1 when b has no
// empty line yet.
func headEnd(b []byte) (h, end int) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i, i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i, i + 2
		}
	}
}

// parseHead parses a request head as readHead returns it: the request
// line (method SP request-target SP HTTP-version) and the header fields,
// each line ended by CRLF or LF. A request it rejects gets code (400, or
// 505 for an HTTP version other than 1.x) and why, for the answer.
func parseHead(head []byte) (req request, code int, why string) {
	rest := string(head)
	line, rest := cutLine(rest)
	method, line, ok1 := strings.Cut(line, " ")
	target, version, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || !isToken(method) {
		return req, 400, "malformed request line"
	}
	if len(version) != len("HTTP/1.1") || !strings.HasPrefix(version, "HTTP/") || version[6] != '.' ||
		!isDigit(version[5]) || !isDigit(version[7]) {
		return req, 400, "malformed HTTP version"
	}
	if version[5] != '1' {
		return req, 505, "HTTP/1.1 only"
	}
	path, query, ok := targetPath(target)
	if !ok {
		return req, 400, "malformed request target"
	}
	req.method, req.path, req.query = method, path, query

	hosts := 0
	for rest != "" {
		line, rest = cutLine(rest)
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			return req, 400, "obsolete line folding"
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) || !isFieldValue(value) {
			return req, 400, "malformed header field"
		}
		switch {
		case strings.EqualFold(name, "Host"):
			hosts++
		case strings.EqualFold(name, "Transfer-Encoding"):
			req.body = true
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.ParseUint(strings.Trim(value, " \t"), 10, 63)
			if err != nil {
				return req, 400, "malformed Content-Length"
			}
			req.body = req.body || n > 0
		}
	}
	// RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one before.
	if hosts > 1 || hosts == 0 && version != "HTTP/1.0" {
		return req, 400, "missing or repeated Host header field"
	}
	return req, 0, ""
}

// cutLine cuts s after its first line, which ends in LF (a CR before it
// is not part of the line). A bare CR stays in the line: the checks of
// the request line and fields reject it.
func cutLine(s string) (line, rest string) {
	line, rest, _ = strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r"), rest
}

// targetPath returns the path and the query of a request target in
// origin form ("/metrics?x=1") or absolute form ("http://host/metrics");
// false for other forms and for a target with a byte that is not visible
// ASCII.
func targetPath(t string) (path, query string, ok bool) {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f || t[i] == '#' {
			return "", "", false
		}
	}
	if !strings.HasPrefix(t, "/") {
		// Absolute form, which a server must accept (RFC 9112 section
		// 3.2.2): the path starts after the authority.
		scheme, rest, ok := strings.Cut(t, "://")
		if !ok || !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") || rest == "" {
			return "", "", false
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 {
			return "/", "", true
		}
		if rest[i] == '?' {
			return "/", rest[i+1:], true
		}
		t = rest[i:]
	}
	path, query, _ = strings.Cut(t, "?")
	return path, query, true
}

// isToken reports whether s is a token (RFC 9110 section 5.6.2): a method
// or a field name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// isFieldValue reports whether s has no control character other than HTAB.
func isFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Content types of the answers.
const (
	textPlain = "text/plain; charset=utf-8"
	// contentType (metrics.go) is the Prometheus exposition format's.
)

// response is one answer.
type response struct {
	code  int
	ctype string
	body  []byte
}

// text is a one-line plain-text answer.
func text(code int, msg string) response {
	return response{code, textPlain, []byte(oneLine(msg) + "\n")}
}

// appendTo appends the whole answer to b: its head and, unless the request
// was a HEAD, its body. A HEAD gets the Content-Length of the GET.
func (r response) appendTo(b []byte, head bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(r.code), 10)
	b = append(b, ' ')
	b = append(b, statusText(r.code)...)
	b = append(b, "\r\nDate: "...)
	b = now.UTC().AppendFormat(b, "Mon, 02 Jan 2006 15:04:05 GMT") // RFC 9110 IMF-fixdate
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, r.ctype...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.body)), 10)
	b = append(b, "\r\nCache-Control: no-store"...)
	if r.code == 405 {
		b = append(b, "\r\nAllow: GET, HEAD"...)
	}
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	if !head {
		b = append(b, r.body...)
	}
	return b
}

// statusText is the reason phrase of each code the endpoint answers with.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}

// Lingering close: see lingerClose.
const (
	lingerTimeout = 500 * time.Millisecond
	lingerMax     = 256 << 10
)

// lingerClose prepares the close of a connection whose client may still
// be sending (a body, a second request, the rest of a head too large).
// Closing a socket with unread data sends RST, and a client's kernel that
// receives RST may drop the answer before the client has read it. So the
// answer is followed by FIN, and what the client sends is read and
// dropped until it closes, lingerTimeout or lingerMax bytes at most.
func lingerClose(c net.Conn, buf []byte) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(lingerTimeout))
	for n := 0; n < lingerMax; {
		m, err := c.Read(buf)
		if err != nil {
			return
		}
		n += m
	}
}
