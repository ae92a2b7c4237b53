//go:build !unix

package server

import "net"

// peerClosed cannot peek on this platform; write failures still detect a gone client.
func peerClosed(net.Conn) bool { return false }
