package contain

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stats is what a group uses, sampled when asked.
type Stats struct {
	// MemoryBytes is the memory charged to the group now: memory.current
	// with the memory controller, else the members' resident set sizes
	// summed (pages shared between them are counted once per member).
	MemoryBytes uint64
	// MemoryPeakBytes is memory.peak with the memory controller (the
	// kernel's high-water mark); otherwise the highest MemoryBytes any
	// Stats call has seen, so it misses what happened between samples.
	MemoryPeakBytes uint64
	// CPU is user plus system time: cpu.stat's usage_usec in cgroup mode
	// (every process that ever ran in the group); in the fallback the
	// members' own and that of the children they have waited for (a
	// process reaped by hupd after its parent exited is not counted).
	CPU time.Duration
	// Processes counts the live processes: cgroup.procs, or the members.
	Processes int
	// Sampled: the peak is the highest sample, not the kernel's.
	Sampled bool
}

// Stats samples what the group uses; see Stats' fields. It reads the
// cgroup's files, or scans /proc in the fallback.
func (g *Group) Stats() (Stats, error) {
	var st Stats
	if g == nil {
		return st, nil
	}
	if g.path != "" {
		data, err := os.ReadFile(filepath.Join(g.path, "cgroup.procs"))
		if err != nil {
			return st, err
		}
		pids := parsePIDs(data)
		st.Processes = len(pids)
		if data, err := os.ReadFile(filepath.Join(g.path, "cpu.stat")); err == nil {
			if us, ok := parseKeyed(data, "usage_usec"); ok {
				st.CPU = time.Duration(us) * time.Microsecond
			}
		}
		if cur, ok := readUint(filepath.Join(g.path, "memory.current")); ok {
			st.MemoryBytes = cur
			if peak, ok := readUint(filepath.Join(g.path, "memory.peak")); ok {
				st.MemoryPeakBytes = peak
				return st, nil
			}
		} else {
			page := uint64(os.Getpagesize())
			for _, pid := range pids {
				if ps, err := readStat(pid); err == nil {
					st.MemoryBytes += ps.rssPages * page
				}
			}
		}
		st.MemoryPeakBytes, st.Sampled = g.samplePeak(st.MemoryBytes), true
		return st, nil
	}
	procs, err := scanProcs()
	if err != nil {
		return st, err
	}
	pgid, main := int(g.pgid.Load()), int(g.main.Load())
	if !g.mainAlive() {
		main = 0
	}
	page := uint64(os.Getpagesize())
	var ticks uint64
	for _, p := range procs {
		if !(pgid > 1 && p.pgrp == pgid || main > 1 && descends(procs, p.pid, main)) {
			continue
		}
		ticks += p.cutime + p.cstime
		if ns, ok := onCPU(p.pid); ok {
			st.CPU += ns
		} else {
			ticks += p.utime + p.stime
		}
		if !p.zombie {
			st.Processes++
			st.MemoryBytes += p.rssPages * page
		}
	}
	st.CPU += time.Duration(ticks) * time.Second / clockTicks
	st.MemoryPeakBytes, st.Sampled = g.samplePeak(st.MemoryBytes), true
	return st, nil
}

// onCPU is the time pid has run on a CPU, in nanoseconds: the first field
// of /proc/PID/schedstat, finer than /proc/PID/stat's clock ticks (a
// process that has run for less than a tick shows none there).
func onCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return 0, false
	}
	f, _, _ := strings.Cut(string(data), " ")
	ns, err := strconv.ParseUint(f, 10, 64)
	return time.Duration(ns), err == nil
}

func (g *Group) samplePeak(v uint64) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.peak = max(g.peak, v)
	return g.peak
}

func readUint(path string) (uint64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(string(trimSpace(data)), 10, 64)
	return n, err == nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if os.IsNotExist(err) {
			return procStat{}, ErrGone
		}
		return procStat{}, err
	}
	return parseStat(data)
}

// scanProcs reads /proc/PID/stat of every process, keyed by PID.
func scanProcs() (map[int]procStat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procStat, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			procs[pid] = st
		}
	}
	return procs, nil
}

// descends reports whether pid's chain of parents in procs reaches
// ancestor (pid itself included).
func descends(procs map[int]procStat, pid, ancestor int) bool {
	for seen := 0; pid > 1 && seen < len(procs)+1; seen++ {
		if pid == ancestor {
			return true
		}
		p, ok := procs[pid]
		if !ok {
			return false
		}
		pid = p.ppid
	}
	return false
}

// Proc is a process as /proc/PID/stat shows it.
type Proc struct {
	PID, PPID, PGID int
	// Zombie: it has exited (its thread group leader has: other threads
	// may still run, and its children are reparented once they end).
	Zombie bool
}

// Stat reads process pid; an error wrapping ErrGone when it no longer
// exists or is a zombie (exited: its links no longer say where it was).
func Stat(pid int) (Proc, error) {
	st, err := readStat(pid)
	if err == nil && st.zombie {
		err = ErrGone
	}
	if err != nil {
		return Proc{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Proc{PID: st.pid, PPID: st.ppid, PGID: st.pgrp}, nil
}

// Children lists the children of process parent, zombies included, in
// PID order: for a subreaper, the orphans it was handed as well as the
// processes it started.
func Children(parent int) ([]Proc, error) {
	procs, err := scanProcs()
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, p := range procs {
		if p.ppid == parent {
			out = append(out, Proc{PID: p.pid, PPID: p.ppid, PGID: p.pgrp, Zombie: p.zombie})
		}
	}
	slices.SortFunc(out, func(a, b Proc) int { return a.PID - b.PID })
	return out, nil
}
