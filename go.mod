module github.com/liveupdate/luo

go 1.26.0

require (
	github.com/cavaliergopher/cpio v1.0.1
	github.com/coreos/go-systemd/v22 v22.7.0
	golang.org/x/sys v0.50.0
)
