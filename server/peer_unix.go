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
	p := newPeer(conn)
	return p != nil && p.closed()
}

// peer peeks at one connection; closed allocates nothing, so a watcher can call it often.
type peer struct {
	rc      syscall.RawConn
	gone    bool
	control func(fd uintptr) // p.peek, bound once
}

// newPeer returns nil when conn cannot be peeked at.
func newPeer(conn net.Conn) *peer {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peer{rc: rc}
	p.control = p.peek
	return p
}

// closed reports whether the client closed its side (false once the connection is closed here).
func (p *peer) closed() bool {
	p.gone = false
	_ = p.rc.Control(p.control)
	return p.gone
}

func (p *peer) peek(fd uintptr) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == nil && n == 0:
		p.gone = true
	case err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR:
		p.gone = true
	}
}
