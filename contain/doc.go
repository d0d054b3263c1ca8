// Package contain keeps each generation's processes together, so that hupd
// can tell who belongs to a generation, stop all of them as a unit and
// account for what they use.
//
// Model. Where hupd may use cgroup v2 (a writable cgroup2 mount: the
// unified hierarchy at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
// hybrid host; a subtree delegated by systemd's Delegate=yes; a container's
// own cgroup namespace mounted read-write), a Manager lays out:
//
//	base/supervisor   hupd itself (moved there at Setup), and the
//	                  processes of the programs that run without
//	                  cgroups beside programs with them (several
//	                  programs, some with cgroup off: a Manager from
//	                  Off for those, whose processes hupd forks into
//	                  its own leaf)
//	base/gen-N        every process of generation N (of its instance 0)
//	base/gen-N-I      every process of instance I of generation N
//	base/prog-NAME/gen-N  the same for program NAME, when hupd runs
//	                  several programs (Manager.Child): each program's
//	                  generations below a cgroup of its own, with the
//	                  controllers base offers enabled for them too
//
// base is hupd's own cgroup when hupd is alone in it (a delegated service,
// a container's cgroup), otherwise a new child hupd-NAME-PID of it (a shell,
// a test, the root cgroup of a host; PID as /proc numbers it, so that hupds
// that are PID 1 of PID namespaces of their own do not collide). hupd lives in a leaf of its own
// because cgroup v2 puts no process in a cgroup whose controllers are
// delegated to children (the "no internal process" rule). The controllers
// that base is offered among memory, pids and cpu are enabled for its
// children, best effort. A generation's processes are started straight into
// its cgroup by clone3(CLONE_INTO_CGROUP) (Group.FD), so no fork of theirs
// can race a later move. Stopping a Group writes cgroup.kill: the kernel
// kills every process in it and in its descendants, including those that
// called setsid or double-forked, and no fork escapes it.
//
// Without cgroups (Mode off, or nothing writable: Setup says why) a Group
// is a process group plus the processes the subreaper can still place under
// the generation's main process by their parent links (/proc/PID/stat).
// Exactly this escapes then: a process that left the generation's process
// group (setsid, setpgid) and whose chain of parents no longer leads to the
// main process when the group is stopped, because a parent on that chain
// exited (a double-forked daemon, reparented to hupd, the subreaper) or
// because the main process itself exited first.
//
// Invariants: a Manager in cgroup mode never puts a process in base itself;
// a cgroup that has been killed is never reused (gen-N is made anew);
// every gen-N it made is emptied (cgroup.kill, then cgroup.events says
// "populated 0") before it is removed; Close, at hupd's normal exit, moves
// hupd back to the cgroup it started in, with any process left in its
// leaf (what a program without cgroups left behind, which would be there
// had hupd set up no cgroups), and removes what Setup created. A
// later Setup with the same name removes the hupd-NAME-PID groups whose PID
// is dead, killing what is left in them (Setup.Cleaned reports them). The
// paths, and whether a Manager is a program's (Child), cross an in-place
// upgrade in State; Restore takes them back without touching the
// filesystem. A Child's Close removes its prog-NAME (it
// never moves hupd); base's Close removes any prog-NAME left.
//
// Accounting is sampled when asked (Group.Stats), never on a timer: from
// the cgroup's files (memory.current and memory.peak when the memory
// controller is enabled, cpu.stat's usage_usec, cgroup.procs), otherwise
// summed over the members from /proc (resident set size; a peak that is
// the highest sum seen by a sample; user and system time of the members
// and of the children they have waited for).
package contain
