//go:build !unix

package server

import "net"

// peerClosed cannot peek on this platform; write failures still detect a gone client.
func peerClosed(net.Conn) bool { return false }

// peer cannot peek on this platform.
type peer struct{}

func newPeer(net.Conn) *peer { return nil }

func (*peer) closed() bool { return false }
