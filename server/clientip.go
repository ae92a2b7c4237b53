package server

import (
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// parseTrusted parses the operator's trusted proxies (IPs or CIDRs); bad entries are skipped
// (Fiber, given the same list, ignores them too).
func parseTrusted(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

// isTrusted reports whether ip is one of the trusted proxies.
func (l *limits) isTrusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address the per-IP limit counts. It is the socket's peer, unless that peer
// is a trusted proxy: then X-Forwarded-For is read from the right (the hops the proxies
// appended) and the first address that is not itself a trusted proxy is the client. Reading
// from the left, as c.IP() does, would let a client choose its own address by sending a
// forged X-Forwarded-For that the proxy then extends.
func (l *limits) clientIP(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP().String()
	if len(l.trusted) == 0 {
		return peer
	}
	pa, err := netip.ParseAddr(peer)
	if err != nil || !l.isTrusted(pa) {
		return peer
	}
	hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// Garbage in the chain: what lies left of it cannot be trusted.
			return peer
		}
		if !l.isTrusted(a) {
			return a.Unmap().String()
		}
	}
	return peer
}
