package contain

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode says whether hupd may use cgroups.
type Mode string

// Modes.
const (
	// ModeAuto uses cgroup v2 where hupd may, and falls back to process
	// groups (with one info line saying why) where it may not.
	ModeAuto Mode = "auto"
	// ModeOff never uses cgroups: process groups only.
	ModeOff Mode = "off"
)

// Modes lists every mode, for messages.
var Modes = []Mode{ModeAuto, ModeOff}

// ErrNoUnified is wrapped by errors about a /proc/PID/cgroup without a
// cgroup v2 ("0::") line.
var ErrNoUnified = errors.New("contain: no cgroup v2 entry")

// parseProcCgroup returns the cgroup v2 path of a /proc/PID/cgroup file:
// the path of its "0::" line, relative to the reader's cgroup namespace.
// A path that leaves the namespace ("/../x") is an error.
func parseProcCgroup(data []byte) (string, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		p, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		if !strings.HasPrefix(p, "/") || p == "/.." || strings.HasPrefix(p, "/../") {
			return "", fmt.Errorf("contain: cgroup %q is outside this cgroup namespace", p)
		}
		return p, nil
	}
	return "", ErrNoUnified
}

// parsePIDs reads a cgroup.procs file: one PID per line.
func parsePIDs(data []byte) []int {
	var pids []int
	for f := range bytes.FieldsSeq(data) {
		if n, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// parseKeyed reads a flat keyed file (cpu.stat, cgroup.events) and returns
// key's value.
func parseKeyed(data []byte, key string) (uint64, bool) {
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// procStat is what accounting and membership read from /proc/PID/stat.
type procStat struct {
	pid, ppid, pgrp int
	zombie          bool
	// Clock ticks: user and system time, and those of waited-for children.
	utime, stime, cutime, cstime uint64
	rssPages                     uint64
}

// parseStat parses /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses: fields are counted from its last ')'.
func parseStat(data []byte) (procStat, error) {
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("contain: malformed /proc/PID/stat")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return procStat{}, errors.New("contain: malformed /proc/PID/stat")
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, errors.New("contain: short /proc/PID/stat")
	}
	num := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	return procStat{pid: pid, ppid: int(num(4)), pgrp: int(num(5)), zombie: f[0] == "Z",
		utime: num(14), stime: num(15), cutime: num(16), cstime: num(17), rssPages: num(24)}, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// staleName reports whether name is a base group "hupd-NAME-PID" (or
// "hupd-NAME-PID.N") of the given NAME, and its PID.
func staleName(name, group string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "hupd-"+group+"-")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, '.'); i > 0 {
		if _, err := strconv.Atoi(rest[i+1:]); err != nil {
			return 0, false
		}
		rest = rest[:i]
	}
	pid, err := strconv.Atoi(rest)
	return pid, err == nil && pid > 0
}

// safeName makes a service name usable in a cgroup's name: anything but
// letters, digits, '.', '_' and '-' becomes '_'.
func safeName(name string) string {
	if name == "" {
		return "hupd"
	}
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
