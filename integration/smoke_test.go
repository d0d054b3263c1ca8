package integration

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// get fetches url and returns the body; it fails t on any error.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func TestHelloServesAndStops(t *testing.T) {
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	addr := HostPort(h.Listening("http"))
	pid := h.ChildPID(1)
	body := get(t, "http://"+addr+"/")
	if !strings.Contains(body, "pid "+strconv.Itoa(pid)+"\n") || !strings.Contains(body, "name http\n") {
		t.Fatalf("body %q: want pid %d and name http", body, pid)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
