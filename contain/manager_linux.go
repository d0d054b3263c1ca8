package contain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure Setup.
type Options struct {
	// Name is hupd's name (--name): the base group is hupd-NAME-PID.
	Name string
	// Mode: "" is ModeAuto.
	Mode Mode
}

// Manager places generations in cgroups (Enabled), or in process groups
// only (the fallback, see Reason). Its methods may be called from any
// goroutine.
type Manager struct {
	mount string // cgroup mode: the cgroup2 mount point
	base  string // cgroup mode: the directory holding supervisor and gen-N
	start string // cgroup mode: hupd's cgroup before Setup
	owned bool   // base was created by Setup (Close removes it)
	child bool   // base is a program's directory in its parent's (Child)
	why   string // fallback: why there are no cgroups

	wg     sync.WaitGroup // Retire's goroutines
	mu     sync.Mutex
	groups map[*Group]struct{} // made and not retired yet
	failed []string            // groups Retire could not remove
	os     sysOps
}

// Cleaned is a stale group that Setup removed: a hupd of the same name
// that died without cleaning up left it.
type Cleaned struct {
	Path   string
	Killed int // processes that were still in it
}

// supervisorLeaf is the cgroup hupd moves itself into.
const supervisorLeaf = "supervisor"

// genPrefix starts the name of every generation's cgroup.
const genPrefix = "gen-"

// programPrefix starts the name of each program's cgroup when hupd runs
// several (Child): base/prog-NAME/gen-N.
const programPrefix = "prog-"

// controllers are enabled in base's children when base is offered them.
var controllers = []string{"memory", "pids", "cpu"}

// sysOps are the operating system's calls Setup makes that a test replaces
// to lay out a fake filesystem.
type sysOps struct {
	mounts    []string // cgroup2 mount candidates, in order
	selfCG    string   // /proc/self/cgroup
	isCgroup2 func(dir string) bool
	// held tells whether a live hupd (or its sentinel) holds the base
	// group at dir: its supervisor leaf holds a process. That holds
	// across PID namespaces, which a PID does not: hupds in containers
	// that share the host's cgroup2 mount see each other's base groups,
	// named after PIDs of namespaces they cannot see.
	held func(dir string) bool
	// alive tells whether process id (as /proc numbers it) exists. A base
	// group named after a live process is never stale: its hupd may be
	// between making it and moving into it, when it is not held yet.
	alive func(id int) bool
	pid   int // hupd's PID (in its own PID namespace)
	// id is hupd's PID as /proc numbers it: the PID of the namespace
	// /proc was mounted for, which outside a container is the host's. It
	// names the base group, so that hupds that are PID 1 of namespaces of
	// their own do not collide.
	id    int
	mkdir func(dir string) error
	rmdir func(dir string) error
	// waitEmpty waits until the cgroup at dir holds no process.
	waitEmpty func(dir string, d time.Duration) bool
	// probe checks that processes can be started straight into the cgroup
	// at dir and that it can be killed whole (cgroup.kill).
	probe func(dir string) error
}

func realOps() sysOps {
	return sysOps{
		mounts: []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"},
		selfCG: "/proc/self/cgroup",
		isCgroup2: func(dir string) bool {
			var st unix.Statfs_t
			return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
		},
		alive: func(id int) bool {
			_, err := os.Stat("/proc/" + strconv.Itoa(id))
			return !errors.Is(err, fs.ErrNotExist)
		},
		held: func(dir string) bool {
			// Made moments ago: its hupd may still be on its way into
			// it (a group's mtime is when it was made).
			var st unix.Stat_t
			if unix.Stat(dir, &st) == nil && time.Since(time.Unix(st.Mtim.Unix())) < setupGrace {
				return true
			}
			b, err := os.ReadFile(filepath.Join(dir, supervisorLeaf, "cgroup.events"))
			v, ok := parseKeyed(b, "populated")
			return err == nil && ok && v != 0
		},
		pid:   os.Getpid(),
		id:    procID(),
		mkdir: func(dir string) error { return os.Mkdir(dir, 0o755) },
		rmdir: func(dir string) error {
			if err := unix.Rmdir(dir); err != nil {
				return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
			}
			return nil
		},
		waitEmpty: waitEmpty,
		probe:     probe,
	}
}

// procID is this process's PID as /proc numbers it: the first NSpid of
// /proc/self/status; os.Getpid when that cannot be read.
func procID() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Getpid()
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return os.Getpid()
}

// Setup lays out hupd's cgroups as the package comment describes, or
// returns a fallback Manager whose Reason says why it did not: o.Mode is
// off, no cgroup2 mount, hupd's cgroup is not writable (EACCES, EROFS),
// a step of the layout failed (undone then). It never fails otherwise.
func Setup(o Options) (*Manager, []Cleaned) {
	return setup(o, realOps())
}

// Off returns a Manager that uses no cgroups, for reason.
func Off(reason string) *Manager { return &Manager{why: reason, os: realOps()} }

func setup(o Options, ops sysOps) (*Manager, []Cleaned) {
	if o.Mode == ModeOff {
		return &Manager{why: "disabled by the cgroup setting (off)", os: ops}, nil
	}
	m, cleaned, err := layout(o, ops)
	if err != nil {
		return &Manager{why: err.Error(), os: ops}, cleaned
	}
	return m, cleaned
}

// cgroup2Mount is the first of ops.mounts that is a cgroup2 filesystem, or
// "".
func cgroup2Mount(ops sysOps) string {
	for _, d := range ops.mounts {
		if ops.isCgroup2(d) {
			return d
		}
	}
	return ""
}

func layout(o Options, ops sysOps) (*Manager, []Cleaned, error) {
	mount := cgroup2Mount(ops)
	if mount == "" {
		return nil, nil, fmt.Errorf("no cgroup2 filesystem at %s", strings.Join(ops.mounts, " or "))
	}
	data, err := os.ReadFile(ops.selfCG)
	if err != nil {
		return nil, nil, err
	}
	rel, err := parseProcCgroup(data)
	if err != nil {
		return nil, nil, err
	}
	own := filepath.Join(mount, rel)
	procs, err := os.ReadFile(filepath.Join(own, "cgroup.procs"))
	if err != nil {
		return nil, nil, fmt.Errorf("hupd's cgroup %s: %w", own, err)
	}
	m := &Manager{mount: mount, start: own, base: own, os: ops}
	alone := !slices.ContainsFunc(parsePIDs(procs), func(p int) bool { return p != ops.pid })
	var cleaned []Cleaned
	if alone {
		// hupd's cgroup is its own (delegated): what a dead hupd left in
		// it is stale.
		cleaned = m.cleanStale(own, func(name string) bool {
			return name == supervisorLeaf || strings.HasPrefix(name, genPrefix) || strings.HasPrefix(name, programPrefix)
		})
	} else {
		cleaned = m.cleanStale(own, func(name string) bool {
			id, ok := staleName(name, safeName(o.Name))
			// Stale: nobody in its supervisor leaf (hupd or its sentinel)
			// and no process of its PID in this namespace. The PID alone
			// would take a live hupd of another PID namespace for dead;
			// the leaf alone, a hupd about to move into it (a group made
			// in the last setupGrace counts as held too). A group named
			// after hupd's own PID is no other hupd's of this namespace:
			// a dead one's, typically a previous PID 1 of a container
			// (they piled up as hupd-NAME-1.2, .3, …).
			if !ok || ops.held(filepath.Join(own, name)) {
				return false
			}
			return id == ops.id || !ops.alive(id)
		})
		// The name is taken when a hupd of another PID namespace has the
		// same PID (1 in containers that share the host's cgroups): then
		// hupd-NAME-PID.2, .3, …
		name := "hupd-" + safeName(o.Name) + "-" + strconv.Itoa(ops.id)
		m.base = filepath.Join(own, name)
		err := ops.mkdir(m.base)
		for n := 2; errors.Is(err, fs.ErrExist) && n < 10; n++ {
			m.base = filepath.Join(own, name+"."+strconv.Itoa(n))
			err = ops.mkdir(m.base)
		}
		if err != nil {
			return nil, cleaned, fmt.Errorf("cannot create a cgroup in %s: %w", own, err)
		}
		m.owned = true
	}
	leaf := filepath.Join(m.base, supervisorLeaf)
	if err := ops.mkdir(leaf); err != nil && !errors.Is(err, fs.ErrExist) {
		m.undo()
		return nil, cleaned, fmt.Errorf("cannot create a cgroup in %s: %w", m.base, err)
	}
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), "0"); err != nil {
		m.undo()
		return nil, cleaned, fmt.Errorf("cannot move hupd into %s: %w", leaf, err)
	}
	if err := ops.probe(leaf); err != nil {
		m.undo()
		return nil, cleaned, err
	}
	m.enableControllers()
	return m, cleaned, nil
}

// enableControllers enables for base's children what base is offered
// among controllers, each on its own: one refused leaves the others.
func (m *Manager) enableControllers() {
	data, err := os.ReadFile(filepath.Join(m.base, "cgroup.controllers"))
	if err != nil {
		return
	}
	offered := strings.Fields(string(data))
	for _, c := range controllers {
		if slices.Contains(offered, c) {
			writeFile(filepath.Join(m.base, "cgroup.subtree_control"), "+"+c)
		}
	}
}

// disableControllers undoes enableControllers.
func (m *Manager) disableControllers() {
	data, err := os.ReadFile(filepath.Join(m.base, "cgroup.subtree_control"))
	if err != nil {
		return
	}
	for _, c := range strings.Fields(string(data)) {
		if slices.Contains(controllers, c) {
			writeFile(filepath.Join(m.base, "cgroup.subtree_control"), "-"+c)
		}
	}
}

// undo reverts a layout that failed half way.
func (m *Manager) undo() {
	writeFile(filepath.Join(m.start, "cgroup.procs"), "0")
	m.os.rmdir(filepath.Join(m.base, supervisorLeaf))
	if m.owned {
		m.os.rmdir(m.base)
	}
}

// setupGrace is how long a base group counts as held after it was made,
// whoever is in it: long enough for its hupd to move into it.
const setupGrace = 2 * time.Second

// staleWait bounds how long removing a stale or retired group waits for
// its killed processes to be gone.
const staleWait = 10 * time.Second

// cleanStale kills and removes every group under dir whose name is stale.
func (m *Manager) cleanStale(dir string, stale func(name string) bool) []Cleaned {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []Cleaned
	for _, e := range entries {
		if !e.IsDir() || !stale(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		n := countProcs(p)
		if m.removeTree(p) == nil {
			out = append(out, Cleaned{Path: p, Killed: n})
		}
	}
	return out
}

// countProcs counts the processes in the cgroup at dir and below.
func countProcs(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			n += len(parsePIDs(data))
		}
		return nil
	})
	return n
}

// removeTree kills everything in the cgroup at dir and below, waits until
// it is empty and removes it, children first.
func (m *Manager) removeTree(dir string) error {
	writeFile(filepath.Join(dir, "cgroup.kill"), "1")
	if !m.os.waitEmpty(dir, staleWait) {
		return fmt.Errorf("contain: %s still holds processes %s after cgroup.kill", dir, staleWait)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			if err := m.removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return m.os.rmdir(dir)
}

// Enabled reports whether generations get cgroups.
func (m *Manager) Enabled() bool { return m.base != "" }

// Base is the directory that holds the generations' cgroups (gen-N) and
// hupd's own (supervisor); "" in the fallback.
func (m *Manager) Base() string { return m.base }

// Reason says why there are no cgroups; "" when Enabled.
func (m *Manager) Reason() string { return m.why }

// NewGroup makes the group of generation num: in cgroup mode base/gen-N,
// a new cgroup (a leftover of that name, such as the one of a standby
// discarded just before an upgrade's exec, is emptied and removed first:
// a cgroup that has been killed once is never reused, since the kernel
// may kill what is cloned into it afterwards); in the fallback a process
// group. On an error it returns a fallback group too, which the caller
// may use.
func (m *Manager) NewGroup(num int) (*Group, error) { return m.NewInstanceGroup(num, 0) }

// NewInstanceGroup is NewGroup for instance inst of generation num (see
// supervisor.Options.Instances): base/gen-N for instance 0, base/gen-N-I
// for the others, each a cgroup of its own.
func (m *Manager) NewInstanceGroup(num, inst int) (*Group, error) {
	if !m.Enabled() {
		return newFallback(), nil
	}
	// A group of that name may still be being retired (a standby's,
	// discarded when a configuration edit changed the command): Retire
	// removes it by path on its own goroutine, and would kill a new group
	// made under the same name. So a new group never takes a name in use:
	// gen-N, else gen-N.2, gen-N.3, …
	name := genPrefix + strconv.Itoa(num)
	if inst > 0 {
		name += "-" + strconv.Itoa(inst)
	}
	dir := filepath.Join(m.base, name)
	err := m.os.mkdir(dir)
	for n := 2; errors.Is(err, fs.ErrExist) && n < 100; n++ {
		dir = filepath.Join(m.base, name+"."+strconv.Itoa(n))
		err = m.os.mkdir(dir)
	}
	if err != nil {
		return newFallback(), err
	}
	g, err := openGroup(dir, m.rel(dir))
	if err != nil {
		return newFallback(), err
	}
	m.track(g)
	return g, nil
}

// Adopt takes back the group at dir, a generation's cgroup handed over by
// an upgrade ("" or a fallback Manager: a process group, pgid). main is
// the generation's main process.
func (m *Manager) Adopt(dir string, pgid, main int) (*Group, error) {
	g := newFallback()
	if dir != "" && m.Enabled() {
		var err error
		if g, err = openGroup(dir, m.rel(dir)); err != nil {
			g = newFallback()
			g.SetLeader(pgid)
			g.SetMain(main)
			return g, err
		}
		m.track(g)
	}
	g.SetLeader(pgid)
	g.SetMain(main)
	return g, nil
}

// rel is dir as /proc/PID/cgroup shows it: below the mount, from "/".
func (m *Manager) rel(dir string) string {
	r, _ := filepath.Rel(m.mount, dir)
	return filepath.Clean("/" + r)
}

func (m *Manager) track(g *Group) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.groups == nil {
		m.groups = make(map[*Group]struct{})
	}
	m.groups[g] = struct{}{}
}

// Retire ends group g: every process left in it is killed, and its cgroup
// is removed once empty, in the background (Close waits for it). g must
// not be used afterwards.
func (m *Manager) Retire(g *Group) {
	if g == nil {
		return
	}
	g.Kill()
	if g.path == "" {
		g.close()
		return
	}
	m.mu.Lock()
	if _, ok := m.groups[g]; !ok {
		m.mu.Unlock()
		return // retired already
	}
	delete(m.groups, g)
	m.mu.Unlock()
	m.wg.Go(func() {
		if err := m.removeTree(g.path); err != nil {
			m.mu.Lock()
			m.failed = append(m.failed, g.path)
			m.mu.Unlock()
		}
		g.close()
	})
}

// Close, at hupd's exit once every generation has ended, empties and
// removes every generation's cgroup, moves hupd back to the cgroup it
// started in and removes what Setup created. It is best effort: an error
// lists what is left.
func (m *Manager) Close() error {
	if !m.Enabled() {
		return nil
	}
	m.mu.Lock()
	live := make([]*Group, 0, len(m.groups))
	for g := range m.groups {
		live = append(live, g)
	}
	m.mu.Unlock()
	for _, g := range live {
		m.Retire(g)
	}
	m.wg.Wait()
	var left []string
	m.mu.Lock()
	left = append(left, m.failed...)
	m.mu.Unlock()
	// Leftovers a previous image of this hupd lost track of (a standby
	// discarded just before an upgrade's exec).
	entries, _ := os.ReadDir(m.base)
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), genPrefix) || !m.child && strings.HasPrefix(e.Name(), programPrefix)) {
			if p := filepath.Join(m.base, e.Name()); m.removeTree(p) != nil && !slices.Contains(left, p) {
				left = append(left, p)
			}
		}
	}
	if m.child {
		if err := m.os.rmdir(m.base); err != nil {
			left = append(left, m.base)
		}
		if len(left) > 0 {
			return fmt.Errorf("contain: cgroups left behind: %s", strings.Join(left, ", "))
		}
		return nil
	}
	if !m.owned {
		// Base is hupd's own cgroup (delegated): it may hold a process
		// again only once no controller is enabled for its children (no
		// internal processes), or the move back fails with EBUSY.
		m.disableControllers()
	}
	if err := writeFile(filepath.Join(m.start, "cgroup.procs"), "0"); err != nil {
		return fmt.Errorf("contain: moving hupd back to %s: %w", m.start, err)
	}
	// What is left in hupd's leaf belongs to no generation's cgroup: the
	// processes a program without cgroups (cgroup "off" beside programs
	// with them) started, which are forked into hupd's leaf, and left
	// behind (a daemon that escaped its process group). They go where
	// hupd goes, where they would be had hupd set up no cgroups, so that
	// the leaf can be removed.
	moveProcs(filepath.Join(m.base, supervisorLeaf), m.start)
	if err := m.os.rmdir(filepath.Join(m.base, supervisorLeaf)); err != nil {
		left = append(left, filepath.Join(m.base, supervisorLeaf))
	}
	if m.owned {
		if err := m.os.rmdir(m.base); err != nil {
			left = append(left, m.base)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("contain: cgroups left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// moveProcs moves every process of cgroup from to cgroup to, best effort:
// a few passes, for the processes forked while it moves them.
func moveProcs(from, to string) {
	for range 8 {
		b, err := os.ReadFile(filepath.Join(from, "cgroup.procs"))
		if err != nil {
			return
		}
		moved := false
		for _, pid := range parsePIDs(b) {
			if pid > 0 && writeFile(filepath.Join(to, "cgroup.procs"), strconv.Itoa(pid)) == nil {
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

// Child returns the Manager of one program's generations when hupd runs
// several: they go to base/prog-NAME/gen-N (name is a valid program name),
// each program's generations below a cgroup of its own, with the
// controllers base offers enabled for them too. A leftover of that name
// (a dead hupd's) is emptied and removed first. Its Close, which must come
// before m's, retires its groups and removes its directory; m's Close
// removes any program directory left. With m in the fallback, or when
// the directory cannot be made (the error says why), the child is in the
// fallback too (process groups). The single-program layout (base/gen-N)
// is m's own and does not change.
func (m *Manager) Child(name string) (*Manager, error) {
	if !m.Enabled() {
		return &Manager{why: m.why, os: m.os}, nil
	}
	dir := filepath.Join(m.base, programPrefix+name)
	err := m.os.mkdir(dir)
	if errors.Is(err, fs.ErrExist) {
		if err = m.removeTree(dir); err == nil {
			err = m.os.mkdir(dir)
		}
	}
	if err != nil {
		why := fmt.Sprintf("cannot create a cgroup in %s: %v", m.base, err)
		return &Manager{why: why, os: m.os}, fmt.Errorf("contain: %s", why)
	}
	c := &Manager{mount: m.mount, base: dir, start: m.start, owned: true, child: true, os: m.os}
	c.enableControllers()
	return c, nil
}

// State is what crosses an in-place upgrade.
type State struct {
	Mount  string `json:"mount,omitempty"`
	Base   string `json:"base,omitempty"`
	Start  string `json:"start,omitempty"`
	Owned  bool   `json:"owned,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Child: a program's Manager (Child), whose Close removes its
	// prog-NAME and never moves hupd.
	Child bool `json:"child,omitempty"`
}

// State returns m's state for an upgrade.
func (m *Manager) State() State {
	return State{Mount: m.mount, Base: m.base, Start: m.start, Owned: m.owned, Reason: m.why, Child: m.child}
}

// Restore returns the Manager that st describes; it touches nothing.
func Restore(st State) *Manager {
	return &Manager{mount: st.Mount, base: st.Base, start: st.Start, owned: st.Owned, why: st.Reason, child: st.Child, os: realOps()}
}

// writeFile writes s to an existing file (a cgroup interface file).
func writeFile(path, s string) error {
	// Never O_CREATE: on cgroupfs a missing interface file (cgroup.kill
	// before Linux 5.14) then fails with EACCES instead of ENOENT.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// waitEmpty waits, at most d, until cgroup.events in dir says
// "populated 0". The kernel flags a change of the file to poll(2) as
// POLLPRI; a missing file counts as empty (the group is gone).
func waitEmpty(dir string, d time.Duration) bool {
	fd, err := unix.Open(filepath.Join(dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	until := time.Now().Add(d)
	buf := make([]byte, 256)
	for {
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return true
		}
		if v, ok := parseKeyed(buf[:n], "populated"); ok && v == 0 {
			return true
		}
		left := time.Until(until)
		if left <= 0 {
			return false
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return false
		}
	}
}

// probe checks what cgroup mode needs of the kernel, in the cgroup at dir:
// cgroup.kill (Linux 5.14), to end a generation whole, and clone3 with
// CLONE_INTO_CGROUP (Linux 5.7), to start a child straight into its
// cgroup (Go has no other way there, and a container's seccomp profile may
// refuse clone3 with ENOSYS). The probe child is started with an empty
// path: it is forked into the cgroup, fails its exec at once and is reaped
// by ForkExec (hupd's reaper does not run yet).
func probe(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return fmt.Errorf("no cgroup.kill in %s (Linux before 5.14): a generation could not be ended whole", dir)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	_, err = syscall.ForkExec("", nil, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}})
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil // it was forked into the cgroup (and an empty path never runs)
	}
	return fmt.Errorf("cannot start a process in a cgroup (clone3 with CLONE_INTO_CGROUP): %w", err)
}
