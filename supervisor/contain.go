package supervisor

import (
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

// Containment modes, as Status reports them.
const (
	ContainCgroup       = "cgroup"
	ContainProcessGroup = "process-group"
)

// Contain sets the manager that gives each generation its group of
// processes (package contain); call it before Resume and Run. Without it
// generations are process groups (contain.Off).
func (s *Supervisor) Contain(m *contain.Manager) {
	if m != nil {
		s.cg = m
	}
}

// CgroupBase is the cgroup directory that holds one gen-N cgroup per
// running generation (and hupd's own, supervisor); "" when generations are
// not in cgroups. Any goroutine.
func (s *Supervisor) CgroupBase() string { return s.cg.Base() }

func (s *Supervisor) containment() *Containment {
	if s.cg.Enabled() {
		return &Containment{Mode: ContainCgroup, Cgroup: s.cg.Base()}
	}
	return &Containment{Mode: ContainProcessGroup, Reason: s.cg.Reason()}
}

// newGroup makes generation num's group. A cgroup that cannot be made
// leaves the generation in its process group only, with a warning: hupd
// goes on serving.
func (s *Supervisor) newGroup(num int) *contain.Group { return s.newInstanceGroup(num, 0) }

// newInstanceGroup is newGroup for instance inst of generation num.
func (s *Supervisor) newInstanceGroup(num, inst int) *contain.Group {
	grp, err := s.cg.NewInstanceGroup(num, inst)
	if err != nil {
		s.log.Warn(logev.NoCgroup, KeyGen, num, KeyError, err)
	}
	return grp
}

// startIn makes cmd start its process in grp's cgroup, if it has one
// (clone3 with CLONE_INTO_CGROUP: it never runs outside it).
func startIn(cmd *socketact.Command, grp *contain.Group) {
	if fd := grp.FD(); fd >= 0 {
		cmd.Sys.UseCgroupFD, cmd.Sys.CgroupFD = true, fd
	}
}

// sample adds to st what each generation uses, from groups (parallel to
// st.Generations). It reads files, so it runs outside Run's goroutine.
func sample(st *Status, groups []*contain.Group, inst [][]*contain.Group) {
	for i := range st.Generations {
		if i < len(inst) && inst[i] != nil {
			sampleInstances(&st.Generations[i], inst[i])
			continue
		}
		if i >= len(groups) || groups[i] == nil {
			continue
		}
		u, err := groups[i].Stats()
		if err != nil {
			continue // it has just ended
		}
		g := &st.Generations[i]
		g.Processes, g.MemoryBytes, g.MemoryPeakBytes = u.Processes, u.MemoryBytes, u.MemoryPeakBytes
		g.CPUSeconds = u.CPU.Seconds()
		g.Cgroup = groups[i].Path()
	}
}

// sampleInstances fills in what each instance of g uses, from its group
// (groups by g.Instances), and g's totals.
func sampleInstances(g *GenerationStatus, groups []*contain.Group) {
	for j := range g.Instances {
		if j >= len(groups) || groups[j] == nil {
			continue
		}
		u, err := groups[j].Stats()
		if err != nil {
			continue
		}
		in := &g.Instances[j]
		in.Processes, in.MemoryBytes, in.MemoryPeakBytes = u.Processes, u.MemoryBytes, u.MemoryPeakBytes
		in.CPUSeconds = u.CPU.Seconds()
		in.Cgroup = groups[j].Path()
		g.Processes += in.Processes
		g.MemoryBytes += in.MemoryBytes
		g.MemoryPeakBytes += in.MemoryPeakBytes
		g.CPUSeconds += in.CPUSeconds
	}
	g.Cgroup = "" // each instance has its own (Instances[i].Cgroup)
}
