# luo: the userspace half of Linux Live Update.
#
#   make demo     boot the LUO kernel in QEMU and live-update it with luod (the main job)
#   make test     every test: unit tests here, then the real-kernel tests in QEMU
#   make unit     unit tests only (no VM)
#   make vmtest   the real-kernel VM tests only
#   make bench    benchmarks (host and VM); ends with the live update table, every baseline measured in the run
#   make interop  the example service, and luod.service from make deb, under real systemd 262 in a Debian sid VM (also in make test)
#   make kernel   build the two LUO test kernels into .cache/kernel (when ../shared is absent)
#   make install  install luod, luoctl, luod.service, manual pages and completions (PREFIX, DESTDIR)
#   make deb      build a Debian package of the same into dist/

GO      ?= go
TIMEOUT ?= 80m
BIN     ?= bin
# The version both binaries report: git describe, or VERSION=... (make deb).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/liveupdate/luo/internal/version.set=$(VERSION)

.PHONY: all build test unit vmtest bench demo interop kernel fuzz vet install uninstall deb

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# make install: PREFIX (default /usr/local) and DESTDIR as usual; the unit
# file goes to $(UNITDIR), which systemd reads for both prefixes.
PREFIX  ?= /usr/local
DESTDIR ?=
SBINDIR  = $(PREFIX)/sbin
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man
DATADIR  = $(PREFIX)/share
UNITDIR ?= $(PREFIX)/lib/systemd/system

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/vendor-completions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0755 $(BIN)/luod $(BIN)/luod-exec $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(BIN)/luoctl $(DESTDIR)$(BINDIR)/
	sed 's|@SBINDIR@|$(SBINDIR)|g' packaging/luod.service.in > $(DESTDIR)$(UNITDIR)/luod.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/luod.service
	$(GO) run -ldflags '$(LDFLAGS)' ./internal/cli/mangen $(DESTDIR)$(MANDIR)/man1
	install -m 0644 docs/man/luod.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 docs/man/luod.service.5 $(DESTDIR)$(MANDIR)/man5/
	$(BIN)/luoctl completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/luoctl
	$(BIN)/luoctl completion zsh > $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_luoctl
	$(BIN)/luoctl completion fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/luoctl.fish

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/luod $(DESTDIR)$(SBINDIR)/luod-exec $(DESTDIR)$(BINDIR)/luoctl \
	  $(DESTDIR)$(UNITDIR)/luod.service $(DESTDIR)$(MANDIR)/man1/luoctl*.1 \
	  $(DESTDIR)$(MANDIR)/man8/luod.8 $(DESTDIR)$(MANDIR)/man5/luod.service.5 \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions/luoctl \
	  $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_luoctl \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/luoctl.fish

# make deb: dist/luo_VERSION_ARCH.deb (dpkg-deb), from make install with
# PREFIX=/usr.
deb:
	VERSION='$(VERSION)' GO='$(GO)' packaging/deb.sh dist

vet:
	$(GO) vet ./...
	$(GO) vet -tags vmguest ./...

test: vet
	TIMEOUT=$(TIMEOUT) scripts/test.sh

unit:
	$(GO) test -short ./...

vmtest:
	$(GO) test -timeout $(TIMEOUT) -run '^TestVM' ./...

# make bench runs one package at a time (-p 1), so that no benchmark shares
# the CPUs with another, and the live update benchmark (TestVMBenchUpdate)
# last: its table, also written to BENCH_OUT, is the end of the output.
BENCHTIME ?= 1s
BENCH_OUT ?= $(or $(TMPDIR),/tmp)/luo-bench-update.txt

bench:
	LUO_BENCH=1 $(GO) test -p 1 -count 1 -timeout $(TIMEOUT) -run '^TestVMBench$$' -bench . -benchtime $(BENCHTIME) ./...
	rm -f $(BENCH_OUT)
	LUO_BENCH=1 LUO_BENCH_OUT=$(BENCH_OUT) $(GO) test -count 1 -timeout $(TIMEOUT) -run '^TestVMBenchUpdate$$' ./internal/e2e; \
	  status=$$?; cat $(BENCH_OUT) 2>/dev/null; exit $$status

demo:
	$(GO) run ./cmd/luo-demo

interop:
	LUO_INTEROP=1 $(GO) test -timeout 60m -count=1 -run '^TestInterop' -v ./internal/interop

kernel:
	scripts/build-kernel.sh 7.2
	scripts/build-kernel.sh 7.3

fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s -fuzzminimizetime 5s $$p || exit 1; \
	  done; \
	done
