package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set with -ldflags "-X main.version=…"; otherwise it comes
// from the build info.
var version = ""

// versionCommand is "hupd version": one line, "hupd VERSION REVISION
// TIME" (the revision and time when the build recorded them, the revision
// with "+modified" for a build from uncommitted changes), or --json.
func versionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and the revision hupd was built from",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print every detail as JSON"}},
		Action: func(c *cli.Context) error {
			bi, _ := debug.ReadBuildInfo()
			return printVersion(stdout, bi, c.Bool("json"))
		},
	}
}

// printVersion writes what hupd version prints for the build info bi: its
// line, or with asJSON its versionInfo as indented JSON.
func printVersion(w io.Writer, bi *debug.BuildInfo, asJSON bool) error {
	v := newVersionInfo(bi)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(w, v.line())
	return err
}

// versionInfo is what "hupd version --json" prints.
type versionInfo struct {
	// Version is buildVersion's: -X main.version, else the module's.
	Version string `json:"version"`
	// Module is the main module's version in the build info: "(devel)"
	// for a build from a checkout, "v1.2.3" for go install …@v1.2.3.
	Module string `json:"module_version"`
	// Revision, Time and Modified are the VCS state of the checkout the
	// build came from (vcs.revision, vcs.time, vcs.modified); empty when
	// the build recorded none (-buildvcs=false, no repository, a git
	// worktree, go install …@version).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	// Platform is GOOS/GOARCH: the build info's (the target the binary
	// was built for), else the running binary's.
	Platform string `json:"platform"`
}

func newVersionInfo(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: versionOf(bi), Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return v
	}
	v.Module, v.Go = bi.Main.Version, bi.GoVersion
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		v.Platform = goos + "/" + goarch
	}
	return v
}

// line is the one-line form: "hupd dev 9c6430a1b2c3+modified
// 2026-12-07T02:50:00Z", or "hupd dev" without VCS information.
func (v versionInfo) line() string {
	s := "hupd " + v.Version
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v.Modified {
			rev += "+modified"
		}
		s += " " + rev
		if v.Time != "" {
			s += " " + v.Time
		}
	}
	return s
}

func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// versionOf is -X main.version when set, else the main module's version
// in bi, else "dev" (a build from a checkout says "(devel)").
func versionOf(bi *debug.BuildInfo) string {
	if version != "" {
		return version
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
