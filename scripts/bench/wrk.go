package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// walkLua makes every request go to a link of its own: thread t of T takes the links at
// t, t+T, t+2T... of the file given after "--", each once, pre-formatted in init so request()
// is a table lookup (wrk's own advice for fast servers). In "cycle" mode a thread starts over
// when it reaches the end of its share (disk-cache hits of many distinct links); in "once"
// mode it stops instead, so no link is ever asked for twice (first renders). done() writes
// how many requests each thread sent to $BENCH_WALK_OUT, from which the bench knows exactly
// which links were asked for.
const walkLua = `
local threads = {}
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  mode = args[3]
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == tid then
      reqs[#reqs + 1] = wrk.format("GET", line)
    end
    i = i + 1
  end
  sent = 0
  exhausted = 0
end

function request()
  sent = sent + 1
  if sent > #reqs then
    if mode == "cycle" then
      return reqs[(sent - 1) % #reqs + 1]
    end
    exhausted = 1
    sent = #reqs
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  return reqs[sent]
end

function done(summary, latency, requests)
  local out = os.getenv("BENCH_WALK_OUT")
  if not out then return end
  local f = io.open(out, "w")
  for _, t in ipairs(threads) do
    f:write(string.format("%d %d %d\n", t:get("tid"), t:get("sent"), t:get("exhausted")))
  end
  f:close()
end
`

// wrkResult is what one wrk run reported.
type wrkResult struct {
	Requests  int // completed
	Duration  time.Duration
	ReqPerSec float64
	P50, P99  time.Duration
	Non2xx    int
	SockErrs  string // "" when none
	Raw       string
	CPU       time.Duration // wrk's own user+system CPU
	Wall      time.Duration // wrk's run time, start-up included
}

// wrkSpec is one bounded wrk run.
type wrkSpec struct {
	URL      string
	Conns    int
	Duration time.Duration
	Headers  []string
	// With a walk: the links file, the mode ("once" or "cycle") and where done() writes the
	// per-thread counts.
	Links, Mode, WalkOut string
}

// wrkThreads is wrk's -t: two threads, one per core, or fewer for fewer connections.
func wrkThreads(conns int) int { return min(2, conns) }

// runWrk runs wrk with --latency and a generous --timeout (a render queue at 16 connections
// can hold a request for seconds; wrk's default of 2 s would drop those from the latency
// figures and count them as errors). It is bounded by -d and by a context deadline.
func runWrk(ctx context.Context, dir string, spec wrkSpec) (wrkResult, error) {
	t := wrkThreads(spec.Conns)
	args := []string{
		"-t", strconv.Itoa(t), "-c", strconv.Itoa(spec.Conns),
		"-d", fmt.Sprintf("%ds", int(spec.Duration.Seconds())),
		"--latency", "--timeout", "30s",
	}
	for _, h := range spec.Headers {
		args = append(args, "-H", h)
	}
	env := os.Environ()
	if spec.Links != "" {
		script := filepath.Join(dir, "walk.lua")
		if err := os.WriteFile(script, []byte(walkLua), 0o644); err != nil {
			return wrkResult{}, fmt.Errorf("write walk.lua: %w", err)
		}
		args = append(args, "-s", script, spec.URL, "--", spec.Links, strconv.Itoa(t), spec.Mode)
		env = append(env, "BENCH_WALK_OUT="+spec.WalkOut)
	} else {
		args = append(args, spec.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration+45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", args...)
	cmd.Env = env
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	wall := time.Since(begin)
	r, err := parseWrk(string(out))
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r.Wall = wall
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErrs = regexp.MustCompile(`(?m)^\s*Socket errors:\s+(.*)$`)
	rePercent  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
)

// parseWrkDuration reads wrk's "1.23ms"-style figures.
func parseWrkDuration(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	scale := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
	if scale == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	return time.Duration(v * scale), nil
}

// parseWrk reads wrk --latency output.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Raw: out}
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no request count in wrk output")
	}
	r.Requests, _ = strconv.Atoi(m[1])
	d, err := parseWrkDuration(m[2], m[3])
	if err != nil {
		return r, err
	}
	r.Duration = d
	m = reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output")
	}
	r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.Atoi(m[1])
	}
	if m = reSockErrs.FindStringSubmatch(out); m != nil {
		r.SockErrs = strings.TrimSpace(m[1])
	}
	for _, m := range rePercent.FindAllStringSubmatch(out, -1) {
		d, err := parseWrkDuration(m[2], m[3])
		if err != nil {
			return r, err
		}
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.Requests > 0 && (r.P50 == 0 || r.P99 == 0) {
		return r, fmt.Errorf("no latency distribution in wrk output (is --latency set?)")
	}
	return r, nil
}

// walkCounts reads what walkLua's done() wrote: per thread, the requests sent and whether it
// ran out of links.
func walkCounts(path string) (sent map[int]int, exhausted bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("read walk counts: %w", err)
	}
	defer f.Close()
	sent = map[int]int{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		var tid, n, ex int
		if _, err := fmt.Sscan(s.Text(), &tid, &n, &ex); err != nil {
			return nil, false, fmt.Errorf("parse walk counts %q: %w", s.Text(), err)
		}
		sent[tid] = n
		exhausted = exhausted || ex != 0
	}
	return sent, exhausted, s.Err()
}

// walked returns the items of list that a walk with these per-thread counts asked for: thread
// t of threads took list[t], list[t+threads], ... in order, sent[t] of them.
func walked[T any](list []T, threads int, sent map[int]int) []T {
	var out []T
	for t := range threads {
		k := 0
		for i := t; i < len(list) && k < sent[t]; i += threads {
			out = append(out, list[i])
			k++
		}
	}
	return out
}
