package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// descriptorReserve is what the connection caps leave of the file limit besides the origin's
// open-file cache (a quarter of the limit): the database pool, originals and temp files being
// read or written, render-cache files, the listener, epoll and the log.
const descriptorReserve = 64

// connLimits are the connection caps of the listener.
type connLimits struct {
	Total  int            // open client connections at most
	PerIP  int            // open connections from one client address at most
	Exempt []netip.Prefix // addresses not held to PerIP (the nginx front)
}

// fileLimit returns the process's soft limit on open files (Go raises it to the hard limit
// at start), or 0 when it cannot be read.
func fileLimit() uint64 {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return lim.Cur
}

// maxConnsFor returns the most connections a file limit of nofile affords: what is left
// after the open-file cache's quarter and the reserve, halved, since a connection may hold a
// file of its own (an upload's temp file, an original being read).
func maxConnsFor(nofile uint64) int {
	if nofile == 0 || nofile > 1<<20 {
		nofile = 1 << 20
	}
	n := (int(nofile) - int(nofile)/4 - descriptorReserve) / 2
	return max(n, 16)
}

// resolveConnLimits turns the configured caps (0: derived from the file limit) into the
// caps the listener enforces. A cap over what the file limit affords is lowered to it, with
// a warning: past it, the process would run out of descriptors before the cap is reached.
func resolveConnLimits(cfg config, nofile uint64, logger *slog.Logger) connLimits {
	most := maxConnsFor(nofile)
	l := connLimits{Total: cfg.MaxConns, PerIP: cfg.MaxConnsPerIP, Exempt: cfg.TrustedProxies}
	if l.Total == 0 {
		l.Total = most
	} else if l.Total > most {
		logger.Warn("TIERPIX_MAX_CONNS is more than the file limit affords; lowered",
			"configured", l.Total, "used", most, "file_limit", nofile)
		l.Total = most
	}
	if l.PerIP == 0 {
		l.PerIP = max(l.Total/4, 1)
	}
	l.PerIP = min(l.PerIP, l.Total)
	return l
}

// limitListener admits connections under the caps, answers the others with a short 503
// and closes them, and never fails on a transient accept error (out of descriptors, an
// aborted handshake): it backs off and accepts again, so the server outlives an exhaustion
// and serves once connections close. Only a closed listener ends Accept.
//
// It hands fasthttp the connection as accepted, unwrapped: fasthttp writes a response's
// header and body with one writev only to a *net.TCPConn (a wrapped one costs a syscall more
// per response, a third more CPU on a memory hit). A connection gives its place back through
// connState, the server's ConnState hook, when fasthttp has closed it.
type limitListener struct {
	net.Listener
	limits connLimits
	logger *slog.Logger

	open  atomic.Int64
	mu    sync.Mutex
	perIP map[netip.Addr]int
	conns sync.Map // net.Conn -> netip.Addr counted per address (zero: not counted)

	acceptLog, refuseLog rateLog
}

func newLimitListener(ln net.Listener, limits connLimits, logger *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, limits: limits, logger: logger, perIP: make(map[netip.Addr]int),
		acceptLog: rateLog{every: 10 * time.Second}, refuseLog: rateLog{every: 10 * time.Second}}
}

// Accept backoff bounds: the first retry after acceptBackoffMin, doubling to acceptBackoffMax.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (l *limitListener) Accept() (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// Anything else (EMFILE, ENFILE, ENOBUFS, ECONNABORTED, ...) passes: wait and
			// accept again. The connections in the backlog wait for their turn.
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			if n := l.acceptLog.note(); n > 0 {
				l.logger.Error("accept failed; retrying", "err", err, "times", n, "backoff", backoff)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if lc, ok := l.admit(c); ok {
			return lc, nil
		}
	}
}

// admit counts c against the caps, or answers it 503 and closes it.
func (l *limitListener) admit(c net.Conn) (net.Conn, bool) {
	ip := remoteAddr(c)
	if l.open.Add(1) > int64(l.limits.Total) {
		l.open.Add(-1)
		l.refuse(c, "the server is at its connection limit")
		return nil, false
	}
	counted := ip.IsValid() && !inPrefixes(ip, l.limits.Exempt)
	if counted {
		l.mu.Lock()
		if l.perIP[ip] >= l.limits.PerIP {
			l.mu.Unlock()
			l.open.Add(-1)
			l.refuse(c, "too many connections from this address")
			return nil, false
		}
		l.perIP[ip]++
		l.mu.Unlock()
	}
	if !counted {
		ip = netip.Addr{}
	}
	l.conns.Store(c, ip)
	return c, true
}

// connState is the server's ConnState hook: a connection closed or hijacked gives its place
// back.
func (l *limitListener) connState(c net.Conn, st fasthttp.ConnState) {
	if st != fasthttp.StateClosed && st != fasthttp.StateHijacked {
		return
	}
	if ip, ok := l.conns.LoadAndDelete(c); ok {
		l.release(ip.(netip.Addr))
	}
}

func (l *limitListener) release(ip netip.Addr) {
	l.open.Add(-1)
	if !ip.IsValid() {
		return
	}
	l.mu.Lock()
	if l.perIP[ip] <= 1 {
		delete(l.perIP, ip)
	} else {
		l.perIP[ip]--
	}
	l.mu.Unlock()
}

// refuseWriteTimeout bounds the write of a refusal, so a client that does not read cannot
// hold up the accept loop.
const refuseWriteTimeout = 100 * time.Millisecond

// refuse answers a connection over a cap with a fixed 503 and closes it. The answer fits a
// fresh socket's send buffer, so the write does not wait in practice.
func (l *limitListener) refuse(c net.Conn, why string) {
	if n := l.refuseLog.note(); n > 0 {
		l.logger.Warn("connection refused", "why", why, "remote", c.RemoteAddr().String(), "times", n)
	}
	body := fmt.Sprintf(`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"Too many connections: %s. Retry shortly."}`+"\n", why)
	resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"+
		"Retry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout)) //nolint:errcheck // the write fails sooner, that is all
	c.Write([]byte(resp))                                  //nolint:errcheck // the client may be gone
	c.Close()
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// rateLog decides when a repeated event is logged: the first time, then at most once per
// every, reporting how many happened meanwhile.
type rateLog struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	count int
}

// note counts an event and returns how many to report now (0: stay quiet).
func (r *rateLog) note() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return 0
	}
	n := r.count
	r.count, r.last = 0, now
	return n
}
