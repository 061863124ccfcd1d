// Package version is what a sigwatch binary knows about its own build: set at build time by the
// Makefile and ko (-ldflags -X), else read from the Go build information.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/sigwatch/sigwatch/internal/version.version=v0.3.0 ...".
var (
	version   = ""
	revision  = ""
	buildDate = ""
)

// Info describes a build.
type Info struct {
	// Version is the module version (v0.3.0), or "(devel)".
	Version string `json:"version"`
	// Revision is the VCS commit, "unknown" when not known.
	Revision string `json:"revision"`
	// BuildDate is when the binary was built (RFC 3339), "unknown" when not known.
	BuildDate string `json:"buildDate"`
	// GoVersion is the Go toolchain that built it.
	GoVersion string `json:"goVersion"`
}

// Get returns the build's information: what the linker set, else the Go build information (module
// version, vcs.revision and vcs.time, which go build records in a git checkout).
func Get() Info {
	info := Info{Version: version, Revision: revision, BuildDate: buildDate, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fromBuildInfo(&info, bi)
	}
	for _, f := range []*string{&info.Version, &info.Revision, &info.BuildDate} {
		if *f == "" {
			*f = "unknown"
		}
	}
	if info.Version == "unknown" {
		info.Version = "(devel)"
	}
	return info
}

func fromBuildInfo(info *Info, bi *debug.BuildInfo) {
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && info.Revision == "":
			info.Revision = s.Value
		case s.Key == "vcs.time" && info.BuildDate == "":
			info.BuildDate = s.Value
		}
	}
}
