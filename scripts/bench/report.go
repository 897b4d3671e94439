package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	Scenario string
	Conns    int
	RPS      float64       // 0: not a throughput figure
	P50, P99 time.Duration // 0: not measured
	CPU      time.Duration // server CPU per request; 0: not measured
	RSS      int64         // peak RSS of the server over the run, bytes; 0: not measured
	VsNginx  float64       // RPS over the nginx reference of the same run; filled by finish
	VsFloor  float64       // CPU over the decode floor; cold renders only
	Target   string
	Holds    string // "yes", "**no**: why", or "" when the row has no target
	Notes    []string
	ref      bool // a row of the nginx reference
}

// verdict turns the failed parts of a target into the holds column.
func verdict(failed []string) string {
	if len(failed) == 0 {
		return "yes"
	}
	return "**no**: " + strings.Join(failed, "; ")
}

// fmtDur prints a duration with three significant figures in µs, ms or s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + " µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + " ms"
	}
	return sig3(float64(d)/1e9) + " s"
}

// sig3 prints v with three significant figures (but never in exponent form).
func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtMiB(b int64) string {
	if b <= 0 {
		return "–"
	}
	return sig3(float64(b)/(1<<20)) + " MiB"
}

func fmtRatio(r float64) string {
	switch {
	case r <= 0 || math.IsNaN(r) || math.IsInf(r, 0):
		return "–"
	case r < 0.01:
		return "<0.01x"
	}
	return sig3(r) + "x"
}

func fmtRPS(r float64) string {
	if r <= 0 {
		return "–"
	}
	return sig3(r)
}

// markdown renders rows as one Markdown table.
func markdown(rows []row) string {
	var b strings.Builder
	b.WriteString("| scenario | conns | req/s | p50 | p99 | server CPU/req | peak RSS | vs nginx static | vs decode floor | target | holds | notes |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|\n")
	for _, r := range rows {
		conns := "–"
		if r.Conns > 0 {
			conns = fmt.Sprint(r.Conns)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, conns, fmtRPS(r.RPS), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.CPU),
			fmtMiB(r.RSS), fmtRatio(r.VsNginx), fmtRatio(r.VsFloor), r.Target, r.Holds,
			strings.Join(r.Notes, "; "))
	}
	return b.String()
}

// command runs a program for the machine description; its error text stands in for output.
func command(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil && s == "" {
		return "(" + err.Error() + ")"
	}
	return s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// commit names the tierpix source the binary at path was built from: the commit Go stamped
// into it, and whether the tree had changes on top of it; git's HEAD where the binary has no
// stamp. HEAD is not enough: commits made while a run goes on would be named.
func commit(path string) string {
	if info, err := buildinfo.ReadFile(path); err == nil {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			rev = rev[:min(7, len(rev))]
			if modified == "true" {
				rev += " with uncommitted changes"
			}
			return rev
		}
	}
	c := command("git", "rev-parse", "--short", "HEAD")
	if strings.HasPrefix(c, "(") {
		return "unknown"
	}
	if command("git", "status", "--porcelain", "--untracked-files=no") != "" {
		c += " with uncommitted changes"
	}
	return c
}

// machine describes where the run happened, for BENCHMARKS.md.
func machine(tierpix, nginx, pgVersion string) string {
	lscpu := command("lscpu")
	lines := strings.Split(lscpu, "\n")
	lscpu = strings.Join(lines[:min(10, len(lines))], "\n")
	var b strings.Builder
	fmt.Fprintf(&b, "- CPUs (`nproc`): %s\n", command("nproc"))
	fmt.Fprintf(&b, "- kernel: %s\n", command("uname", "-srm"))
	fmt.Fprintf(&b, "- tierpix: %s, built with %s\n", commit(tierpix), runtime.Version())
	fmt.Fprintf(&b, "- libvips: %s; nginx: %s; wrk: %s; PostgreSQL: %s\n",
		command("vips", "--version"), strings.TrimPrefix(command(nginx, "-v"), "nginx version: "),
		strings.Fields(command("wrk", "-v") + " ?")[1], pgVersion)
	fmt.Fprintf(&b, "\n`lscpu | head`:\n\n```\n%s\n```\n", lscpu)
	return b.String()
}
