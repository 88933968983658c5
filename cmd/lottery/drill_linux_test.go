package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a drill's child process if the test
// binary dies (a timeout panic), so no private server outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
