//go:build unix

package server

import (
	"net"
	"syscall"
)

// peerClosed reports whether the client closed its side of conn, without consuming data: a
// non-blocking MSG_PEEK read sees EOF (orderly close) or an error (reset). fasthttp has no
// per-request "client gone" signal, so streams poll this while they have nothing to write.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			closed = true
		case err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR:
			closed = true
		}
	})
	return closed
}
