package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestFatalErrorJSON: with --log-format json, the error hupd run ends on
// is one JSON record at level ERROR, with the service's name when known,
// and the exit status it has in text; process.output = "inherit" is
// refused with JSON logs (raw lines would be mixed into them).
func TestFatalErrorJSON(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"run", "--log-format", "json", "--name", "web", "--listen", "tcp://:65536", "--", "true"}, "65536"},
		{[]string{"run", "--log-format", "json", "--name", "web", "--output", "inherit", "--", "true"}, `does not apply with log.format = "json"`},
	} {
		code, out, errOut := runApp(t, tc.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("hupd %s: exit %d, stdout %q, stderr %q; want exit 2 and one line", strings.Join(tc.args, " "), code, out, errOut)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(errOut), &rec); err != nil {
			t.Fatalf("hupd %s: stderr %q is not a JSON record: %v", strings.Join(tc.args, " "), errOut, err)
		}
		if rec["level"] != "ERROR" || rec["msg"] != logev.Fatal || rec[supervisor.KeyName] != "web" ||
			!strings.Contains(rec[supervisor.KeyError].(string), tc.says) || rec["time"] == nil {
			t.Errorf("hupd %s: record %v, want an ERROR %q record named web whose error says %q", strings.Join(tc.args, " "), rec, logev.Fatal, tc.says)
		}
	}
	// In text: the line it always was.
	if code, _, errOut := runApp(t, "run", "--output", "inherit", "--listen", "tcp://:65536", "--", "true"); code != 2 || !strings.HasPrefix(errOut, "hupd: ") {
		t.Errorf("text: exit %d, stderr %q", code, errOut)
	}
}
