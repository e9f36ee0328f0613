// Package e2e holds the end-to-end tests of live update: luod as PID 1 in
// a VM on the LUO kernel, services built on package keep, real kexecs
// between Linux 7.2 and 7.3. vm_test.go boots the VMs; the guest side
// (e2e_vmguest_test.go) drives luod through its control socket and luoctl
// from a process that is not one of its services.
package e2e
