// Package supervisor runs a child program as successive generations on
// sockets held by hupd, and decides what happens on exits, signals and
// reloads.
//
// Model: one goroutine (Run) owns all state; signals, exits, notify
// datagrams, timers and requests (reload, status, apply, plan, upgrade: the
// methods other goroutines call) reach it on channels. The supervisor
// serves no client itself: hupd's wiring (internal/run) answers the
// control socket (package control) with these methods. Every child is
// started through one Spawner (Options.Spawner), by default from one
// locked OS thread (Options.Thread: hupd's main thread), so that its
// parent-death signal fires only when hupd itself dies, and is waited for
// by the one signals.Reaper of the process. hupd's version and command
// line (an upgrade's check and exec use it) come through Options as well,
// not from globals. A child leads its own process group and starts in
// its generation's cgroup where hupd has cgroups (package contain, set
// with Contain); when its main process exits, whatever is
// left of the group and of the cgroup is killed, and every forced stop of a
// generation kills both. With Options.Sentinel, every generation is
// registered from the moment its process exists (before its program is
// exec'd) until it is gone, so that the sentinel ends it if hupd dies.
//
// Trust: a notify datagram counts only when its sender is verified as a
// member of the generation at the time it is read (member: the process
// started or a descendant, a descendant of the accepted MAINPID, or a
// process in the generation's group; never hupd, its ancestors or PID 1),
// checked by the notify reader right after recvmsg, against the sender's
// pidfd (SCM_PIDFD) so that a reused PID cannot pass for it. Others are
// dropped and logged, at most once a second per generation. MAINPID= is
// accepted only for a member and held by a pidfd: signals go through it,
// and once followed its exit ends the generation whoever its parent is.
// The fd of a BARRIER=1 is closed once Run has handled that datagram,
// hence every one before it.
//
// Forking (Options.Forking, systemd's Type=forking): when a generation's
// first process exits 0, the daemon it left (the pidfile's PID, or the
// single orphan of the generation handed to hupd) is found, checked to be
// a process of the generation, and followed as a MAINPID= is; none,
// several or a refused one fail the start (forking.go).
//
// Sockets: the supervisor owns the set it runs with, on Run's goroutine:
// the sockets of the configuration in force, which every new generation
// gets, and the retired ones an earlier configuration dropped, each closed
// once no generation uses it. A new configuration (Apply) names its
// sockets by spec; they are chosen among that set (socketact.Sockets), so
// a socket listed again, retired or not, is kept and never bound twice,
// and nothing is lent out meanwhile. Run closes them all when it returns.
// Apply first decides (decide: the sockets kept, opened and dropped, by
// socketact.Match, and the settings that differ from the running
// generation's), then carries the decision out; Plan answers the same
// decision and carries out nothing, so hupd plan and an apply of the same
// configuration never disagree (only a socket that fails to open is found
// by the apply alone).
//
// Steering (steer.go, settle.go; socketact.Group): a steered socket is a
// reuseport group of hupd's own, and each live generation holds a member
// of its own (the target's when it starts while none serves, else another
// one; members are reused, never removed, so a group has at most as many
// as generations and the standby ever held at once). New connections go
// to one member, the target: the newest ready generation's. A swap steers
// to the new generation once it is ready, or fails if it cannot; an old
// generation gets its stop signal once its members' queues are empty or
// Options.SteerWait has passed, and at once when hupd stops. With
// Options.Settle the old generation of a swap stays running, receiving
// nothing (StateSettling), for a rollback that starts nothing. A socket a
// program shut down leaves its group; hupd mirrors it when a generation
// exits and closes its copy once no generation holds it.
//
// Invariant: at most one generation is not yet ready, and at most
// MaxDraining old generations drain at once (a reload waits for a slot).
// A reload is a transaction: the old generation is asked to stop only
// after the new one is ready; if the new one fails, it is the one that
// goes (one killed before it was ready by HUP, USR1 or USR2, signals
// meant for the whole service that hupd never sends it, is replaced
// instead, at most strayStartRetries times; a check killed so is run
// again, at most checkStrayRetries times). While no generation runs, the
// sockets stay open and clients wait in the listen backlog instead of
// being refused.
//
// Instances (Options.Instances, instances.go): a generation may run N
// processes of the program on the same sockets. Each instance is a
// generation value of its own (its process, notify socket gen-N-I.sock,
// cgroup gen-N-I, sentinel registration, readiness and output ring), and
// the instances of one generation share its number and a genSet: the
// options it started with, its sockets (a steered socket's member), each
// instance's restarts and backoff. A generation of one instance behaves
// exactly as before instances existed. A generation is ready when all its
// instances are; a swap stops old instances only once all new ones are
// ready, or with Options.Rolling K, K at a time (a failure part-way stops
// the new ones and starts the old ones it had stopped again, with the
// settings they had). An instance of the serving generation that exits on
// its own is restarted alone, in its generation, with its own backoff; it
// is not a reload, and the start limit gives up on it while others serve,
// on the program when none does. Scale starts instances of the serving
// generation or stops its highest-numbered ones, no reload. The drain cap
// (MaxDraining) counts generations, not instances.
//
// Crash loops end (Options.StartLimit): failed starts are counted in a
// window, and a restart that is due once the window holds the limit's
// burst is not made: hupd stops and Run returns the last failure's status.
// Only a restart is refused so: a failed reload never stops a generation
// that serves.
//
// Output: each generation's stdout and stderr are copied by goroutines of
// their own (output.go), raw or as log records (Options.OutputRecords),
// and the last lines are kept in a fixed ring per generation for the
// newest keptGens generations (Logs, FollowLogs): memory stays bounded
// whatever the children write, and a line is kept before it is copied.
//
// On disk, a running hupd owns its control socket and one runtime
// directory beside it (NAME.d, see OpenRuntime), which it holds locked for
// its whole life: a start that takes the lock knows the previous owner is
// dead and removes what it left; a start that cannot is refused. Neither
// hupd nor its client trusts a directory or a socket another user controls.
// A hupd that runs several programs has one supervisor per program, each
// with its own view of that one directory (Runtime.ForProgram: its notify
// sockets in notify@NAME, so that programs' gen-N.sock never collide) and
// its own contain.Manager (Manager.Child); only the owner of the
// directory closes it.
//
// In-place upgrade (upgrade.go): one exec of hupd, which hands over one
// state. With several programs (upgrade_fleet.go), each program's
// supervisor is frozen in turn (FreezeForUpgrade: the same checks and
// preparation as an upgrade of its own, then its Run goroutine waits)
// until the exec, or until thawed when the exec failed or another program
// refused: while any is frozen, none moves. The state then carries hupd's
// own fields once (binary, lock, sentinel, cgroup base, identity) and
// each program's part, which its supervisor in the new image Resumes.
package supervisor
