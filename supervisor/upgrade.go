package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/internal/safefile"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// An in-place upgrade re-executes hupd's binary in hupd's own process: the
// same PID (so it works as PID 1), the same children. What the new image
// needs travels in a memfd whose fd EnvUpgrade names, and every fd it
// refers to (sockets, notify sockets, output pipes, seccomp notify fds,
// the old binary) stays open across exec.
//
// It runs only when nothing is in flight: no reload, no stop, no restart
// pending, every generation ready, settling or draining. Steering goes
// over too (upgrade_steer.go): the sockets of each steering group, its
// target, and the deadlines of a generation settling or waiting for its
// queues to empty. The reaper is frozen from
// the moment hupd checks that every generation's process is still waited
// for, so an exit during the exec window stays with the kernel (a zombie)
// for the new image to reap. The new binary is first run as
// "BINARY upgrade-protocol", which must answer UpgradeProtocol: a file that
// is not a hupd speaking this protocol is never exec'd. If the exec itself
// fails the old image goes on as before.

// EnvUpgrade names, in the new image's environment, the fd of the state.
const EnvUpgrade = signals.EnvEarlyIntake

// UpgradeProtocol is what "hupd upgrade-protocol" prints: the version of
// the state format this binary reads.
const UpgradeProtocol = "hupd-upgrade 1"

const upgradeVersion = 1

// Upgrade is the state an upgrade hands over.
type Upgrade struct {
	Version   int    `json:"version"`
	Exe       int    `json:"exe"` // fd of the old binary, to go back to
	NotifyDir string `json:"notify_dir"`
	// Lock is the fd of the runtime directory's lock (see OpenRuntime),
	// 0 when there is none (a hupd without a runtime directory).
	Lock     int    `json:"lock,omitempty"`
	Hash     string `json:"hash"`
	Note     Note   `json:"note"`
	NextGen  int    `json:"next_gen"`
	Reloads  int    `json:"reloads"`
	Restarts int    `json:"restarts"`
	Upgrades int    `json:"upgrades"` // this one included
	Notified bool   `json:"notified"`
	// Instances is the number of instances in force (what hupd scale set)
	// and FileInstances the configuration's: the new image keeps the
	// first while its configuration asks for the same as the second.
	Instances     int `json:"instances,omitempty"`
	FileInstances int `json:"file_instances,omitempty"`
	// Last is the last reload's result.
	Last *ReloadResult `json:"last,omitempty"`
	// Listeners are the configured sockets, Retired the dropped ones a
	// generation still uses.
	Listeners []socketact.ListenerState `json:"listeners"`
	Retired   []socketact.ListenerState `json:"retired,omitempty"`
	// Steered are the steering groups of the steered sockets among them
	// (upgrade_steer.go); absent from a hupd that steered nothing.
	Steered []SteerState `json:"steered,omitempty"`
	Gens    []GenState   `json:"gens"`
	// Sentinel is hupd's end of the sentinel's socket and its PID (nil:
	// none); the new image takes it over (package internal/sentinel).
	Sentinel *SentinelState `json:"sentinel,omitempty"`
	// Cgroup is the containment layout (package contain); nil from a hupd
	// that had none: the new image sets one up, and the generations it
	// takes over are process groups.
	Cgroup *contain.State `json:"cgroup,omitempty"`
	// Name and Control are the name and control socket path hupd runs
	// under, ControlExplicit whether that path was given: the new image
	// keeps them, whatever its command line would give today. Empty from
	// an older binary: see Identity.
	Name            string `json:"name,omitempty"`
	Control         string `json:"control,omitempty"`
	ControlExplicit bool   `json:"control_explicit,omitempty"`
	// Kept is every kept generation's output lines (hupd logs), exited
	// ones included, oldest generation first, with their time and stream.
	// A binary without it restores each running generation's Tail.
	Kept []KeptOutput `json:"kept,omitempty"`
	// Fleet is the state of a hupd that runs several programs
	// (upgrade_fleet.go): the fields above are then hupd's own (Exe,
	// Lock, Sentinel, Cgroup, Name, Control), and each running program's
	// supervisor has its part there. Nil with one program.
	Fleet *FleetState `json:"fleet,omitempty"`
	// Config is the content of hupd.toml in force, the very bytes that
	// were resolved and hashed: the new image resolves its configuration
	// from them (UpgradeConfig), takes over exactly what runs, then
	// applies the file on disk as an edit if it differs. Nil without
	// hupd.toml, and from an older binary (the new image then reads the
	// file on disk).
	Config []byte `json:"config,omitempty"`

	fd         int  // the memfd, in the new image
	rolledBack bool // this image was started by a Rollback
}

// envRolledBack marks an image started by Rollback.
const envRolledBack = "HUPD_UPGRADE_ROLLBACK"

// RolledBack reports whether this image is the old binary, taking its
// state back after the new one could not.
func (st *Upgrade) RolledBack() bool { return st.rolledBack }

// KeptOutput is what hupd keeps of one generation's output, as an upgrade
// hands it over.
type KeptOutput struct {
	Gen   int        `json:"gen"`
	Inst  int        `json:"inst,omitempty"`
	PID   int        `json:"pid"`
	Lines []KeptLine `json:"lines"`
}

// KeptLine is one kept output line. Text is bytes: what the program wrote,
// valid UTF-8 or not, crosses the upgrade unchanged.
type KeptLine struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream,omitempty"`
	Text   []byte    `json:"text"`
}

// GenState is a generation as the new image receives it.
type GenState struct {
	Num int `json:"num"`
	// Inst is its instance's index; Instances how many its generation
	// runs (0: one), Restarts the instance's restarts.
	Inst      int `json:"inst,omitempty"`
	Instances int `json:"instances,omitempty"`
	Restarts  int `json:"restarts,omitempty"`
	// Start: which start of its instance it is (the sentinel's key);
	// Several: its generation ran several instances once.
	Start   int       `json:"start,omitempty"`
	Several bool      `json:"several,omitempty"`
	PID     int       `json:"pid"`
	PGID    int       `json:"pgid"`
	MainPID int       `json:"main_pid,omitempty"`
	State   State     `json:"state"`
	Started time.Time `json:"started"`
	ReadyAt time.Time `json:"ready_at"`
	DrainBy time.Time `json:"drain_by,omitzero"`
	// EmptyBy: draining, not yet told to stop, waiting for its steered
	// sockets' queues to empty until then at the latest.
	EmptyBy time.Time `json:"empty_by,omitzero"`
	// SettleEnd: settling, when its window ends.
	SettleEnd    time.Time             `json:"settle_end,omitzero"`
	Notify       socketact.NotifyState `json:"notify"`
	Stdout       int                   `json:"stdout"` // fd; -1 when output is inherited
	Stderr       int                   `json:"stderr"`
	Trap         int                   `json:"trap"` // fd; -1 without bind redirection
	SpeaksNotify bool                  `json:"speaks_notify,omitempty"`
	SpeaksReload bool                  `json:"speaks_reload,omitempty"`
	StatusText   string                `json:"status_text,omitempty"`
	ConfigHash   string                `json:"config_hash,omitempty"`
	Sockets      []int                 `json:"sockets"` // fds of its listeners
	StopSignal   int                   `json:"stop_signal"`
	StopTimeout  time.Duration         `json:"stop_timeout"`
	UID          int                   `json:"uid"`
	Watchdog     time.Duration         `json:"watchdog,omitempty"`
	Tail         []string              `json:"tail,omitempty"`
	Cgroup       string                `json:"cgroup,omitempty"` // its cgroup's directory
	// MainStart is when PID started (socketact.StartTime): a main process
	// the previous image followed was vetted there, and is trusted again
	// while it is that very process.
	MainStart uint64 `json:"main_start,omitempty"`
	// NoLeader: the process group PGID is no longer the generation's
	// (contain.Group.DropLeader).
	NoLeader bool `json:"no_leader,omitempty"`
	// Forking: its first process still runs, and its exit 0 hands over
	// to the daemon it leaves (forking.go).
	Forking bool `json:"forking,omitempty"`
	// Forks: it was started in forking mode, with Pidfile ("": none).
	Forks   bool   `json:"forks,omitempty"`
	Pidfile string `json:"pidfile,omitempty"`
}

// Upgrade re-executes binary (hupd's own when empty) in place; see the
// comment above. It returns only on failure: nothing changed then. On
// success the process is the new image and the caller's connection, if
// any, is closed by the exec.
func (s *Supervisor) Upgrade(ctx context.Context, binary string) error {
	reply := make(chan error, 1)
	select {
	case s.reqs <- request{upgrade: &upgradeRequest{binary: binary, reply: reply}}:
	case <-s.quit:
		return errors.New("hupd is not running")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-s.quit:
		return errors.New("hupd stopped")
	}
}

// SetUpgradeGuard sets a check an upgrade must pass before its exec, such
// as "the configuration on disk is the one in force" (an edit not applied
// yet is refused, not carried over); call it before Run. It runs on a
// goroutine of its own.
func (s *Supervisor) SetUpgradeGuard(guard func() error) { s.upgradeGuard = guard }

// SetUpgradeConfig sets what gives, on Run's goroutine right before an
// upgrade's exec, the content of hupd.toml in force (Upgrade.Config; nil:
// none). It must not block. Call it before Run.
func (s *Supervisor) SetUpgradeConfig(config func() []byte) { s.upgradeConfig = config }

// SetExecGuard sets a check an upgrade must pass on Run's goroutine once
// everything is frozen, right before the exec, such as "no answer to a
// control request is being made" (an answer the exec would cut); it must
// not block. Call it before Run.
func (s *Supervisor) SetExecGuard(guard func() error) { s.execGuard = guard }

type upgradeRequest struct {
	binary string
	reply  chan<- error // nil: SIGUSR2, logged only
	// exe is binary, opened once: the checks run it and the exec runs it,
	// through /proc/…/fd/N, so what was checked is what runs even if
	// the path is renamed over meanwhile.
	exe *os.File
}

// upgrade runs on Run's goroutine: it checks the new binary on a goroutine
// of its own, so that signals and requests are handled meanwhile, and
// carries on at evUpgradeChecked.
func (s *Supervisor) upgrade(r *upgradeRequest) {
	if r.binary == "" {
		r.binary = s.opts.Self
	}
	var err error
	switch {
	case r.binary == "":
		err = errors.New("cannot tell which binary to run: give one")
	case s.upgrading:
		err = errors.New("an upgrade is in progress")
	default:
		err = s.steady()
	}
	if err == nil {
		r.exe, err = openBinary(r.binary)
	}
	if err != nil {
		s.upgradeFailed(r, err)
		return
	}
	s.upgrading = true
	shim, argv, guard := s.opts.Shim, s.opts.Argv, s.upgradeGuard
	go func() {
		err := s.checkUpgradeBinary(shim, r.binary, argv, r.exe, false)
		if err == nil && guard != nil {
			err = guard()
		}
		s.post(event{kind: evUpgradeChecked, upgrade: r, err: err})
	}()
}

// openBinary opens the new binary once, for its checks and its exec. It
// must be an absolute path (hupd upgrade --binary makes a relative one
// absolute against the client's working directory: hupd's own would be
// another), a regular file, executable and an ELF image (a script could
// not be exec'd from a descriptor that is closed by that exec).
func openBinary(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("binary %q: not an absolute path (hupd upgrade --binary makes a relative path absolute against its own working directory)", path)
	}
	f, st, err := safefile.Open(path)
	if err != nil {
		return nil, err
	}
	if st.Mode&0o111 == 0 {
		f.Close()
		return nil, &fs.PathError{Op: "exec", Path: path, Err: syscall.EACCES}
	}
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n != 4 || string(magic[:]) != "\x7fELF" {
		f.Close()
		return nil, fmt.Errorf("%s: not an ELF executable: hupd runs the file it checked from an open descriptor, which a script's interpreter could not read", path)
	}
	return f, nil
}

// upgradeChecked runs on Run's goroutine once the new binary was checked.
func (s *Supervisor) upgradeChecked(r *upgradeRequest, err error) {
	s.upgrading = false
	if err == nil {
		err = s.execUpgrade(r.binary, r.exe)
	}
	s.upgradeFailed(r, err)
}

func (s *Supervisor) upgradeFailed(r *upgradeRequest, err error) {
	if r.exe != nil {
		r.exe.Close()
		r.exe = nil
	}
	s.log.Error(logev.UpgradeFailed, KeyError, err)
	if r.reply != nil {
		r.reply <- err
	}
}

// execUpgrade hands everything over and execs exe, the file opened as
// binary and checked; it returns only if that could not be done.
func (s *Supervisor) execUpgrade(binary string, exe *os.File) error {
	st, pids, thaw, err := s.freeze()
	if err != nil {
		return err
	}
	defer thaw()
	if s.execGuard != nil {
		if err := s.execGuard(); err != nil {
			return err
		}
	}
	self, err := os.Open("/proc/self/exe") // the running binary, even if replaced on disk
	if err != nil {
		return fmt.Errorf("opening the running binary: %w", err)
	}
	defer self.Close()
	st.Exe = fdNum(self)
	if s.upgradeConfig != nil {
		st.Config = s.upgradeConfig()
	}
	s.log.Info(logev.UpgradeExec, "binary", binary, KeyPID, os.Getpid(), "generations", len(s.gens))
	return s.handOver(st, binary, exe, pids)
}

// freeze readies s for an upgrade's exec, on Run's goroutine: it checks
// that nothing is in flight, discards the standby, pauses every trap
// server and pins every output pipe (from here no trapped call is half
// answered and no handed-over fd is closed), and describes s's part of
// the state (its Exe unset). thaw undoes it, if the exec failed.
func (s *Supervisor) freeze() (st *Upgrade, pids []int, thaw func(), err error) {
	// Things may have moved while the check ran.
	if err := s.steady(); err != nil {
		return nil, nil, nil, err
	}
	if len(s.sigs) > 0 {
		return nil, nil, nil, errors.New("a signal arrived meanwhile: try again")
	}
	if s.standby != nil {
		s.discardStandby()
	}
	s.standbyLost = true // no new one before the exec (or after a failure)
	undo := []func(){func() { s.standbyLost = false }}
	opens := make(map[*generation]func(*os.File) bool, len(s.gens))
	for _, g := range s.gens {
		if g.trapSrv != nil {
			undo = append(undo, g.trapSrv.Pause())
		}
		open, release := g.out.pin()
		undo = append(undo, release)
		opens[g] = open
	}
	pids = make([]int, len(s.gens))
	for i, g := range s.gens {
		pids[i] = g.pid
	}
	thaw = func() {
		for _, f := range slices.Backward(undo) {
			f()
		}
	}
	return s.upgradeState(0, opens), pids, thaw, nil
}

// handOver writes st to a memfd, keeps every fd it names open across
// exec, and execs exe (the file opened as binary and checked) on the
// spawner's thread, the reaper frozen for pids; it returns only if that
// could not be done, with every fd close-on-exec again.
func (s *Supervisor) handOver(st *Upgrade, binary string, exe *os.File, pids []int) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	mfd, err := unix.MemfdCreate("hupd-upgrade", unix.MFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("memfd_create", err)
	}
	defer unix.Close(mfd)
	if _, err := unix.Write(mfd, data); err != nil {
		return os.NewSyscallError("write", err)
	}
	fds := append(st.fds(), mfd)
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("fd %d: %w", fd, os.NewSyscallError("fcntl", err))
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.CloseOnExec(fd)
		}
	}()
	env := append(slicesWithout(os.Environ(), EnvUpgrade+"=", envActivated+"="), EnvUpgrade+"="+strconv.Itoa(mfd),
		envActivated+"="+strconv.Itoa(socketact.ActivatedCount()))
	argv := s.opts.Argv
	if len(argv) == 0 {
		argv = []string{binary}
	}
	// On the spawner's thread: it forked the children, and no spawn is in
	// progress there, so the reaper can be frozen without deadlock.
	return s.sp.exec(func() error {
		// No exit is collected in this image from here: one during the
		// exec stays a zombie for the new image.
		thaw, waiting := s.reaper.Freeze(pids)
		defer thaw()
		if !waiting {
			return errors.New("a generation exited just now: try again")
		}
		// A signal from here to the new image's intake is ignored, not
		// fatal (a pending TERM would meet its default action there).
		restore, err := signals.IgnoreForExec()
		if err != nil {
			return err
		}
		defer restore() // only reached if the exec fails
		// The file checked, whatever is at binary's path now: exec of the
		// /proc/self/fd magic link is execveat(fd, "", AT_EMPTY_PATH)
		// done through syscall.Exec, which also restores the soft
		// RLIMIT_NOFILE Go raised and keeps threads from being created
		// during the exec (a raw execveat would do neither). The fd is
		// close-on-exec: the kernel opens the file before it closes fds.
		return os.NewSyscallError("execve "+binary, syscall.Exec("/proc/self/fd/"+strconv.Itoa(fdNum(exe)), argv, env))
	})
}

// fdNum is f's fd number, taken without File.Fd, which would make a
// pollable file (a pipe, a notify socket) blocking.
func fdNum(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	rc.Control(func(fd uintptr) { n = int(fd) })
	return n
}

// envActivated carries socketact.ActivatedCount to the new image, whose
// own environment no longer has LISTEN_FDS: swap stays the default for
// sockets passed on as received.
const envActivated = "HUPD_UPGRADE_ACTIVATED"

// steady says why an upgrade cannot run now, or nil.
func (s *Supervisor) steady() error {
	switch {
	case s.stopping:
		return errors.New("hupd is stopping")
	case s.tx != nil:
		return errors.New("a reload is in progress: try again when it is over")
	case s.restartT != nil:
		return errors.New("a restart is pending: try again when a generation serves")
	case s.queuedAny || len(s.queued) > 0:
		return errors.New("a reload is queued: try again when it is over")
	case s.restartsPending() > 0:
		return errors.New("an instance waits for its restart: try again when it serves")
	}
	for _, set := range s.sets {
		if set.scaling != nil {
			return errors.New("a scale is in progress: try again when it is over")
		}
	}
	for _, g := range s.gens {
		if g.exited() || g.state != StateReady && g.state != StateDraining && g.state != StateSettling {
			return fmt.Errorf("generation %d is %s: try again when it is ready or gone", g.num, g.state)
		}
	}
	return s.steerHandable()
}

// checkUpgradeBinary runs "binary upgrade-protocol" and wants
// UpgradeProtocol back, then "binary check" with hupd's own flags (from
// argv, hupd's command line: see Options.Argv). Both
// run exe, the file opened as binary (through hupd's /proc/PID/fd/N: the
// helper is hupd's own child, with its user), not what the path names by
// then.
//
// With programs (a hupd that runs several), it runs "binary
// upgrade-protocol programs" and wants UpgradeProtocolPrograms: a binary
// that cannot take several programs over answers otherwise.
func (s *Supervisor) checkUpgradeBinary(shim, binary string, argv []string, exe *os.File, programs bool) error {
	// argv[0] stays the binary's name, as hupd runs it.
	path := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fdNum(exe))
	ask, want := []string{binary, "upgrade-protocol"}, UpgradeProtocol
	if programs {
		ask, want = append(ask, upgradeProtocolPrograms), UpgradeProtocolPrograms
	}
	out, err := s.runOwn(shim, path, ask)
	if err != nil {
		if msg := strings.TrimSpace(out); msg != "" {
			err = fmt.Errorf("%w (%s)", err, firstLine(msg))
		}
		return fmt.Errorf("%s upgrade-protocol: %w: not a hupd that can take over", binary, err)
	}
	got := strings.TrimSpace(out)
	if programs && got == UpgradeProtocol {
		return fmt.Errorf("%s cannot take over several programs ([[program]]): it speaks %q, not %q", binary, got, want)
	}
	if got != want {
		return fmt.Errorf("%s speaks %q, this hupd %q: not compatible", binary, got, want)
	}
	// It must accept the configuration as it is on disk now, which it
	// reads when it starts: "hupd check" with the same flags.
	if len(argv) > 1 && argv[1] == "run" {
		if out, err := s.runOwn(shim, path, append([]string{binary, "check"}, argv[2:]...)); err != nil {
			return fmt.Errorf("%s refuses the configuration: %s", binary, firstLine(strings.TrimSpace(out)))
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// upgradeCheckTimeout bounds each run of the new binary before an upgrade.
const upgradeCheckTimeout = 10 * time.Second

// runOwn runs argv as hupd itself (its user and environment) as the
// helpers of reloads are run (startAux: through the spawner, the reaper
// handing its exit back), and returns its output (stdout and stderr).
// One killed by a stray HUP, USR1 or USR2 (systemctl kill -s USR2 reaches
// the check its upgrade starts) never gave its answer: it is run again,
// at most checkStrayRetries times, as a reload's check is. Any goroutine.
func (s *Supervisor) runOwn(shim, path string, argv []string) (string, error) {
	for retries := 0; ; retries++ {
		out, e, err := s.runOwnOnce(shim, path, argv)
		if err != nil && e.Status.Signaled() && isStraySignal(e.Status.Signal()) && retries < checkStrayRetries {
			s.log.Warn(logev.CheckStraySignal, KeyPID, e.PID, "signal", signals.Name(e.Status.Signal()))
			continue
		}
		return out, err
	}
}

// runOwnOnce is one run of runOwn; e is how it exited, if it did.
func (s *Supervisor) runOwnOnce(shim, path string, argv []string) (string, signals.Exit, error) {
	var e signals.Exit
	r, w, err := os.Pipe()
	if err != nil {
		return "", e, err
	}
	defer r.Close()
	pid, exited, err := s.startAuxPath(Options{Shim: shim, UID: -1, GID: -1}, path, argv, w)
	w.Close()
	if err != nil {
		return "", e, err
	}
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, io.LimitReader(r, 64<<10)); close(copied) }()
	t := time.NewTimer(upgradeCheckTimeout)
	defer t.Stop()
	select {
	case e = <-exited: // its process group killed after it
	case <-t.C:
		unix.Kill(-pid, unix.SIGKILL)
		return "", e, fmt.Errorf("no answer within %s", upgradeCheckTimeout)
	}
	select {
	case <-copied:
	case <-t.C: // a process that left its group holds the pipe
		return "", e, errors.New("its output pipe stayed open")
	}
	if e.Code() != 0 {
		return out.String(), e, errors.New(e.String())
	}
	return out.String(), e, nil
}

func slicesWithout(env []string, prefixes ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			out = append(out, kv)
		}
	}
	return out
}

// upgradeState describes what is handed over; open tells which output
// pipes are still open (pinned), and a generation's trap server is paused.
func (s *Supervisor) upgradeState(exe int, opens map[*generation]func(*os.File) bool) *Upgrade {
	st := &Upgrade{Version: upgradeVersion, Exe: exe, NotifyDir: s.notifyDir, Hash: s.hash, Note: s.note,
		NextGen: s.nextGen, Reloads: s.reloads, Restarts: s.restarts, Upgrades: s.upgrades + 1, Notified: s.notified, Last: s.last,
		Instances: max(s.opts.Instances, 1), FileInstances: s.fileInstances}
	if s.rt != nil && s.rt.LockFD() > 0 {
		st.Lock = s.rt.LockFD()
	}
	if s.rt != nil {
		st.Name, st.Control, st.ControlExplicit = s.rt.name, s.rt.ctl, s.rt.explicit
	}
	st.Kept = s.book.handover()
	cg := s.cg.State()
	st.Cgroup = &cg
	for _, l := range s.listeners {
		st.Listeners = append(st.Listeners, l.State())
	}
	if s.opts.Sentinel != nil {
		if fd, pid := s.opts.Sentinel.Handover(); fd >= 0 {
			st.Sentinel = &SentinelState{FD: fd, PID: pid}
		}
	}
	for _, l := range s.retired {
		st.Retired = append(st.Retired, l.State())
	}
	st.Steered = s.steerStates()
	fdOf := func(f *os.File) int {
		if f == nil {
			return -1
		}
		return fdNum(f)
	}
	for _, g := range s.gens {
		open := opens[g]
		out, errOut, trap := g.outR, g.errR, g.trap
		if !open(out) {
			out = nil // at EOF already: the copier closed it
		}
		if !open(errOut) {
			errOut = nil
		}
		if g.trapSrv != nil && g.trapSrv.Closed() {
			trap = nil // its processes are gone
		}
		gs := GenState{Num: g.num, PID: g.pid, PGID: g.pgid, MainPID: g.mainPID, State: g.state, Started: g.started,
			ReadyAt: g.readyAt, DrainBy: g.drainBy, EmptyBy: g.emptyBy, SettleEnd: g.settleEnd, Notify: g.notify.State(), Stdout: fdOf(out), Stderr: fdOf(errOut),
			Trap: fdOf(trap), SpeaksNotify: g.speaksNotify, SpeaksReload: g.speaksReload, StatusText: g.statusText,
			ConfigHash: g.configHash, StopSignal: int(g.stopSignal), StopTimeout: g.stopTimeout, UID: g.uid,
			Watchdog: g.watchdogDur, Tail: g.out.tail(), Cgroup: g.grp.Path(),
			NoLeader: g.grp.Path() == "" && g.grp.Leader() == 0,
			Forking:  g.forking, Forks: g.forks, Pidfile: g.pidfile}
		if g.set.multi() {
			gs.Inst, gs.Instances, gs.Restarts, gs.Start, gs.Several = g.inst, g.set.n, g.set.restarts[g.inst], g.start, g.set.several
		}
		gs.MainStart, _ = socketact.StartTime(g.pid)
		for _, l := range g.listeners {
			gs.Sockets = append(gs.Sockets, int(l.File.Fd()))
		}
		st.Gens = append(st.Gens, gs)
	}
	return st
}

// fds lists every fd the state refers to.
func (st *Upgrade) fds() []int {
	var fds []int
	if st.Exe > 0 { // none in a program's part (FleetState)
		fds = append(fds, st.Exe)
	}
	if st.Lock > 0 {
		fds = append(fds, st.Lock)
	}
	if st.Sentinel != nil {
		fds = append(fds, st.Sentinel.FD)
	}
	for _, l := range append(append([]socketact.ListenerState(nil), st.Listeners...), st.Retired...) {
		fds = append(fds, l.FD)
	}
	fds = append(fds, st.steerFDs()...)
	for _, g := range st.Gens {
		fds = append(fds, g.Notify.FD)
		for _, fd := range []int{g.Stdout, g.Stderr, g.Trap} {
			if fd >= 0 {
				fds = append(fds, fd)
			}
		}
	}
	for _, part := range st.parts() {
		fds = append(fds, part.fds()...)
	}
	return fds
}

// TakeUpgrade reads the state an upgrading hupd handed over, or returns
// nil when this hupd was not started by an upgrade. It removes EnvUpgrade
// from the environment. argv is hupd's command line (os.Args): its first
// word names the process again.
func TakeUpgrade(argv []string) (*Upgrade, error) {
	v, ok := os.LookupEnv(EnvUpgrade)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvUpgrade)
	os.Unsetenv(envActivated) // socketact.ActivatedCount has read it
	// Executed through /proc/self/fd/N, this image's name (ps, pgrep, the
	// journal's _COMM) is "N": give it back the name it was started as.
	if len(argv) > 0 {
		os.WriteFile("/proc/self/comm", []byte(filepath.Base(argv[0])), 0)
	}
	rolledBack := os.Getenv(envRolledBack) == "1"
	os.Unsetenv(envRolledBack)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not an fd", EnvUpgrade, v)
	}
	unix.CloseOnExec(fd)
	// Read with the fd as is: an *os.File would close it when collected,
	// and a rollback needs it.
	st, err := readUpgrade(fd)
	if err != nil {
		return nil, err
	}
	st.fd, st.rolledBack = fd, rolledBack
	for _, part := range st.parts() {
		part.rolledBack = rolledBack
	}
	for _, f := range st.fds() {
		unix.CloseOnExec(f)
	}
	return st, nil
}

// readUpgrade reads the state in the memfd fd, with the fd as is (read
// at offset 0: it can be read again).
func readUpgrade(fd int) (*Upgrade, error) {
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return nil, fmt.Errorf("upgrade state: %w", os.NewSyscallError("fstat", err))
	}
	data := make([]byte, fst.Size)
	if n, err := unix.Pread(fd, data, 0); err != nil || n != len(data) {
		return nil, fmt.Errorf("reading the upgrade state: %d of %d bytes: %v", n, len(data), err)
	}
	var st Upgrade
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("upgrade state: %w", err)
	}
	if st.Version != upgradeVersion {
		return nil, fmt.Errorf("upgrade state version %d, this hupd reads %d", st.Version, upgradeVersion)
	}
	return &st, nil
}

// UpgradeConfig returns the content of hupd.toml in force that the state
// of an upgrade carries (Upgrade.Config), for the new image to resolve
// its configuration from instead of the file on disk, which may have been
// edited since the previous image's last check. It reads the state EnvUpgrade names
// without taking it: TakeUpgrade reads it later. ok is false when this
// hupd was not started by an upgrade, or the state does not carry the
// content (from an older binary, or a hupd without hupd.toml). An error
// (a state that cannot be read) is TakeUpgrade's to report: ok is false.
func UpgradeConfig() (data []byte, ok bool) {
	v, found := os.LookupEnv(EnvUpgrade)
	if !found {
		return nil, false
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, false
	}
	st, err := readUpgrade(fd)
	if err != nil || st.Config == nil {
		return nil, false
	}
	return st.Config, true
}

// ErrNoIdentity is returned by Identity when the state names no service
// and its lock does not say which.
var ErrNoIdentity = errors.New("supervisor: the upgrade state says neither the name nor the control socket hupd runs under")

// Identity returns the name and control socket path hupd ran under before
// the upgrade, which the new image keeps (Upgrade.Name, Control).
// derived is true when the state, from an older binary, did not carry
// them: they are then read from the path of the runtime directory's lock
// (DIR/NAME.d/lock is the one of DIR/NAME.sock), and whether the path was
// explicit is not known. Without either, it returns ErrNoIdentity: the new
// image cannot tell which control socket is its own, and must hand the
// state back (a lock it dropped would let a second hupd of the same name
// start).
func (st *Upgrade) Identity() (name, control string, derived bool, err error) {
	if st.Name != "" && st.Control != "" {
		return st.Name, st.Control, false, nil
	}
	if st.Lock <= 0 {
		return "", "", false, ErrNoIdentity
	}
	name, control, ok := identityOfLock(st.Lock)
	if !ok {
		return "", "", false, ErrNoIdentity
	}
	return name, control, true, nil
}

// identityOfLock reads the name and control path from the path of the
// open lock file fd (readlink /proc/self/fd/N).
func identityOfLock(fd int) (name, control string, ok bool) {
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !filepath.IsAbs(path) || filepath.Base(path) != runtimeLock {
		return "", "", false // " (deleted)" and the like end otherwise
	}
	dir := filepath.Dir(path)
	name, ok = strings.CutSuffix(filepath.Base(dir), ".d")
	if !ok || name == "" {
		return "", "", false
	}
	return name, filepath.Join(filepath.Dir(dir), name+".sock"), true
}

// Serving returns the newest ready generation handed over, 0s if none.
func (st *Upgrade) Serving() (gen, pid int) {
	for _, g := range st.Gens {
		if g.State == StateReady && g.Num > gen {
			gen, pid = g.Num, g.PID
		}
	}
	return gen, pid
}

// Sockets returns every socket the state hands over, configured first.
func (st *Upgrade) Sockets() []socketact.ListenerState {
	return append(append([]socketact.ListenerState(nil), st.Listeners...), st.Retired...)
}

// Watch registers every generation's process with r, which must not be
// running yet: an exit during the exec waits as a zombie for it.
func (st *Upgrade) Watch(r *signals.Reaper) map[int]<-chan signals.Exit {
	exits := make(map[int]<-chan signals.Exit, len(st.Gens))
	for _, part := range append([]*Upgrade{st}, st.parts()...) {
		for _, g := range part.Gens {
			exits[g.PID] = r.Watch(g.PID)
		}
	}
	return exits
}

// Rollback re-executes the old binary with the same state and argv
// (hupd's command line, os.Args), after this image could not take over
// (the reason is logged by the caller). Call it on the thread that forked
// the children (Options.Thread). It returns only if that exec fails too.
func (st *Upgrade) Rollback(argv []string) error {
	fds := append(st.fds(), st.fd)
	for _, fd := range fds {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
	}
	env := append(slicesWithout(os.Environ(), EnvUpgrade+"=", envActivated+"="), EnvUpgrade+"="+strconv.Itoa(st.fd), envRolledBack+"=1",
		envActivated+"="+strconv.Itoa(socketact.ActivatedCount()))
	path := "/proc/self/fd/" + strconv.Itoa(st.Exe)
	if restore, err := signals.IgnoreForExec(); err == nil {
		defer restore() // only reached if the exec fails
	}
	err := syscall.Exec(path, argv, env)
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	return os.NewSyscallError("execve "+path, err)
}

// Close releases what only a failed take-over would need: the state's
// memfd and the old binary.
func (st *Upgrade) Close() {
	unix.Close(st.fd)
	unix.Close(st.Exe)
}

// Resume makes the supervisor take over the generations st hands over,
// instead of starting one; call it before Run. s's sockets (from New) are
// those of the configuration the caller matched with st's; others are the
// rest of the handed-over ones, kept while a generation uses them. exits
// are from st.Watch.
func (s *Supervisor) Resume(st *Upgrade, others []*socketact.Listener, exits map[int]<-chan signals.Exit) error {
	byFD := make(map[int]*socketact.Listener)
	held := append(append([]*socketact.Listener(nil), s.listeners...), others...)
	for _, l := range held {
		byFD[int(l.File.Fd())] = l
	}
	// A steered socket's generations each hold a member of its group.
	s.resumeSteer(st, held, byFD)
	type instKey struct{ gen, inst int }
	kept := make(map[instKey]KeptOutput, len(st.Kept))
	for _, k := range st.Kept {
		kept[instKey{k.Gen, k.Inst}] = k
	}
	sets := map[int]*genSet{}
	var outs []*output // for the logbook, by generation
	for _, gs := range st.Gens {
		ns, err := socketact.RestoreNotify(gs.Notify)
		if err != nil {
			return fmt.Errorf("generation %d: %w", gs.Num, err)
		}
		proc, err := os.FindProcess(gs.PID)
		if err != nil {
			return fmt.Errorf("generation %d: %w", gs.Num, err)
		}
		g := &generation{num: gs.Num, pid: gs.PID, pgid: gs.PGID, mainPID: gs.MainPID, proc: proc, state: gs.State,
			started: gs.Started, readyAt: gs.ReadyAt, drainBy: gs.DrainBy, emptyBy: gs.EmptyBy, settleEnd: gs.SettleEnd, notify: ns, out: &output{},
			exitParked: make(chan signals.Exit, 1), speaksNotify: gs.SpeaksNotify, speaksReload: gs.SpeaksReload,
			statusText: gs.StatusText, configHash: gs.ConfigHash, stopSignal: syscall.Signal(gs.StopSignal),
			stopTimeout: gs.StopTimeout, uid: gs.UID, watchdogDur: gs.Watchdog, ready: s.opts.Ready,
			forking: gs.Forking, forks: gs.Forks, pidfile: gs.Pidfile, inst: gs.Inst}
		set := sets[gs.Num]
		if set == nil {
			o := s.opts
			o.Instances = max(gs.Instances, 1)
			set = newGenSet(gs.Num, o)
			set.hash = gs.ConfigHash
			sets[gs.Num] = set
			s.addSet(set)
		}
		set.restarts[gs.Inst] = gs.Restarts
		set.starts[gs.Inst] = max(set.starts[gs.Inst], gs.Start, 1)
		set.ready = set.ready || gs.State == StateReady
		set.several = set.several || gs.Several
		g.set, g.start = set, gs.Start
		grp, err := s.cg.Adopt(gs.Cgroup, gs.PGID, gs.PID)
		if err != nil {
			s.log.Warn(logev.UpgradeCgroupNotTaken, KeyGen, gs.Num, KeyError, err)
		}
		if gs.NoLeader {
			grp.DropLeader()
		}
		g.grp, g.mainStart = grp, gs.MainStart
		for _, fd := range gs.Sockets {
			l, ok := byFD[fd]
			if !ok {
				return fmt.Errorf("generation %d: socket fd %d was not handed over", gs.Num, fd)
			}
			g.listeners = append(g.listeners, l)
		}
		if set.listeners == nil {
			set.listeners = g.listeners
		}
		g.out.gen, g.out.inst, g.out.pid = gs.Num, gs.Inst, gs.PID
		if k, ok := kept[instKey{gs.Num, gs.Inst}]; ok {
			g.out.restore(k.Lines)
			delete(kept, instKey{gs.Num, gs.Inst})
		} else if st.Kept == nil { // from a binary that handed over tails only
			for _, line := range gs.Tail {
				g.out.keep("", line)
			}
		}
		outs = append(outs, g.out)
		if gs.Stdout >= 0 {
			g.outR = os.NewFile(uintptr(gs.Stdout), "stdout")
		}
		if gs.Stderr >= 0 {
			g.errR = os.NewFile(uintptr(gs.Stderr), "stderr")
		}
		if gs.Trap >= 0 {
			g.trap = os.NewFile(uintptr(gs.Trap), "seccomp")
		}
		ch, ok := exits[gs.PID]
		if !ok {
			return fmt.Errorf("generation %d: pid %d not watched", gs.Num, gs.PID)
		}
		ref := &procRef{}
		ref.gen.Store(g)
		g.ref = ref
		followed := gs.PGID != 0 && gs.PID != gs.PGID // the one started is gone
		if !followed {
			g.origin.Store(int64(gs.PID))
			// hupd's child, not reaped yet (the reaper does not run
			// before Resume): the PID is still that process's.
			ns.SetOrigin(pidfdOpen(gs.PID))
		}
		if gs.MainPID != 0 || followed {
			// A MAINPID= is taken over in resumeGens, once the reaper
			// runs: its pidfd is opened there and its membership checked
			// again.
			g.mainPID, g.resumeExit = 0, ch
		} else {
			go func() { s.forwardExit(ref, <-ch) }()
		}
		g.resumeMain = gs.MainPID
		s.gens = append(s.gens, g)
		// The sentinel handed over knows it already; a new one (the
		// previous binary had none) learns it here. Not reaped yet: the
		// reaper does not run before Resume.
		s.guardPID(g, g.pid)
	}
	for _, k := range kept { // generations that have exited
		o := &output{gen: k.Gen, inst: k.Inst, pid: k.PID}
		o.restore(k.Lines)
		outs = append(outs, o)
	}
	slices.SortStableFunc(outs, func(a, b *output) int { return a.gen - b.gen })
	for _, o := range outs {
		s.book.add(o)
	}
	s.retired = append(s.retired, others...)
	s.publishHeld()
	s.notifyDir, s.hash, s.note = st.NotifyDir, st.Hash, st.Note
	s.nextGen, s.reloads, s.restarts, s.upgrades, s.notified, s.last = st.NextGen, st.Reloads, st.Restarts, st.Upgrades, st.Notified, st.Last
	if st.Instances > 0 && st.FileInstances == s.fileInstances {
		s.opts.Instances = st.Instances // hupd scale's, not edited since
	}
	s.resumed, s.rolledBack = true, st.rolledBack
	return nil
}

// resumeGens starts, on Run's goroutine, what watches each generation
// taken over: its notify reader, output copiers, trapped calls, watchdog
// and drain deadline.
func (s *Supervisor) resumeGens() {
	for _, g := range s.gens {
		stdout, stderr := s.sinks(&g.set.opts, g.num, g.inst, g.pid)
		if g.outR != nil {
			g.out.copy(g.outR, stdout)
		}
		if g.errR != nil {
			g.out.copy(g.errR, stderr)
		}
		s.resumeMain(g) // before the reader: member's roots are set
		go s.readNotify(g)
		if g.trap != nil {
			s.serveTrap(g, g.trap)
		}
		switch g.state {
		case StateReady:
			if g.watchdogDur > 0 {
				s.armWatchdog(g)
			}
		case StateSettling:
			if g.watchdogDur > 0 {
				s.armWatchdog(g)
			}
			g.settleT = s.after(g, max(time.Until(g.settleEnd), 0), evSettleEnd)
		case StateDraining:
			if !g.emptyBy.IsZero() {
				s.empty(g) // not told to stop yet: its queues first
				break
			}
			s.after(g, max(time.Until(g.drainBy), 0), evDrainTimeout)
			s.watchGroups(g) // told to stop: a shutdown of its sockets is mirrored at once
		}
		s.log.Info(logev.GenerationTakenOver, g.ids("state", string(g.state))...)
	}
	// Instances of the serving generation that were waiting for their
	// restart (or not restarted any more) are not handed over: start them.
	if cur := s.current(); cur != nil && cur.set.multi() {
		for i := range cur.set.n {
			if !slices.ContainsFunc(s.instances(cur.set), func(g *generation) bool { return g.inst == i }) {
				s.scheduleInstRestart(cur.set, i, 0, "not running when hupd was upgraded")
			}
		}
	}
	s.closeRetired()
}

// vettedMain reports whether g.pid, the main process the previous image
// followed after a MAINPID=, is still that process (the same start time:
// the previous image vetted it as a member) or is a member now. Its root
// is gone, and it may have left the generation's process group, so
// member alone would end a healthy generation at every upgrade.
func (s *Supervisor) vettedMain(g *generation) bool {
	if t, ok := socketact.StartTime(g.pid); ok && g.mainStart != 0 && t == g.mainStart {
		return true
	}
	return s.member(g, g.pid)
}

// resumeMain takes over, once the reaper runs, the processes g's main
// process was handed to with MAINPID=: the one followed (the one started
// had exited), whose pidfd is opened again in this image and which must
// still be a member of g (by its group: its root is gone), or the
// generation ends at once, since nothing else would end it; and one
// announced but not followed yet, accepted again as acceptMainPID does.
func (s *Supervisor) resumeMain(g *generation) {
	pid, exited := g.resumeMain, g.resumeExit
	g.resumeMain, g.resumeExit = 0, nil
	if exited == nil {
		return
	}
	if g.origin.Load() != 0 {
		go func() { s.forwardExit(g.ref, <-exited) }()
	} else {
		f, err := openMain(g.pid)
		if err == nil && (!s.vettedMain(g) || !pidfdAlive(f)) {
			f.Close()
			err = errNotMember
		}
		if err != nil {
			s.log.Warn(logev.UpgradeFollowedGone, KeyGen, g.num,
				KeyPID, g.pid, KeyReason, err.Error())
			e := signals.Exit{PID: g.pid}
			select {
			case e = <-exited: // it was hupd's child and has been reaped
			default:
			}
			go s.forwardExit(g.ref, e)
			return
		}
		g.procFD, g.mainPID = f, g.pid
		g.origin.Store(int64(g.pid))
		s.watchMain(g.ref, g.pid, f, exited)
	}
	if pid != 0 && pid != g.pid {
		s.acceptMainPID(g, pid, 0, s.vetMainPID(g, pid))
	}
}
