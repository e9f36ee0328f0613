package vm

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HostIP is the address at which the guest reaches Config.HostForward: a TCP
// connection to HostIP on a Forward's GuestPort reaches its Host.
const HostIP = "10.0.2.100"

// A Forward makes one service of the host reachable from the guest (see
// Config.HostForward).
type Forward struct {
	// GuestPort is the TCP port the guest connects to, on HostIP.
	GuestPort int
	// Host is the address on the host that each such connection reaches:
	// "127.0.0.1:PORT" or "[::1]:PORT".
	Host string
}

// The guest's network, with Config.HostForward: QEMU's user networking
// (10.0.2.0/24, the host side at 10.0.2.2) with a static address, since
// the guest has no DHCP client.
const (
	// ipCmdline configures eth0 in the kernel (CONFIG_IP_PNP).
	ipCmdline = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
	// forwarderPackage is the program QEMU runs for each connection.
	forwarderPackage = "github.com/liveupdate/luo/internal/vm/hostfwd"
	// forwarderName is its file name in the image directory.
	forwarderName = "hostfwd"
)

// checkForwards validates Config.HostForward.
func checkForwards(fwds []Forward) error {
	seen := map[int]bool{}
	for _, f := range fwds {
		if f.GuestPort < 1 || f.GuestPort > 65535 {
			return fmt.Errorf("vm: Config.HostForward: guest port %d out of range", f.GuestPort)
		}
		if seen[f.GuestPort] {
			return fmt.Errorf("vm: Config.HostForward: guest port %d forwarded twice", f.GuestPort)
		}
		seen[f.GuestPort] = true
		ap, err := netip.ParseAddrPort(f.Host)
		if err != nil || ap.Port() == 0 || ap.Addr() != netip.MustParseAddr("127.0.0.1") && ap.Addr() != netip.IPv6Loopback() {
			return fmt.Errorf("vm: Config.HostForward: host %q (guest port %d) is not 127.0.0.1:PORT or [::1]:PORT", f.Host, f.GuestPort)
		}
	}
	return nil
}

// netArgs returns the QEMU arguments of the guest's network: none without
// forwards (-nodefaults leaves the guest without a NIC), else a virtio NIC
// on user networking that reaches nothing but the forwards, each run by the
// program forwarder, once per connection.
func netArgs(fwds []Forward, forwarder string) ([]string, error) {
	if len(fwds) == 0 {
		return nil, nil
	}
	if err := checkForwards(fwds); err != nil {
		return nil, err
	}
	netdev := "user,id=net0,restrict=on"
	for _, f := range fwds {
		// QEMU splits the command with g_shell_parse_argv, after
		// QemuOpts has undone the doubling of commas.
		cmd := shellQuote(forwarder) + " " + shellQuote(f.Host)
		netdev += ",guestfwd=tcp:" + HostIP + ":" + strconv.Itoa(f.GuestPort) + "-cmd:" + strings.ReplaceAll(cmd, ",", ",,")
	}
	// romfile= skips the iPXE option ROM: the kernel is booted directly.
	return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile="}, nil
}

// shellQuote quotes s for a POSIX shell, as g_shell_parse_argv reads it:
// unchanged if it holds only safe characters, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%=[]") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
