// Package hostfwd proves vm.Config.HostForward end to end: its test boots
// two stages (7.2, then 7.3 by kexec) whose guest reaches, in each, a TCP
// server of the host test on 127.0.0.1 through vm.HostIP, over several
// connections, each half-closed, and reaches nothing else of the host, by
// TCP or UDP. It holds tests only; nothing imports it.
package hostfwd

// ports is what the host test tells the guest, in hostfwd/ports.json on the
// disk.
type ports struct {
	// Guest is the forwarded port on vm.HostIP.
	Guest int `json:"guest"`
	// TCP is the real port of the host's server on 127.0.0.1, which the
	// guest must not reach at the gateway, 10.0.2.2.
	TCP int `json:"tcp"`
	// UDP is a UDP port of the host on 127.0.0.1 that nothing the guest
	// sends must reach.
	UDP int `json:"udp"`
}

// portsFile is where the guest finds the ports, relative to vm.DiskDir.
const portsFile = "hostfwd/ports.json"
