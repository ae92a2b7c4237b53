//go:build unix

package tools

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the child in its own process group, so that
// killProcessGroup can end helpers it spawned (npx → node, sh → server).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup SIGKILLs what is left of the group led by pid. It is called
// after the leader has been reaped; ESRCH (nothing left) is the usual answer.
func killProcessGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
