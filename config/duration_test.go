package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/duration"
)

// TestBareNumberDurations: a number without a unit where a duration is
// expected, in every duration field of hupd.toml (as a TOML number or a
// string) and in every duration flag, is an error that names the field and
// where it came from and shows the right form: a TOML string in the file,
// the bare word on the command line.
func TestBareNumberDurations(t *testing.T) {
	exe := executable(t)
	watch := "[[watch]]\npaths = [\"/a\"]\n"
	for _, tc := range []struct{ src, want string }{
		{"[process]\nstop_timeout = 30\n", `f.toml:3: process.stop_timeout: "30" is not a duration: write "30s"`},
		{"[process]\nstop_timeout = \"30\"\n", `f.toml:3: process.stop_timeout: "30" is not a duration: write "30s"`},
		{"process = { stop_timeout = 7 }\n", `f.toml:2: process.stop_timeout: "7" is not a duration: write "7s"`},
		{"[process]\nwatchdog = 1.5\n", `f.toml:3: process.watchdog: "1.5" is not a duration: write "1.5s"`},
		{"[process]\nwatchdog = \"10\"\n", `f.toml:3: process.watchdog: "10" is not a duration: write "10s"`},
		{"[reload]\nready_timeout = 60\n", `f.toml:3: reload.ready_timeout: "60" is not a duration: write "60s"`},
		{"[reload]\nready_timeout = \"60\"\n", `f.toml:3: reload.ready_timeout: "60" is not a duration: write "60s"`},
		{"[reload]\nready = \"delay:5\"\n", `f.toml:3: reload.ready: "5" is not a duration: write "delay:5s"`},
		{"[restart]\nmin_delay = 1\n", `f.toml:3: restart.min_delay: "1" is not a duration: write "1s"`},
		{"[restart]\nmax_delay = \"90\"\n", `f.toml:3: restart.max_delay: "90" is not a duration: write "90s"`},
		{"[restart]\nreset_after = 300\n", `f.toml:3: restart.reset_after: "300" is not a duration: write "300s"`},
		{watch + "debounce = 2\n", `f.toml:4: watch.debounce: "2" is not a duration: write "2s"`},
		{watch + "debounce = \"2\"\n", `f.toml:4: watch[0].debounce: "2" is not a duration: write "2s"`},
		{watch + "[[watch]]\npaths = [\"/b\"]\npoll_interval = 3\n", `f.toml:6: watch.poll_interval: "3" is not a duration: write "3s"`},
		// A number in a field that is no duration keeps the library's words.
		{"[process]\nstop_signal = 15\n", `f.toml:3: process.stop_signal: incompatible types: TOML value has type int64; destination has type string`},
	} {
		c, err := Parse("f.toml", []byte(`command = ["`+exe+`"]`+"\n"+tc.src))
		if err == nil {
			_, err = c.Resolve()
		}
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", strings.ReplaceAll(tc.src, "\n", " "), err, tc.want)
		}
		var nu *duration.NoUnitError
		if strings.Contains(tc.want, "not a duration") && !errors.As(err, &nu) {
			t.Errorf("%q: %v is no *duration.NoUnitError", tc.src, err)
		}
	}
	for _, tc := range []struct {
		flags [][2]string
		want  string
	}{
		{[][2]string{{"ready-timeout", "30"}}, `--ready-timeout: reload.ready_timeout: "30" is not a duration: write 30s`},
		{[][2]string{{"stop-timeout", "1.5"}}, `--stop-timeout: process.stop_timeout: "1.5" is not a duration: write 1.5s`},
		{[][2]string{{"watchdog", "10"}}, `--watchdog: process.watchdog: "10" is not a duration: write 10s`},
		{[][2]string{{"ready", "delay:5"}}, `--ready: reload.ready: "5" is not a duration: write delay:5s`},
		{[][2]string{{"watch", "/a"}, {"watch-poll", "2"}}, `--watch-poll: watch[0].poll_interval: "2" is not a duration: write 2s`},
		// Over a file's good value, the flag is named.
		{[][2]string{{"stop-timeout", "9"}}, `--stop-timeout: process.stop_timeout: "9" is not a duration: write 9s`},
	} {
		c, err := Parse("f.toml", []byte(`command = ["`+exe+`"]`+"\n[process]\nstop_timeout = \"5s\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tc.flags {
			if err := c.Override(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		_, err = c.Resolve()
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.flags, err, tc.want)
		}
	}
}
