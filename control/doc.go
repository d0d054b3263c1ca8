// Package control is hupd's control plane: the server that listens on a
// running hupd's control socket, the clients (Call, CallProgress, Follow)
// that hupd reload, rollback, scale, status, upgrade, plan and logs use, and the protocol
// between them. It does not reload or report anything itself: a Handler
// does (hupd's wiring, internal/run, implements it with the supervisor), so
// a request flows control → run → supervisor. The supervisor does not know this package
// (it could not import it: the replies carry the supervisor's reports, so
// this package imports the supervisor).
//
// Protocol (ProtocolVersion 1): a unix stream socket; each request is one
// line of JSON (a Request, at most MaxLine bytes), each reply one line of
// JSON (a Reply) carrying the version. A connection's requests are
// answered in order, exactly one reply per request line, a malformed or
// over-long one included (an error reply, then the next line); a client
// may pipeline them. The one exception is opt-in: a reload request with
// "progress":true gets Progress lines (no "ok"), one every ProgressEvery,
// before its reply (CallProgress reads them; TestWireProgress pins them);
// a request without it never does. Only an ended connection goes without its reply: a
// successful upgrade replaces hupd's image (the client sees the connection
// close and asks the new one), Close may close a connection first, and a
// client that does not take a reply within replyWriteTimeout (10 s: it
// stopped reading) is hung up on, so that the answer it holds up no longer
// counts as being written (Server.Answering, which refuses upgrades).
// One request is answered with a stream instead: a logs request with
// Follow gets the kept lines, then one reply per output line (Reply.Line)
// until the client hangs up or stops reading (the connection is then
// closed; Follow is its client); the handler answers it only if it is a
// LogSource.
// The reports in a reply are the supervisor's own types (supervisor.Status,
// supervisor.ReloadResult), encoded as they are; TestWireFormat pins the
// bytes.
//
// Guarantees:
//   - The socket file has mode 0600 from the moment bind creates it,
//     whatever the umask; a directory Listen makes is 0700 (0711 as root).
//     Close removes the file only if it is still the one it bound.
//   - Both ends check the other's credentials (SO_PEERCRED): the server
//     answers only hupd's own user and root (others get one error reply);
//     Call believes only a server of its own user or root (ErrUntrusted).
//   - A live socket at the path is never taken over (EADDRINUSE); a stale
//     one is replaced; anything else there is left untouched.
//   - A plan request carries the configuration's content (the client
//     read it), never a path: hupd reads no file a client names. A
//     Handler that plans implements Planner.
//   - A rollback request is answered as a reload's, its result in the
//     reply's reload (strategy "rollback"); a client that hangs up
//     cancels the wait in the same way. A Handler that rolls back
//     implements Rollbacker; others refuse the request.
//   - A scale request is answered as a reload's, its result in the
//     reply's scale, bounded by its timeout and cancelled by a client that
//     hangs up in the same way; a number of instances out of range
//     (supervisor.ValidInstances) is refused before the handler is asked.
//     A Handler that scales implements Scaler; others refuse the request.
//   - A hupd that runs several programs has a Handler that is a Fleet:
//     reload and status requests are about the programs they name
//     (Request.Programs; none: every one), answered one entry per
//     program in Reply.Programs (reload results or statuses, in start
//     order); a name hupd does not run is an error reply with BadProgram,
//     and nothing is done. A plan request is answered in
//     Reply.FleetPlan by a Fleet that is a FleetPlanner (per program:
//     added, removed, unchanged, or changed and its own plan). Scale,
//     rollback and logs requests name one program, whose Handler
//     (Fleet.Program) answers them; an upgrade request names none and
//     goes to the Handler's Upgrade (every program at once). Every other
//     request but ping is refused (ErrSeveralPrograms). A Handler that is
//     not a Fleet refuses a
//     request that names programs (BadProgram). Requests without
//     programs are written and answered as before.
//   - A reload request waits for the handler's result, bounded by its
//     timeout. A client that hangs up (closes its connection) ends the
//     wait: the handler's context is cancelled; one that only shuts down
//     its writing side still gets its reply. Close cancels every wait and
//     returns once every handler call and connection goroutine has.
//   - A reload, rollback or scale request is being answered
//     (Server.Answering) from its reading until its answer is written:
//     hupd refuses an in-place upgrade meanwhile, whose exec would cut
//     the answer.
package control
