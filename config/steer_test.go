package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// TestResolveSteerSettle: [[listen]] steer, [reload] settle and steer_wait
// (and --steer, --settle, --steer-wait over them) reach the socket specs
// and the supervisor's options; left out, settle is 0 (the old generation
// stops at once) and steer_wait DefaultSteerWait; hupd check's normalised
// output shows them.
func TestResolveSteerSettle(t *testing.T) {
	exe := executable(t)
	head := `command = ["` + exe + `"]` + "\n"

	c, err := Parse("f.toml", []byte(head+"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Listen[0].Steer || r.Options.Settle != 0 || r.Options.SteerWait != supervisor.DefaultSteerWait || r.Options.SteerGrace != supervisor.DefaultSteerGrace {
		t.Errorf("defaults: steer %v, settle %v, steer_wait %v", r.Listen[0].Steer, r.Options.Settle, r.Options.SteerWait)
	}
	if out := encode(t, c); !strings.Contains(out, "settle = \"0s\"\n") || !strings.Contains(out, "steer_wait = \"5s\"\n") || !strings.Contains(out, "steer_grace = \"1s\"\n") || strings.Contains(out, "steer = ") {
		t.Errorf("normalised defaults:\n%s", out)
	}

	src := head + "[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nsteer = true\n[[listen]]\naddress = \"udp://127.0.0.1:0\"\nsteer = true\n" +
		"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n[reload]\nsettle = \"30s\"\nsteer_wait = \"2s\"\nsteer_grace = \"150ms\"\n"
	c, err = Parse("f.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if r, err = c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if !r.Listen[0].Steer || !r.Listen[1].Steer || r.Listen[2].Steer {
		t.Errorf("steer: %v %v %v, want true true false", r.Listen[0].Steer, r.Listen[1].Steer, r.Listen[2].Steer)
	}
	if r.Options.Settle != 30*time.Second || r.Options.SteerWait != 2*time.Second || r.Options.SteerGrace != 150*time.Millisecond {
		t.Errorf("settle %v, steer_wait %v", r.Options.Settle, r.Options.SteerWait)
	}
	if out := encode(t, c); strings.Count(out, "steer = true\n") != 2 || !strings.Contains(out, "settle = \"30s\"\n") || !strings.Contains(out, "steer_wait = \"2s\"\n") {
		t.Errorf("normalised:\n%s", out)
	}

	// --steer steers every socket, the file's as well as --listen's.
	for _, flags := range [][][2]string{
		{{"steer", "true"}},
		{{"listen", "tcp://127.0.0.1:0"}, {"listen", "udp://127.0.0.1:0"}, {"steer", "true"}},
	} {
		c, err = Parse("f.toml", []byte(head+"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		var listen []string
		for _, f := range flags {
			if f[0] == "listen" {
				listen = append(listen, f[1])
				continue
			}
			if len(listen) > 0 {
				if err := c.Override("listen", listen...); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Override(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Override("settle", "1m"); err != nil {
			t.Fatal(err)
		}
		if err := c.Override("steer-wait", "750ms"); err != nil {
			t.Fatal(err)
		}
		if r, err = c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if len(r.Listen) != 2 || !r.Listen[0].Steer || !r.Listen[1].Steer {
			t.Errorf("%v: %+v, want two steered sockets", flags, r.Listen)
		}
		if r.Options.Settle != time.Minute || r.Options.SteerWait != 750*time.Millisecond || r.Options.SteerGrace != 750*time.Millisecond {
			t.Errorf("--settle, --steer-wait: %v, %v, grace %v (the default grace within steer_wait)", r.Options.Settle, r.Options.SteerWait, r.Options.SteerGrace)
		}
	}
	// --steer=false over a file's steer = true.
	c, err = Parse("f.toml", []byte(head+"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nsteer = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Override("steer", "false"); err != nil {
		t.Fatal(err)
	}
	if r, err = c.Resolve(); err != nil || r.Listen[0].Steer {
		t.Errorf("--steer=false: %v, %+v", err, r)
	}
}

// TestSteerSettleRefusals pins every refusal of a steering setting, byte
// for byte: a unix socket (file, abstract, datagram) steered in the file or
// by --steer (the message names the socket), steering with adopt mode, a
// negative settle, a steer_wait that is not positive, bare numbers, and
// --steer without a socket.
func TestSteerSettleRefusals(t *testing.T) {
	exe := executable(t)
	head := `command = ["` + exe + `"]` + "\n"
	for _, tc := range []struct {
		src   string
		flags [][2]string
		want  string
	}{
		{src: "[[listen]]\naddress = \"unix:///tmp/hupd-steer.sock\"\nsteer = true\n",
			want: `f.toml:4: listen[0].address = "unix:///tmp/hupd-steer.sock": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only`},
		{src: "[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nsteer = true\n[[listen]]\naddress = \"@hupd-steer\"\nsteer = true\n",
			want: `f.toml:7: listen[1].address = "unix://@hupd-steer": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only`},
		{src: "[[listen]]\naddress = \"unixgram:///tmp/hupd-steer.sock\"\nsteer = true\n",
			want: `f.toml:4: listen[0].address = "unixgram:///tmp/hupd-steer.sock": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only`},
		{flags: [][2]string{{"listen", "tcp://127.0.0.1:0"}, {"listen", "/tmp/hupd-steer.sock"}, {"steer", "true"}},
			want: `--steer: listen[1].address = "unix:///tmp/hupd-steer.sock": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only`},
		{src: "[[listen]]\naddress = \"/tmp/hupd-steer.sock\"\n", flags: [][2]string{{"steer", "true"}},
			want: `--steer: listen[0].address = "unix:///tmp/hupd-steer.sock": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only`},
		{src: "[legacy]\nmode = \"adopt\"\n[[listen]]\naddress = \"tcp://127.0.0.1:8080\"\nsteer = true\n",
			want: `f.toml:6: listen[0].address = "tcp://127.0.0.1:8080": steer: not with [legacy] mode = "adopt", where the program binds the one socket every generation shares; use mode = "redirect", whose binds get each generation's own socket`},
		{src: "[legacy]\nmode = \"adopt\"\n[[listen]]\naddress = \"tcp://127.0.0.1:8080\"\n", flags: [][2]string{{"steer", "true"}},
			want: `--steer: listen[0].address = "tcp://127.0.0.1:8080": steer: not with [legacy] mode = "adopt", where the program binds the one socket every generation shares; use mode = "redirect", whose binds get each generation's own socket`},
		{src: "[reload]\nsettle = \"-1s\"\n",
			want: `f.toml:3: reload.settle = "-1s": want a duration such as 30s or 2m, or 0s for none`},
		{flags: [][2]string{{"settle", "-5m"}},
			want: `--settle: reload.settle = "-5m": want a duration such as 30s or 2m, or 0s for none`},
		{src: "[reload]\nsettle = 30\n", want: `f.toml:3: reload.settle: "30" is not a duration: write "30s"`},
		{src: "[reload]\nsettle = \"30\"\n", want: `f.toml:3: reload.settle: "30" is not a duration: write "30s"`},
		{flags: [][2]string{{"settle", "30"}}, want: `--settle: reload.settle: "30" is not a duration: write 30s`},
		{src: "[reload]\nsteer_wait = \"0s\"\n", want: `f.toml:3: reload.steer_wait = "0s": want a positive duration such as 5s`},
		{src: "[reload]\nsteer_wait = 5\n", want: `f.toml:3: reload.steer_wait: "5" is not a duration: write "5s"`},
		{flags: [][2]string{{"steer-wait", "5"}}, want: `--steer-wait: reload.steer_wait: "5" is not a duration: write 5s`},
		{flags: [][2]string{{"steer-wait", "soon"}}, want: `--steer-wait: reload.steer_wait = "soon": want a positive duration such as 5s`},
		{src: "[reload]\nsteer_grace = \"0s\"\n", want: `f.toml:3: reload.steer_grace = "0s": want a positive duration such as 1s`},
		{src: "[reload]\nsteer_wait = \"1s\"\nsteer_grace = \"2s\"\n", want: `f.toml:4: reload.steer_grace = "2s": longer than steer_wait (1s), which bounds the whole wait before an old generation's stop signal: make steer_wait at least as long`},
		{flags: [][2]string{{"steer-grace", "1"}}, want: `--steer-grace: reload.steer_grace: "1" is not a duration: write 1s`},
		{flags: [][2]string{{"steer", "true"}}, want: `--steer: no socket to steer: give --listen (or [[listen]] in the -c file)`},
	} {
		c, err := Parse("f.toml", []byte(head+tc.src))
		if err == nil {
			var listen []string
			for _, f := range tc.flags {
				if f[0] == "listen" {
					listen = append(listen, f[1])
					continue
				}
				if len(listen) > 0 {
					if err = c.Override("listen", listen...); err != nil {
						break
					}
					listen = nil
				}
				if err = c.Override(f[0], f[1]); err != nil {
					break
				}
			}
		}
		if err == nil {
			_, err = c.Resolve()
		}
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%q %v:\n got %s\nwant %s", strings.ReplaceAll(tc.src, "\n", " "), tc.flags, err, tc.want)
		}
	}
}

func encode(t *testing.T, c *Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
