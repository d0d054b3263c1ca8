package control

import (
	"time"

	"github.com/hupd/hupd/supervisor"
)

// ProtocolVersion is the control socket protocol's version. Requests and
// replies are single lines of JSON; a reply carries the version it speaks.
//
//	→ {"v":1,"cmd":"reload","timeout":"60s"}
//	← {"v":1,"ok":true,"reload":{…}}
//	→ {"v":1,"cmd":"rollback"}
//	← {"v":1,"ok":true,"reload":{"ok":true,"strategy":"rollback",…}}
//	→ {"v":1,"cmd":"scale","instances":4,"timeout":"1m0s"}
//	← {"v":1,"ok":true,"scale":{"ok":true,"from":2,"to":4,"gen":3,…}}
//	→ {"v":1,"cmd":"plan","config":"…"}
//	← {"v":1,"ok":true,"plan":{…}}
//	← {"v":1,"ok":true,"fleet_plan":{"programs":[{"name":"app","change":"changed","plan":{…}},…]}} (several programs)
//	→ {"v":1,"cmd":"status"}
//	← {"v":1,"ok":true,"status":{…}}
//	→ {"v":1,"cmd":"reload","progress":true}
//	← {"v":1,"progress":{"gen":2,"pid":42,"ready":"notify","elapsed":"1.2s","timeout":"1m0s"}}
//	← … (one progress line every ProgressEvery until the reply)
//	← {"v":1,"ok":true,"reload":{…}}
//	→ {"v":1,"cmd":"logs","gen":2,"lines":10}
//	← {"v":1,"ok":true,"logs":[{"time":…,"gen":2,"pid":…,"stream":"stderr","line":"…"},…]}
//	→ {"v":1,"cmd":"logs","follow":true}
//	← {"v":1,"ok":true,"logs":[…]}         the lines kept, then one line per line written
//	← {"v":1,"ok":true,"line":{…}}         until the client hangs up
//	→ anything malformed
//	← {"v":1,"ok":false,"error":"…"}
const ProtocolVersion = 1

// Line limits.
const (
	// MaxLine is the longest request line the server reads, without its
	// newline. A longer line gets an error reply and is skipped.
	MaxLine = 64 << 10
	// maxReplyLine bounds what Call reads back.
	maxReplyLine = 16 << 20
)

// Control commands.
const (
	CmdReload  = "reload"
	CmdStatus  = "status"
	CmdPing    = "ping"
	CmdUpgrade = "upgrade"
	CmdPlan    = "plan"
	CmdLogs    = "logs"
	// CmdRollback makes the settling generation serve again (see
	// supervisor.Supervisor.Rollback); the reply's Reload reports it.
	CmdRollback = "rollback"
	// CmdScale sets the number of instances of the serving generation
	// (see supervisor.Supervisor.Scale); the reply's Scale reports it.
	CmdScale = "scale"
)

// Request is one control request.
type Request struct {
	V   int    `json:"v"`
	Cmd string `json:"cmd"`
	// Timeout bounds how long a reload or scale request waits, as a Go
	// duration; "" waits for it to finish however long it takes.
	Timeout string `json:"timeout,omitempty"`
	// Binary is what an upgrade runs; "" is hupd's own binary.
	Binary string `json:"binary,omitempty"`
	// Progress asks a reload request for Progress lines before its reply
	// (a client that does not set it gets exactly one line, as ever).
	Progress bool `json:"progress,omitempty"`
	// Config is, for a plan, the content of the hupd.toml to plan (the
	// client read it); nil plans hupd.toml as it is on disk. hupd resolves
	// it with its own flags, as if its hupd.toml held it: it never reads a
	// file the client names.
	Config *string `json:"config,omitempty"`
	// Gen picks the generation whose output a logs request shows; 0 is
	// every generation hupd keeps lines of.
	Gen int `json:"gen,omitempty"`
	// Lines is how many of the last kept lines a logs request shows; 0 is
	// all of them.
	Lines int `json:"lines,omitempty"`
	// Follow makes a logs request go on: after the kept lines, each line
	// written from then on comes in a reply of its own (Reply.Line) until
	// the client hangs up.
	Follow bool `json:"follow,omitempty"`
	// Instances is the number of instances a scale request asks for: 1
	// to supervisor.MaxInstances.
	Instances int `json:"instances,omitempty"`
	// Programs names the programs a reload or status request is about,
	// when hupd runs several ([[program]] tables); none: every one. A
	// hupd of one program refuses a request that names any.
	Programs []string `json:"programs,omitempty"`
}

// Reply is the answer to one Request. Its reports are the supervisor's
// own types, as they are encoded in JSON.
type Reply struct {
	V      int                      `json:"v"`
	OK     bool                     `json:"ok"`
	Error  string                   `json:"error,omitempty"`
	Reload *supervisor.ReloadResult `json:"reload,omitempty"`
	Status *supervisor.Status       `json:"status,omitempty"`
	Plan   *supervisor.Plan         `json:"plan,omitempty"`
	// Reload also reports a rollback (Strategy "rollback"): NewGen and
	// NewPID are the generation that serves again, OldGen and OldPID the
	// newer one it replaces.
	// Scale reports a scale request's outcome.
	Scale *supervisor.ScaleResult `json:"scale,omitempty"`
	// BadConfig marks an error about the configuration planned.
	BadConfig bool `json:"bad_config,omitempty"`
	// Progress is set, alone (no "ok"), in the lines a reload request with
	// Progress gets before its reply.
	Progress *Progress `json:"progress,omitempty"`
	// Logs are the kept output lines a logs request asked for, oldest first.
	Logs []supervisor.OutputLine `json:"logs,omitempty"`
	// Line is one line followed (Request.Follow).
	Line *supervisor.OutputLine `json:"line,omitempty"`
	// Dropped, with Line, is how many lines were lost since the last line
	// sent: the client did not keep up, and hupd does not queue them.
	Dropped int `json:"dropped,omitempty"`
	// Programs answers a reload or status request of a hupd that runs
	// several programs: one entry per program asked about, in start order
	// (Reload and Status are not set then).
	Programs []ProgramReply `json:"programs,omitempty"`
	// BadProgram marks an error about the program names of the request
	// (one that hupd does not run).
	BadProgram bool `json:"bad_program,omitempty"`
	// FleetPlan answers a plan request of a hupd that runs several
	// programs (Plan is not set then).
	FleetPlan *FleetPlan `json:"fleet_plan,omitempty"`
}

// FleetPlan says what applying a hupd.toml with several programs would
// do, changing nothing (hupd plan): per program, in the new file's start
// order and then the programs it removes, and for hupd itself.
type FleetPlan struct {
	Programs []ProgramPlan `json:"programs"`
	// Live are hupd-wide settings that change without a restart
	// (log.level, watch_config).
	Live []string `json:"live,omitempty"`
	// Restart are the hupd-wide settings that take effect only when hupd
	// restarts (name, control, [health], log.format, the fd store).
	Restart []supervisor.PlanSetting `json:"restart,omitempty"`
}

// Nothing reports whether applying the file would change nothing.
func (p FleetPlan) Nothing() bool {
	for _, pp := range p.Programs {
		if pp.Change != ChangeUnchanged {
			return false
		}
	}
	return len(p.Live) == 0 && len(p.Restart) == 0
}

// ProgramPlan is one program's part of a FleetPlan.
type ProgramPlan struct {
	Name string `json:"name"`
	// Change is ChangeAdded, ChangeRemoved, ChangeUnchanged or
	// ChangeChanged.
	Change string `json:"change"`
	// State is the program's state now (ProgramWaiting, ProgramRunning,
	// ProgramEnded); "" for one added.
	State string `json:"state,omitempty"`
	// Plan: for a program changed, what its own plan says, as hupd plan
	// says it of a single program (a program waiting to start has no
	// generation: its sockets only); for one added, the sockets it
	// opens; for one removed, those it closes.
	Plan *supervisor.Plan `json:"plan,omitempty"`
}

// ProgramPlan.Change values.
const (
	ChangeAdded     = "added"
	ChangeRemoved   = "removed"
	ChangeUnchanged = "unchanged"
	ChangeChanged   = "changed"
)

// ProgramReply is one program's part of a Reply (Reply.Programs).
type ProgramReply struct {
	Name string `json:"name"`
	// State is ProgramWaiting, ProgramRunning or ProgramEnded.
	State string `json:"state"`
	// Status answers a status request (nil while the program waits).
	Status *supervisor.Status `json:"status,omitempty"`
	// Reload answers a reload request.
	Reload *supervisor.ReloadResult `json:"reload,omitempty"`
}

// A program's states (ProgramReply.State).
const (
	// ProgramWaiting: it waits for the programs it starts after.
	ProgramWaiting = "waiting"
	// ProgramRunning: its supervisor runs.
	ProgramRunning = "running"
	// ProgramEnded: it ended for good, or will never start.
	ProgramEnded = "ended"
)

// ProgressEvery is how often a reload request with Progress gets a
// Progress line while the reload runs.
const ProgressEvery = 250 * time.Millisecond

// Progress is what a reload waits for: the new generation (Gen and PID,
// once it is starting), how it is judged ready (supervisor.Readiness's
// string: "notify", "delay:2s", "exec:…"), and how long it has waited
// (since the generation started, since the request before) of Timeout,
// the ready timeout.
type Progress struct {
	Gen     int                 `json:"gen,omitempty"`
	PID     int                 `json:"pid,omitempty"`
	Ready   string              `json:"ready,omitempty"`
	Elapsed supervisor.Duration `json:"elapsed"`
	Timeout supervisor.Duration `json:"timeout,omitempty"`
}

// progressLine is a Progress line on the wire: no "ok".
type progressLine struct {
	V        int       `json:"v"`
	Progress *Progress `json:"progress"`
}
