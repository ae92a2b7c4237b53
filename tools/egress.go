package tools

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrEgressDenied is wrapped by every error that refuses an outbound address
// under the egress policy.
var ErrEgressDenied = errors.New("egress denied")

// deniedRanges are the address ranges an MCP URL may not reach unless the
// operator allows private egress. IPv4-mapped IPv6 addresses are unmapped
// before the check; NAT64 addresses are checked by their embedded IPv4.
var deniedRanges = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// deniedReason says why addr is refused by the egress policy, or "" when it
// may be reached.
func deniedReason(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	for _, r := range deniedRanges {
		if r.prefix.Contains(addr) {
			return r.why
		}
	}
	return ""
}

// checkAddr refuses addr when the policy denies it.
func checkAddr(addr netip.Addr, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	if why := deniedReason(addr); why != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrEgressDenied, addr.Unmap(), why)
	}
	return nil
}

// CheckURL validates an outbound MCP URL against the egress policy: the
// scheme must be http or https, the host must resolve, and unless
// allowPrivate no resolved address may be loopback, private, link-local,
// unspecified, multicast, carrier-grade NAT or reserved. Errors name the host
// but never the query string or credentials of the URL.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("invalid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL scheme must be http or https, not %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	addrs, err := resolve(ctx, host)
	if err != nil {
		return fmt.Errorf("host %q does not resolve: %w", host, err)
	}
	for _, a := range addrs {
		if err := checkAddr(a, allowPrivate); err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}

// resolve returns the addresses of host; an IP literal is its own answer.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			// The resolver's message repeats the host; keep it short.
			return nil, errors.New(dnsErr.Err)
		}
		return nil, err
	}
	if len(ips) == 0 {
		return nil, errors.New("no addresses")
	}
	return ips, nil
}

// dialControl is a net.Dialer Control hook: it runs after name resolution,
// on the exact address about to be dialed, so a name that re-resolves to a
// forbidden address between CheckURL and the dial is still refused.
func dialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dial address", ErrEgressDenied)
		}
		return checkAddr(ap.Addr(), allowPrivate)
	}
}

// newHTTPClient returns the HTTP client every MCP HTTP transport of a Manager
// shares. It ignores proxy environment variables (a proxy would hide the real
// destination from the dialer check) and refuses redirects to another origin,
// so credentials in configured headers are never sent elsewhere.
func newHTTPClient(opts Options) *http.Client {
	dialer := &net.Dialer{
		Timeout:   opts.ConnectTimeout,
		KeepAlive: 30 * time.Second,
		Control:   dialControl(opts.AllowPrivate),
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			first := via[0].URL
			if !strings.EqualFold(req.URL.Scheme, first.Scheme) || !strings.EqualFold(req.URL.Host, first.Host) {
				return errors.New("redirect to another origin refused")
			}
			return nil
		},
	}
}
