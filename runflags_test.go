package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hupd/hupd/config"
	"github.com/urfave/cli/v2"
)

// TestCheckFlagsOverFile: the flags built from config.Flags reach the
// configuration, over the file's values, for each kind of flag: a string
// (--stop-timeout), a repeatable one given by its alias (-l), a switch
// whose default is true (--watch-config=false). The file's other values
// stay.
func TestCheckFlagsOverFile(t *testing.T) {
	dir := t.TempDir()
	cmd := filepath.Join(dir, "server")
	if err := os.WriteFile(cmd, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hupd.toml")
	src := `name = "file"
command = ["` + cmd + `"]
[[listen]]
name = "fromfile"
address = "tcp://127.0.0.1:0"
[process]
stop_timeout = "5s"
stop_signal = "QUIT"
[reload]
watch_config = true
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := newApp(&stdout, &stderr).Run([]string{"hupd", "check", "-c", file,
		"--stop-timeout", "7s", "-l", "a=tcp://127.0.0.1:0", "-l", "b=tcp://127.0.0.1:0", "--watch-config=false"})
	if err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	c, err := config.Parse("out.toml", stdout.Bytes())
	if err != nil {
		t.Fatalf("check output: %v\n%s", err, stdout.String())
	}
	if c.Process.StopTimeout != "7s" || c.Process.StopSignal != "QUIT" || c.Name != "file" {
		t.Errorf("stop_timeout, stop_signal, name = %q, %q, %q; want the flag's 7s, the file's QUIT and file",
			c.Process.StopTimeout, c.Process.StopSignal, c.Name)
	}
	if len(c.Listen) != 2 || c.Listen[0].Name != "a" || c.Listen[1].Name != "b" {
		t.Errorf("-l twice replaces the file's [[listen]]: %+v", c.Listen)
	}
	if c.Reload.WatchConfig == nil || *c.Reload.WatchConfig {
		t.Errorf("--watch-config=false did not override the file's true:\n%s", stdout.String())
	}
}

// TestRunFlagsFromTable: hupd run and hupd check offer --config and one
// flag per config.Flags entry, in its order, with its aliases.
func TestRunFlagsFromTable(t *testing.T) {
	var got []string
	for _, f := range runFlags() {
		got = append(got, strings.Join(f.Names(), ","))
	}
	want := []string{"config,c"}
	for _, f := range config.Flags() {
		want = append(want, strings.Join(append([]string{f.Name}, f.Aliases...), ","))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("run flags:\n got %q\nwant %q", got, want)
	}
}

// TestMergedConfigAllocates: reading hupd run's flags into the
// configuration, which every start and every reload of hupd.toml does,
// allocates little: under 24 KiB for three flags (through c.IsSet per flag
// it was 70 KB: urfave/cli looks each name up through every
// flag's Names, which runs a regular expression each time).
func TestMergedConfigAllocates(t *testing.T) {
	var allocated uint64
	app := &cli.App{Commands: []*cli.Command{{Name: "run", Flags: runFlags(), Action: func(c *cli.Context) error {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cfg, err := mergedConfig(c, c.Args().Slice())
		runtime.ReadMemStats(&after)
		allocated = after.TotalAlloc - before.TotalAlloc
		if err == nil && (len(cfg.Listen) != 1 || cfg.Process.StopTimeout != "7s" || !cfg.Process.OutputPrefix) {
			t.Errorf("flags not applied: listen %+v, stop_timeout %q, output_prefix %v", cfg.Listen, cfg.Process.StopTimeout, cfg.Process.OutputPrefix)
		}
		return err
	}}}}
	err := app.Run([]string{"hupd", "run", "-l", "tcp://127.0.0.1:0", "--stop-timeout", "7s", "--output-prefix", "--", "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mergedConfig allocated %d bytes", allocated)
	if allocated > 24<<10 {
		t.Errorf("mergedConfig allocated %d bytes; want under 24 KiB", allocated)
	}
}
