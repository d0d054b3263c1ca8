package control

import "github.com/hupd/hupd/supervisor"

// ProtocolVersion is the control socket protocol's version. Requests and
// replies are single lines of JSON; a reply carries the version it speaks.
//
//	→ {"v":1,"cmd":"reload","timeout":"60s"}
//	← {"v":1,"ok":true,"reload":{…}}
//	→ {"v":1,"cmd":"status"}
//	← {"v":1,"ok":true,"status":{…}}
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
	CmdLogs    = "logs"
)

// Request is one control request.
type Request struct {
	V   int    `json:"v"`
	Cmd string `json:"cmd"`
	// Timeout bounds how long a reload request waits, as a Go duration;
	// "" waits for the reload to finish however long it takes.
	Timeout string `json:"timeout,omitempty"`
	// Binary is what an upgrade runs; "" is hupd's own binary.
	Binary string `json:"binary,omitempty"`
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
}

// Reply is the answer to one Request. Its reports are the supervisor's
// own types, as they are encoded in JSON.
type Reply struct {
	V      int                      `json:"v"`
	OK     bool                     `json:"ok"`
	Error  string                   `json:"error,omitempty"`
	Reload *supervisor.ReloadResult `json:"reload,omitempty"`
	Status *supervisor.Status       `json:"status,omitempty"`
	// Logs are the kept output lines a logs request asked for, oldest first.
	Logs []supervisor.OutputLine `json:"logs,omitempty"`
	// Line is one line followed (Request.Follow).
	Line *supervisor.OutputLine `json:"line,omitempty"`
}
