package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
)

// The upgrade of a hupd that runs several programs ([[program]]): one
// exec for every program. The fleet checks the new binary once
// (CheckFleetUpgrade), then freezes each running program's supervisor in
// turn (FreezeForUpgrade): each, on its own Run goroutine, checks that
// nothing is in flight, readies its part of the state as execUpgrade does,
// and then holds its loop still until the fleet thaws it (the exec
// failed, or another program refused). Nothing of any program moves
// during the exec. ExecFleetUpgrade then hands one state over: hupd's
// own fields in Upgrade, each program's in FleetState.

// upgradeProtocolPrograms is the argument of "hupd upgrade-protocol" that
// asks whether a binary takes several programs over.
const upgradeProtocolPrograms = "programs"

// UpgradeProtocolPrograms is what "hupd upgrade-protocol programs" prints:
// this binary takes over the state of a hupd that runs several programs.
// A binary that cannot prints UpgradeProtocol, as to a plain
// "upgrade-protocol".
const UpgradeProtocolPrograms = UpgradeProtocol + " " + upgradeProtocolPrograms

// IsUpgradeProtocolPrograms reports whether args, the arguments of "hupd
// upgrade-protocol", ask for UpgradeProtocolPrograms.
func IsUpgradeProtocolPrograms(args []string) bool {
	return len(args) == 1 && args[0] == upgradeProtocolPrograms
}

// FleetState is what an upgrade hands over of a hupd that runs several
// programs, beside hupd's own fields of Upgrade.
type FleetState struct {
	// Programs in start order.
	Programs []ProgramState `json:"programs"`
	// NextID is the last program id given (a program's sentinel keys).
	NextID int `json:"next_id"`
	// SentinelNext is the last sentinel registration given.
	SentinelNext int `json:"sentinel_next,omitempty"`
	// ConfigHash is hupd.toml's hash as in force.
	ConfigHash string `json:"config_hash,omitempty"`
	// Code and IgnoredCode are the exit codes programs that ended left
	// for hupd's own (see the fleet's onEnd).
	Code        int `json:"code,omitempty"`
	IgnoredCode int `json:"ignored_code,omitempty"`
}

// ProgramState is one program of a FleetState.
type ProgramState struct {
	Name string `json:"name"`
	// ID is its id in the fleet (its sentinel keys).
	ID int `json:"id"`
	// Ended: its Run returned (or it never started): it is not run
	// again. Part is then nil.
	Ended bool `json:"ended,omitempty"`
	// Ran: its supervisor ran (one that ended may never have: a program
	// it starts after ended first).
	Ran bool `json:"ran,omitempty"`
	// Ready: it has been ready (the programs after it may start).
	Ready bool `json:"ready,omitempty"`
	// Sentinel maps each of its sentinel keys to the registration the
	// sentinel knows it by.
	Sentinel map[int]int `json:"sentinel,omitempty"`
	// Watch are the hashes of its [[program.watch]] groups, in order.
	Watch []string `json:"watch,omitempty"`
	// Part is its supervisor's state, without hupd's own fields (Exe,
	// Lock, Sentinel, Name, Control); its Cgroup is the program's.
	Part *Upgrade `json:"part,omitempty"`
}

// parts are the programs' parts of st, none with one program.
func (st *Upgrade) parts() []*Upgrade {
	if st.Fleet == nil {
		return nil
	}
	var parts []*Upgrade
	for _, p := range st.Fleet.Programs {
		if p.Part != nil {
			parts = append(parts, p.Part)
		}
	}
	return parts
}

// FleetUpgradeState is the state of a hupd that runs several programs,
// frozen each (in start order) and fl, its programs: hupd's own fields
// move from the programs' parts to the state's (one runtime directory,
// one sentinel, one identity), with cgroup hupd's layout (nil: none).
func FleetUpgradeState(frozen []*Frozen, cgroup *contain.State, fl *FleetState) *Upgrade {
	st := &Upgrade{Version: upgradeVersion, Fleet: fl, Cgroup: cgroup}
	for i, fz := range frozen {
		p := fz.State
		if i == 0 {
			st.Lock, st.Sentinel, st.Name, st.Control, st.ControlExplicit = p.Lock, p.Sentinel, p.Name, p.Control, p.ControlExplicit
		}
		st.Upgrades = max(st.Upgrades, p.Upgrades)
		p.Lock, p.Sentinel, p.Name, p.Control, p.ControlExplicit = 0, nil, "", "", false
	}
	return st
}

// freezeRequest asks Run's goroutine to freeze for a fleet's upgrade.
type freezeRequest struct {
	fz    *Frozen
	reply chan<- error
}

// Frozen is a supervisor held still for the upgrade of a hupd that runs
// several programs (FreezeForUpgrade): its Run goroutine waits until
// Thaw.
type Frozen struct {
	// State is the supervisor's part of the state (FleetUpgradeState
	// takes hupd's own fields out of it).
	State *Upgrade
	s     *Supervisor
	pids  []int
	thaw  chan struct{}
	once  sync.Once
}

// Thaw lets the frozen supervisor go on, as if no upgrade had been asked
// for. Idempotent.
func (fz *Frozen) Thaw() { fz.once.Do(func() { close(fz.thaw) }) }

// FreezeForUpgrade asks s, on Run's goroutine, to check that nothing is
// in flight, ready its part of an upgrade's state as an upgrade of its
// own would, and hold still until the Frozen's Thaw. An error says why
// not (nothing changed then).
func (s *Supervisor) FreezeForUpgrade(ctx context.Context) (*Frozen, error) {
	fz := &Frozen{s: s, thaw: make(chan struct{})}
	reply := make(chan error, 1)
	select {
	case s.reqs <- request{freeze: &freezeRequest{fz: fz, reply: reply}}:
	case <-s.quit:
		return nil, errors.New("it is not running")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return nil, err
		}
		return fz, nil
	case <-s.quit:
		return nil, errors.New("it stopped")
	}
}

// freezeFor runs on Run's goroutine: it blocks it until r's Thaw.
func (s *Supervisor) freezeFor(r *freezeRequest) {
	if s.upgrading {
		r.reply <- errors.New("an upgrade is in progress")
		return
	}
	st, pids, thaw, err := s.freeze()
	if err != nil {
		r.reply <- err
		return
	}
	r.fz.State, r.fz.pids = st, pids
	r.reply <- nil
	<-r.fz.thaw
	thaw()
}

// CheckFleetUpgrade opens binary (hupd's own when empty) and checks it for
// the upgrade of a hupd that runs several programs, as an upgrade of s
// alone would ("binary upgrade-protocol programs" must answer
// UpgradeProtocolPrograms, then "binary check" with hupd's flags), then
// guard, if not nil. It returns the binary's path and the file opened,
// which the caller closes. Any goroutine, while s runs.
func (s *Supervisor) CheckFleetUpgrade(binary string, guard func() error) (string, *os.File, error) {
	if binary == "" {
		binary = s.opts.Self
	}
	if binary == "" {
		return "", nil, errors.New("cannot tell which binary to run: give one")
	}
	exe, err := openBinary(binary)
	if err != nil {
		return "", nil, err
	}
	err = s.checkUpgradeBinary(s.opts.Shim, binary, s.opts.Argv, exe, true)
	if err == nil && guard != nil {
		err = guard()
	}
	if err != nil {
		exe.Close()
		return "", nil, err
	}
	return binary, exe, nil
}

// ExecFleetUpgrade hands st (FleetUpgradeState) over and execs exe, the
// file CheckFleetUpgrade opened as binary, on the spawner's thread of the
// first frozen supervisor (hupd's one: Options.Thread), the reaper frozen
// for every frozen supervisor's generations. It returns only if that
// could not be done: the caller thaws them then.
func ExecFleetUpgrade(st *Upgrade, binary string, exe *os.File, frozen []*Frozen) error {
	if len(frozen) == 0 {
		return errors.New("no program runs")
	}
	for _, fz := range frozen[1:] {
		// The exec ends every other thread: a child forked on one of
		// them would get its parent-death signal.
		if o := fz.s.opts; o.Thread == nil && o.Spawner == nil {
			return errors.New("the programs' children were forked on threads of their own (no Options.Thread): an exec would end them")
		}
	}
	self, err := os.Open("/proc/self/exe") // the running binary, even if replaced on disk
	if err != nil {
		return fmt.Errorf("opening the running binary: %w", err)
	}
	defer self.Close()
	st.Exe = fdNum(self)
	var pids []int
	for _, fz := range frozen {
		pids = append(pids, fz.pids...)
	}
	s := frozen[0].s
	s.log.Info(logev.UpgradeExec, "binary", binary, KeyPID, os.Getpid(), "generations", len(pids), "programs", len(frozen))
	return s.handOver(st, binary, exe, pids)
}

// Ended makes s, which never ran, answer as a supervisor whose Run has
// returned: a program of a hupd that runs several, which had ended before
// the upgrade that handed it over. Call it instead of Run.
func (s *Supervisor) Ended() { close(s.quit) }
