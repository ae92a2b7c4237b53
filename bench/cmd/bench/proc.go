//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the bench started (gateway or upstream).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	logs *tailBuffer
}

// start runs bin with args and env added to the bench's environment. Its stderr is kept
// (last lines) for error reports; stdout goes to stdoutTo when set.
func start(name, bin string, args, env []string, stdoutTo io.Writer) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logs: &tailBuffer{max: 8 << 10}}
	cmd.Stderr = p.logs
	if stdoutTo != nil {
		cmd.Stdout = stdoutTo
	}
	// Own process group, so an interrupted bench does not leave it behind by accident.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 20 s, then kills.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(b), nil
}

// cpuSeconds is the user+system CPU time of pid so far (from /proc/<pid>/stat).
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from after its ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux the bench targets.
const clockTicks = 100

// memKB returns a field (VmRSS, VmHWM) of /proc/<pid>/status in KiB.
func memKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			n, _ := strconv.ParseInt(strings.Fields(line[len(field)+1:])[0], 10, 64)
			return n
		}
	}
	return 0
}

// usage is a process's CPU and memory over one phase.
type usage struct {
	CPUCores float64 `json:"cpu_cores"` // CPU seconds per wall second (1.0 = one core busy)
	RSSMiB   float64 `json:"rss_mib"`   // at the end of the phase
	PeakMiB  float64 `json:"peak_rss_mib"`
}

// meter measures a process's CPU over a phase.
type meter struct {
	pid  int
	cpu  float64
	wall time.Time
}

func startMeter(pid int) meter { return meter{pid: pid, cpu: cpuSeconds(pid), wall: time.Now()} }

func (m meter) stop() usage {
	wall := time.Since(m.wall).Seconds()
	return usage{
		CPUCores: round((cpuSeconds(m.pid)-m.cpu)/wall, 3),
		RSSMiB:   round(float64(memKB(m.pid, "VmRSS"))/1024, 1),
		PeakMiB:  round(float64(memKB(m.pid, "VmHWM"))/1024, 1),
	}
}

// raiseFileLimit sets the soft open-files limit to the hard one (children inherit it).
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	rl.Cur = rl.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// freePort returns a loopback address with a port free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitHTTP polls url until it answers 200 or the deadline passes.
func waitHTTP(ctx context.Context, url string, p *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logs.buf)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New(p.name + " did not become ready in 30 s")
}
