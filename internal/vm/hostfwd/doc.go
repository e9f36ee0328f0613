// Command hostfwd is the host side of vm.Config.HostForward: package vm
// builds it next to the image, and QEMU's user networking runs it once per
// guest connection to a forwarded port (guestfwd=...-cmd:hostfwd ADDR), with
// that connection on its standard input and output. It dials ADDR, which must
// be 127.0.0.1:PORT or [::1]:PORT, and copies both ways until both sides have
// closed, passing a half-close (EOF) in one direction on as a TCP shutdown
// of the write side, so that request/response protocols and HTTP/2 work.
//
// Its standard error is the guest's connection too: it prints nothing, ever.
// When the address is refused or cannot be dialed, it exits with status 2 or
// 1 and the guest sees its connection closed without data.
//
// Nothing but QEMU should run it; it is not installed anywhere.
package main
