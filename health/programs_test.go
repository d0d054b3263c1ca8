package health

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// testProgram is a program of several for StartPrograms: a fake source
// and a state the test sets.
type testProgram struct {
	src   *fakeSource
	state atomic.Int32
}

func (p *testProgram) set(st ProgramState) { p.state.Store(int32(st)) }

// startPrograms starts a Server on 127.0.0.1:0 reporting on app and then
// web (after app), both running with a ready generation.
func startPrograms(t *testing.T, opts Options, webEndIgnored bool) (ts *testServer, app, web *testProgram) {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	app, web = &testProgram{src: &fakeSource{st: ready(1)}}, &testProgram{src: &fakeSource{st: ready(1)}}
	app.set(ProgramRunning)
	web.set(ProgramRunning)
	prog := func(name string, p *testProgram, after []string) Program {
		return Program{Name: name, Source: p.src, After: after, State: func() ProgramState { return ProgramState(p.state.Load()) }}
	}
	w := prog("web", web, []string{"app"})
	w.EndIgnored = webEndIgnored
	s.StartPrograms([]Program{prog("app", app, nil), w})
	tr := &http.Transport{}
	ts = &testServer{Server: s, url: "http://" + s.Addr().String(), client: &http.Client{Transport: tr, Timeout: deadline}}
	t.Cleanup(func() {
		s.Close()
		tr.CloseIdleConnections()
		noServerGoroutines(t)
	})
	return ts, app, web
}

// expect checks GET path's code and whole body.
func (ts *testServer) expect(t *testing.T, path string, code int, body string) {
	t.Helper()
	if c, b, _ := ts.do(t, "GET", path); c != code || b != body+"\n" {
		t.Errorf("GET %s: %d %q, want %d %q", path, c, b, code, body)
	}
}

// TestProgramsReadyz: /readyz of several programs is 200 only while each
// is ready, and else names the first that is not and why; ?program=NAME
// answers for one, 404 for a name no program has.
func TestProgramsReadyz(t *testing.T) {
	ts, app, web := startPrograms(t, Options{StatusTimeout: 50 * time.Millisecond}, false)
	ts.expect(t, "/readyz", 200, "ok")
	ts.expect(t, "/readyz?program=app", 200, "ok")
	ts.expect(t, "/readyz?program=web", 200, "ok")
	ts.expect(t, "/readyz?program=nope", 404, `no program "nope"`)
	ts.expect(t, "/readyz?x=1&program=w%65b", 200, "ok")
	ts.expect(t, "/livez", 200, "ok")

	// web restarts: a new generation starting, none ready.
	web.src.set(supervisor.Status{Generations: []supervisor.GenerationStatus{{Gen: 2, State: supervisor.StateStarting}}})
	ts.expect(t, "/readyz", 503, "program web: generation 2 starting: not ready yet")
	ts.expect(t, "/readyz?program=web", 503, "program web: generation 2 starting: not ready yet")
	ts.expect(t, "/readyz?program=app", 200, "ok")

	// Both not ready: the first in start order is named.
	app.src.set(supervisor.Status{})
	ts.expect(t, "/readyz", 503, "program app: no generation ready")
	app.src.set(ready(1))

	// web waits for app: not ready, and its source is not asked.
	web.set(ProgramWaiting)
	calls := web.src.calls.Load()
	ts.expect(t, "/readyz", 503, "program web: waiting for app to be ready")
	ts.expect(t, "/readyz?program=web", 503, "program web: waiting for app to be ready")
	ts.expect(t, "/livez", 200, "ok")
	if n := web.src.calls.Load(); n != calls {
		t.Errorf("a waiting program's source was asked %d times", n-calls)
	}

	// web ended, and hupd does not go on without it.
	web.set(ProgramEnded)
	ts.expect(t, "/readyz", 503, "program web: ended")

	// A stuck supervisor: named, for /readyz and /livez.
	web.set(ProgramRunning)
	web.src.set(ready(2))
	release := app.src.stick()
	defer release()
	ts.expect(t, "/readyz", 503, "program app: hupd's supervisor did not answer within 50ms")
	ts.expect(t, "/livez", 503, "program app: hupd's supervisor did not answer within 50ms")
	ts.expect(t, "/readyz?program=web", 200, "ok")
	release()
	ts.expect(t, "/readyz", 200, "ok")
}

// TestProgramsReadyzEndIgnored: a program whose end hupd ignores is left
// out of /readyz of all once it ended, but ?program=NAME says it ended.
func TestProgramsReadyzEndIgnored(t *testing.T) {
	ts, _, web := startPrograms(t, Options{}, true)
	web.set(ProgramEnded)
	ts.expect(t, "/readyz", 200, "ok")
	ts.expect(t, "/readyz?program=web", 503, "program web: ended")
	web.set(ProgramWaiting)
	ts.expect(t, "/readyz", 503, "program web: waiting for app to be ready")
}

// TestProgramsReadyzHooks: each program's hooks count for it alone: its
// failed reloads (Failures) and its stop make /readyz 503 naming it.
func TestProgramsReadyzHooks(t *testing.T) {
	ts, _, _ := startPrograms(t, Options{Failures: 1}, false)
	ts.ProgramHooks("web").Reloaded(supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "check failed"})
	ts.expect(t, "/readyz", 503, "program web: 1 reload in a row failed; the last: check failed")
	ts.expect(t, "/readyz?program=app", 200, "ok")
	ts.ProgramHooks("web").Reloaded(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap})
	ts.expect(t, "/readyz", 200, "ok")
	ts.ProgramHooks("app").Stopping()
	ts.expect(t, "/readyz", 503, "program app: stopping")
	ts.expect(t, "/readyz?program=web", 200, "ok")
}

// TestProgramsMetrics: every sample of a program carries program="NAME",
// counters from its own hooks and gauges from its own status; hupd_up
// comes once, without it; the exposition passes the strict reader (each
// family once, every series unique). A waiting program has its counters
// only; a stuck one makes hupd_up 0.
func TestProgramsMetrics(t *testing.T) {
	ts, app, web := startPrograms(t, Options{StatusTimeout: 50 * time.Millisecond}, false)
	app.src.set(supervisor.Status{Restarts: 1, ConfigHash: "ha", Generations: []supervisor.GenerationStatus{{Gen: 3, State: supervisor.StateReady}}})
	web.src.set(supervisor.Status{ConfigHash: "hw", LastReload: &supervisor.ReloadResult{OK: true, Finished: time.UnixMilli(1_700_000_000_000)},
		Generations: []supervisor.GenerationStatus{{Gen: 1, State: supervisor.StateDraining}, {Gen: 2, State: supervisor.StateReady}}})
	ha, hw := ts.ProgramHooks("app"), ts.ProgramHooks("web")
	ha.Started(3, 30)
	ha.Ready(3, 30, time.Second)
	hw.Started(1, 10)
	hw.Started(2, 20)
	hw.Reloaded(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap})

	scrape := func() *exposition {
		t.Helper()
		code, body, _ := ts.do(t, "GET", "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d %q", code, body)
		}
		e, err := parseExposition(body)
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		for k := range e.series {
			if k != "hupd_up" && !strings.Contains(k, `program="app"`) && !strings.Contains(k, `program="web"`) {
				t.Errorf("%s: no program label", k)
			}
		}
		return e
	}
	p := func(name string) label { return label{"program", name} }
	want := func(e *exposition, m map[string]float64) {
		t.Helper()
		for k, v := range m {
			got, ok := e.series[k]
			switch {
			case v == -1 && ok:
				t.Errorf("%s = %v, want none", k, got)
			case v != -1 && (!ok || got != v):
				t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
			}
		}
	}
	e := scrape()
	want(e, map[string]float64{
		"hupd_up": 1,
		seriesKey("hupd_generation_starts_total", p("app")):                                                1,
		seriesKey("hupd_generation_starts_total", p("web")):                                                2,
		seriesKey("hupd_reloads_total", p("web"), label{"result", "ok"}, label{"strategy", "swap"}):        1,
		seriesKey("hupd_reloads_total", p("app"), label{"result", "ok"}, label{"strategy", "swap"}):        0,
		seriesKey("hupd_ready_seconds_bucket", p("app"), label{"le", "1"}):                                 1,
		seriesKey("hupd_ready_seconds_count", p("web")):                                                    0,
		seriesKey("hupd_restarts_total", p("app")):                                                         1,
		seriesKey("hupd_restarts_total", p("web")):                                                         0,
		seriesKey("hupd_current_generation", p("app")):                                                     3,
		seriesKey("hupd_current_generation", p("web")):                                                     2,
		seriesKey("hupd_generations", p("web")):                                                            2,
		seriesKey("hupd_generation_processes", p("web"), label{"gen", "1"}):                                0,
		seriesKey("hupd_config_info", p("app"), label{"hash", "ha"}):                                       1,
		seriesKey("hupd_config_info", p("web"), label{"hash", "hw"}):                                       1,
		seriesKey("hupd_last_reload_success", p("web")):                                                    1,
		seriesKey("hupd_last_reload_success", p("app")):                                                    -1,
		seriesKey("hupd_last_reload_timestamp_seconds", p("web")):                                          1_700_000_000,
		seriesKey("hupd_reloads_total", label{"result", "ok"}, label{"strategy", "swap"}):                  -1,
		seriesKey("hupd_generation_processes", p("app"), label{"gen", "3"}):                                0,
		seriesKey("hupd_ready_seconds_bucket", p("web"), label{"le", "+Inf"}):                              0,
		seriesKey("hupd_reloads_total", p("app"), label{"result", "failed"}, label{"strategy", "restart"}): 0,
	})
	if n := strings.Count(strings.Join(e.order, "\n"), "hupd_up"); n != 1 {
		t.Errorf("hupd_up: %d families, want 1", n)
	}

	// web waits: its counters, none of its gauges.
	web.set(ProgramWaiting)
	e = scrape()
	want(e, map[string]float64{
		"hupd_up": 1,
		seriesKey("hupd_generation_starts_total", p("web")): 2,
		seriesKey("hupd_current_generation", p("web")):      -1,
		seriesKey("hupd_current_generation", p("app")):      3,
	})

	// app is stuck: hupd_up 0, its counters still.
	release := app.src.stick()
	defer release()
	e = scrape()
	want(e, map[string]float64{
		"hupd_up": 0,
		seriesKey("hupd_generation_starts_total", p("app")): 1,
		seriesKey("hupd_current_generation", p("app")):      -1,
	})
}

// TestProgramsSet: SetPrograms replaces the programs: one removed is no
// longer asked for (/readyz 200 without it, ?program= 404), one added is
// (its state counts), and a program named again keeps its counters.
func TestProgramsSet(t *testing.T) {
	ts, app, web := startPrograms(t, Options{Failures: 1}, false)
	ts.ProgramHooks("app").Reloaded(supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "check failed"})
	web.set(ProgramEnded)
	ts.expect(t, "/readyz", 503, "program app: 1 reload in a row failed; the last: check failed")
	extra := &testProgram{src: &fakeSource{st: ready(1)}}
	extra.set(ProgramWaiting)
	state := func(p *testProgram) func() ProgramState {
		return func() ProgramState { return ProgramState(p.state.Load()) }
	}
	ts.SetPrograms([]Program{{Name: "app", Source: app.src, State: state(app)}, {Name: "extra", Source: extra.src, After: []string{"app"}, State: state(extra)}})
	ts.expect(t, "/readyz?program=web", 404, `no program "web"`)
	ts.expect(t, "/readyz", 503, "program app: 1 reload in a row failed; the last: check failed")
	ts.ProgramHooks("app").Reloaded(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap})
	ts.expect(t, "/readyz", 503, "program extra: waiting for app to be ready")
	extra.set(ProgramRunning)
	ts.expect(t, "/readyz", 200, "ok")
}
