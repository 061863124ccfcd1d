package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	cases := []struct {
		name string
		set  Info
		bi   debug.BuildInfo
		want Info
	}{
		{"linker wins", Info{Version: "v1.2.3", Revision: "abc", BuildDate: "2026-01-01T00:00:00Z"},
			debug.BuildInfo{Main: debug.Module{Version: "v9"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "def"}}},
			Info{Version: "v1.2.3", Revision: "abc", BuildDate: "2026-01-01T00:00:00Z"}},
		{"build info fills in", Info{},
			debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "def"}, {Key: "vcs.time", Value: "2026-02-02T00:00:00Z"}}},
			Info{Version: "v0.4.0", Revision: "def", BuildDate: "2026-02-02T00:00:00Z"}},
		{"devel is not a version", Info{}, debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Info{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.set
			fromBuildInfo(&got, &c.bi)
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestGetNeverEmpty(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Revision == "" || i.BuildDate == "" || i.GoVersion == "" {
		t.Fatalf("empty field in %+v", i)
	}
}
