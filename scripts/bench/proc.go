package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture that matters here (it is fixed by the kernel ABI, not by CONFIG_HZ).
const clockTicks = 100

// parseStatCPU returns utime+stime from the text of /proc/<pid>/stat, and the parent pid.
// The command name (field 2) is in parentheses and may hold spaces or parentheses itself, so
// the fields are counted from the last ')'.
func parseStatCPU(stat string) (cpu time.Duration, ppid int, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short stat line %q", stat)
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, fmt.Errorf("parse stat line: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, ppid, nil
}

// procCPU is the user plus system CPU that process pid (all its threads) has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of %d: %w", pid, err)
	}
	cpu, _, err := parseStatCPU(string(b))
	return cpu, err
}

// cpuOf sums procCPU over pids.
func cpuOf(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		c, err := procCPU(p)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// parseMachineBusy returns the CPU time all CPUs spent busy (not idle or waiting for I/O),
// from the text of /proc/stat.
func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and iowait (guest time is
	// already inside user).
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// machineBusy is parseMachineBusy of the live /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineBusy(string(b))
}

// parseStatusKB returns a "Name:   123 kB" field of /proc/<pid>/status in bytes.
func parseStatusKB(status, name string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", name, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", name, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in status", name)
}

// statusSum sums a kB field of /proc/<pid>/status over pids, in bytes.
func statusSum(pids []int, field string) (int64, error) {
	var sum int64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return 0, fmt.Errorf("read status of %d: %w", p, err)
		}
		v, err := parseStatusKB(string(b), field)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// peakRSS sums VmHWM, the peak resident set since the last resetPeak, over pids.
func peakRSS(pids []int) (int64, error) { return statusSum(pids, "VmHWM") }

// currentRSS sums VmRSS over pids.
func currentRSS(pids []int) (int64, error) { return statusSum(pids, "VmRSS") }

// resetPeak resets VmHWM of pids to their current RSS (clear_refs 5, Linux 4.0+), so that
// the next peakRSS covers only what happens from now.
func resetPeak(pids []int) error {
	for _, p := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p), []byte("5"), 0); err != nil {
			return fmt.Errorf("reset peak RSS of %d: %w", p, err)
		}
	}
	return nil
}

// childrenOf returns the pids whose parent is ppid (nginx's workers under its master).
func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if _, pp, err := parseStatCPU(string(b)); err == nil && pp == ppid {
			kids = append(kids, pid)
		}
	}
	return kids
}

// waitIdle waits until pids stop using CPU (no tick over 300 ms), so the renders a finished
// run left in flight are counted in that run, not in the next. It gives up after limit.
func waitIdle(pids []int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last, err := cpuOf(pids)
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		now, err := cpuOf(pids)
		if err != nil {
			return err
		}
		if now == last {
			return nil
		}
		last = now
	}
	return fmt.Errorf("processes %v still busy after %s", pids, limit)
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// server is a process the bench started and stops.
type server struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs cmd with its output in logPath. The child gets SIGKILL if the bench dies
// without stopping it, so no server outlives a killed run.
func start(name string, cmd *exec.Cmd, logPath string) (*server, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(s.done)
	}()
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL if the process has not exited within 10 s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the server's log, for error messages.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

// waitHTTP polls url until it answers 200 or the server exits, for at most limit.
func (s *server) waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if s.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", s.name, s.tail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %s within %s:\n%s", s.name, url, limit, s.tail())
}
