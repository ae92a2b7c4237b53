//go:build !unix

package tools

import "os/exec"

// setProcessGroup is a no-op where process groups are not available.
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup is a no-op where process groups are not available; the
// child itself is still ended by the transport's Close.
func killProcessGroup(int) {}
