// Command bench is hupd's benchmark suite: it builds hupd and the example
// servers, runs the scenarios against them with its own load generator
// (package loadgen), prints one table, writes the result as JSON and
// exits 1 if a goal it checks was missed.
//
//	go run ./integration/bench                       # full: about 5 minutes, checks every goal
//	go run ./integration/bench -short                # CI: seconds per scenario, checks 0 failed requests only
//	go run ./integration/bench -scenarios 3,4 -plots docs/bench
//	go run ./integration/bench -replot results.json -plots docs/bench
//
// Every scenario serves examples/hello (examples/legacy/goserver in 5,
// hello -drain stock in 8, cpuserver in 9), under one load: keep-alive clients and
// new-connection clients at once.
//
//  1. bare: hello alone, given its socket as systemd would; the baseline.
//  2. hupd: the same under hupd, no reloads; throughput ratio to 1 ≥ 0.98.
//     1 and 2 run in alternating rounds, and the medians are compared.
//  3. swap: a blue/green swap every 500 ms under load for -duration:
//     0 failed requests; p99 latency and the longest stall against 2.
//  4. restart: hupd --reload restart, and a naive stop-and-start of hello
//     on a socket that dies with it (what a server binding its own port
//     gets), side by side: failed requests (refused, reset) and the stall.
//  5. legacy: goserver, which binds its own port, under --legacy redirect,
//     swapped every 500 ms: 0 failed requests.
//  6. scale: swap time and hupd's memory with 1,000 sockets handed to each
//     generation, 10,000 idle keep-alive connections draining from the old
//     one, 10,000 watched files (-short: 100, 1,000, 1,000).
//  7. costs: hupd's CPU and memory (RSS, its own anonymous part, peak)
//     idle and under load, and idle again configured by a hupd.toml with
//     one program and with two, its sentinel's memory, the shim's cost per
//     spawn, hupd's own share of a swap (trigger to exec, READY=1 to the
//     old generation's stop signal); containment's cost: the same swaps
//     with a cgroup per generation (the default, where hupd may) and with
//     --cgroup off, in alternating rounds, ≤ 1 ms more per swap (p50);
//     and a generation's cold spawn in a process group and in a cgroup.
//  8. steer: hello -drain stock (net/http's bare http.Server.Shutdown, what
//     most Go programs do) under hupd, a swap every 500 ms for 15 s
//     (-short: 3 s), without and with --steer, side by side: requests
//     answered and failed (in all and per swap) per client kind, with
//     --steer 0 failed new-connection requests; keep-alive failures are
//     the program's own drain and only reported. The cost of steering:
//     the swap (to ready, to the old generation's stop signal, to its
//     exit), hupd's CPU and memory, each side.
//  9. instances: cpuserver (this suite's own single-threaded server, a
//     fixed amount of CPU per request) under hupd --instances 1 and
//     --instances 2 in alternating rounds: the throughput of each and
//     their ratio, ≥ 1.7 on 2 cores; hupd's RSS and CPU at each N and per
//     instance; then --instances 2 swapped every second for 20 s (-short:
//     3 s) under the load: 0 failed requests.
//
// Sleeps appear only as measured intervals (the time between two reloads,
// an idle window); every wait for a process is on its log, its READY, its
// exit or an HTTP answer, each with a deadline.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// settings are the sizes of one run: full mode's, or -short's.
type settings struct {
	Short        bool `json:"short"`
	Duration     span `json:"duration"`      // 3's load; 5 runs half of it
	SwapEvery    span `json:"swap_every"`    // 3 and 5
	Rounds       int  `json:"rounds"`        // 1 and 2, alternating
	RoundFor     span `json:"round_for"`     // each round's load, per target
	RestartFor   span `json:"restart_for"`   // 4, each side
	RestartEvery span `json:"restart_every"` // 4
	KeepAlive    int  `json:"keep_alive_clients"`
	NewConn      int  `json:"new_conn_clients"`
	Listeners    int  `json:"listeners"`  // 6
	IdleConns    int  `json:"idle_conns"` // 6
	WatchFiles   int  `json:"watch_files"`
	ScaleSwaps   int  `json:"scale_swaps"`
	IdleFor      span `json:"idle_for"`   // 7: the idle window, and the load window
	Spawns       int  `json:"spawns"`     // 7
	CostSwaps    int  `json:"cost_swaps"` // 7, per side: default containment and --cgroup off
	SteerFor     span `json:"steer_for"`  // 8, each side: without and with --steer
	SteerEvery   span `json:"steer_every"`
	InstFor      span `json:"instances_for"`   // 9: --instances 2 swapped under the load
	InstEvery    span `json:"instances_every"` // 9: a swap every
}

func fullSettings() settings {
	return settings{Duration: dur(60 * time.Second), SwapEvery: dur(500 * time.Millisecond),
		Rounds: 10, RoundFor: dur(3 * time.Second), RestartFor: dur(20 * time.Second), RestartEvery: dur(2 * time.Second),
		KeepAlive: 16, NewConn: 4, Listeners: 1000, IdleConns: 10000, WatchFiles: 10000, ScaleSwaps: 10,
		IdleFor: dur(10 * time.Second), Spawns: 200, CostSwaps: 50, SteerFor: dur(15 * time.Second), SteerEvery: dur(500 * time.Millisecond),
		InstFor: dur(20 * time.Second), InstEvery: dur(time.Second)}
}

func shortSettings() settings {
	return settings{Short: true, Duration: dur(4 * time.Second), SwapEvery: dur(500 * time.Millisecond),
		Rounds: 1, RoundFor: dur(1500 * time.Millisecond), RestartFor: dur(3 * time.Second), RestartEvery: dur(time.Second),
		KeepAlive: 16, NewConn: 4, Listeners: 100, IdleConns: 1000, WatchFiles: 1000, ScaleSwaps: 3,
		IdleFor: dur(time.Second), Spawns: 20, CostSwaps: 6, SteerFor: dur(3 * time.Second), SteerEvery: dur(500 * time.Millisecond),
		InstFor: dur(3 * time.Second), InstEvery: dur(time.Second)}
}

func dur(d time.Duration) span { return span(d) }

// span is a time.Duration that reads and writes JSON as "1.5s".
type span time.Duration

func (d span) d() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d span) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *span) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = span(v)
	return err
}

// scenarios in running order; a number or a name selects each.
var scenarios = []struct {
	num  int
	name string
}{{1, "bare"}, {2, "hupd"}, {3, "swap"}, {4, "restart"}, {5, "legacy"}, {6, "scale"}, {7, "costs"}, {8, "steer"}, {9, "instances"}}

func parseScenarios(s string) (map[int]bool, error) {
	sel := map[int]bool{}
	if s == "" || s == "all" {
		for _, sc := range scenarios {
			sel[sc.num] = true
		}
		return sel, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, sc := range scenarios {
			if f == strconv.Itoa(sc.num) || f == sc.name {
				sel[sc.num], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q: valid are 1-9 or bare, hupd, swap, restart, legacy, scale, costs, steer, instances", f)
		}
	}
	return sel, nil
}

// benchEnv is what the scenarios share: the built binaries and a
// directory for everything else.
type benchEnv struct {
	dir, hupd, hello, goserver string
	cpuserver                  string // scenario 9's server, built from this module
	s                          settings
}

// run is the whole command; it returns the exit code: 0, 1 when a goal
// was missed, 2 for a usage or build error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "CI mode: a few seconds per scenario, scaled-down sizes; checks correctness (0 failed requests) only, never timings or ratios")
	sel := fs.String("scenarios", "all", "comma-separated scenarios to run, by number (1-9) or name (bare, hupd, swap, restart, legacy, scale, costs, steer, instances)")
	duration := fs.Duration("duration", 0, "scenario 3's load with a swap every 500 ms (5 runs half of it); default 60s, 4s with -short")
	out := fs.String("out", "", "write the result as JSON to this file")
	plots := fs.String("plots", "", "write the SVG time series of scenarios 3 and 4 into this directory")
	png := fs.Bool("png", false, "with -plots: write PNG copies of the SVGs too")
	replot := fs.String("replot", "", "run nothing: read this JSON result and draw its -plots, or print its table")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (for the README); with -replot, print that result's table")
	keep := fs.Bool("keep", false, "keep the build and work directory (its path is printed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *replot != "" {
		r, err := readReport(*replot)
		switch {
		case err != nil:
		case *plots != "":
			err = writePlots(r, *plots, *png, stdout)
		case *markdown:
			r.printMarkdown(stdout)
		default:
			r.printTable(stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		return 0
	}
	which, err := parseScenarios(*sel)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if *out != "" { // fail now rather than after the run
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
	}
	s := fullSettings()
	if *short {
		s = shortSettings()
	}
	if *duration > 0 {
		s.Duration = dur(*duration)
	}

	defer killAll()
	dir, err := os.MkdirTemp("", "hupd-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if *keep {
		fmt.Fprintln(stderr, "bench: work directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env := &benchEnv{dir: dir, s: s}
	if err := build(ctx, env, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}

	mode := "full"
	if s.Short {
		mode = "short"
	}
	rep := &Report{Command: commandLine(args), Mode: mode, Started: time.Now(), Machine: machine(), Settings: s}
	var base *baseline
	if which[1] || which[2] {
		base = throughput(ctx, env, rep, which[2])
	}
	steps := []struct {
		num int
		fn  func(context.Context, *benchEnv, *Report, *baseline)
	}{{3, swapScenario}, {4, restartScenario}, {5, legacyScenario}, {6, scaleScenario}, {7, costScenario}, {8, steerScenario}, {9, instancesScenario}}
	for _, st := range steps {
		if which[st.num] && ctx.Err() == nil {
			fmt.Fprintf(stderr, "bench: scenario %d (%s)\n", st.num, scenarios[st.num-1].name)
			st.fn(ctx, env, rep, base)
		}
	}
	if ctx.Err() != nil {
		rep.fail("all", errors.New("interrupted"))
	}
	rep.TookS = time.Since(rep.Started).Seconds()
	rep.OK = len(rep.missed()) == 0
	if *markdown {
		rep.printMarkdown(stdout)
	} else {
		rep.printTable(stdout)
	}
	code := 0
	if !rep.OK {
		code = 1
	}
	if *out != "" {
		if err := rep.write(*out); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			code = 2
		}
	}
	if *plots != "" {
		if err := writePlots(rep, *plots, *png, stdout); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			code = 2
		}
	}
	return code
}

func commandLine(args []string) string {
	return strings.Join(append([]string{"go run ./integration/bench"}, args...), " ")
}

// build compiles hupd, examples/hello and examples/legacy/goserver as the
// README does (static, CGO_ENABLED=0) into env.dir, in hupd's own module
// (GOWORK=off): the workspace that holds the bench would otherwise let the
// bench's requirements choose the versions of hupd's dependencies. Then
// scenario 9's cpuserver, in the bench's module.
func build(ctx context.Context, env *benchEnv, stderr io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	bin := filepath.Join(env.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "urfave_cli_no_docs", "-o", bin+"/", ".", "./examples/hello", "./examples/legacy/goserver")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	fmt.Fprintln(stderr, "bench: building hupd, hello, goserver and cpuserver")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	// cpuserver is the bench's own (./cpuserver): built in this module,
	// which replaces hupd's by the same checkout.
	cmd = exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cpuserver")
	cmd.Dir = filepath.Join(root, "integration", "bench")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cpuserver: %w", err)
	}
	env.hupd, env.hello, env.goserver = filepath.Join(bin, "hupd"), filepath.Join(bin, "hello"), filepath.Join(bin, "goserver")
	env.cpuserver = filepath.Join(bin, "cpuserver")
	for _, p := range []string{env.hupd, env.hello, env.goserver, env.cpuserver} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	return nil
}

// moduleRoot is the directory of hupd's module, as the go command sees it
// from the working directory: the root of the checkout through go.work at
// the root, or through the bench module's replace of hupd by ../.. inside
// integration/bench.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", hupdModule).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go list -m %s: %w: %s (run from hupd's checkout)", hupdModule, err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("go list -m %s: %w", hupdModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: no directory (run from hupd's checkout)", hupdModule)
	}
	return dir, nil
}

// hupdModule is the module the bench builds and measures.
const hupdModule = "github.com/hupd/hupd"
