package run

import "github.com/hupd/hupd/contain"

// Cgroups with several programs, some with cgroup = "off": hupd lays out
// its cgroups (contain.Setup: base/supervisor for hupd, base/prog-NAME for
// each program with cgroups) when any program has them. A program without
// them is contained by process groups as a single program with cgroups off
// is, and its processes are forked into hupd's own leaf (base/supervisor):
// never into base itself, and what they leave behind is moved out with
// hupd at exit (contain.Manager.Close), so that it keeps no cgroup of
// hupd's from going. The sentinel ends them by process group after a kill
// -9 of hupd, the others by cgroup. An edit of hupd.toml that adds a
// program with cgroups to a hupd that started with every program off lays
// the cgroups out then, as a start with that program would have (hupd
// moves into its leaf; the running programs stay where they are). A
// running program's own setting waits for a restart of hupd (a warning
// says so); a program still waiting for its after programs (it has no
// generation yet) takes a new setting at once, with a new supervisor and
// cgroup; a program that ended and is replaced by an edit keeps its
// cgroup only if its setting is the same. An upgrade hands the layout
// over: the new image keeps it (hupd in its leaf) whatever hupd.toml on
// disk says, and lays it out only if none was.

// cgroups is hupd's cgroup layout for a program with cgroups, laid out
// first if hupd started with every program off.
func (f *fleet) cgroups() *contain.Manager {
	if f.cgMode == contain.ModeOff {
		f.cgMode = contain.ModeAuto
		f.cg = setupContainment(contain.ModeAuto, f.ident.Name, f.log)
	}
	return f.cg
}

// sameContainment reports whether a program with cgroup setting a may
// keep the cgroup of one with b.
func sameContainment(a, b contain.Mode) bool {
	return (a == contain.ModeOff) == (b == contain.ModeOff)
}
