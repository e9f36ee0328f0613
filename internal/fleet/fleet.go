// Package fleet keeps a fleet's update slots in etcd: at most Max hosts of
// a group inside a live update at once, as locksmith's reboot semaphore
// does for Flatcar. The semaphore is one JSON document at
// /luo/fleet/<group>/semaphore, changed only by compare-and-swap on its
// revision, so every change is one etcd revision and the history of the
// key is the rollout's timeline.
//
// A slot has no lease: a host that never comes back keeps it, and the
// rollout stops there until an operator releases it (luoctl fleet release).
// *Fleet implements update.Slots.
package fleet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/liveupdate/luo/internal/update"
)

// Config are a host's fleet settings (luod's --fleet-* flags).
type Config struct {
	// Endpoints are etcd's client URLs or host:port pairs.
	Endpoints []string
	// CACert, Cert and Key are PEM files for TLS to etcd; all empty for
	// plain TCP.
	CACert, Cert, Key string
	// Group names the hosts that share the slots; Host is this one's name
	// in it.
	Group, Host string
	// Slots is how many hosts of the group may update at once, used when
	// the group's semaphore is created; the stored value rules after.
	Slots int
	// Timeout bounds each request to etcd (default 10 s).
	Timeout time.Duration
}

// Holder is a host holding a slot.
type Holder struct {
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
	Kind  string    `json:"kind"`
	From  string    `json:"from,omitempty"` // kernel release it updates from
	To    string    `json:"to,omitempty"`   // the next kernel (its image), for a kexec
	// State is updating, failed or rolled-back (update.Slot*); Reason
	// says why a host keeps its slot; Changed is when State was set.
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Changed time.Time `json:"changed"`
}

// Semaphore is the document at the group's key.
type Semaphore struct {
	Max     int      `json:"max"`
	Holders []Holder `json:"holders"`
}

// Status is the semaphore with the etcd revision it was read at.
type Status struct {
	Group    string
	Key      string
	Revision int64 // the key's last change (0: never created)
	Semaphore
}

// Holds returns the holder named host, or nil.
func (s *Semaphore) Holds(host string) *Holder {
	for i := range s.Holders {
		if s.Holders[i].Host == host {
			return &s.Holders[i]
		}
	}
	return nil
}

// Fleet is a connection to the fleet's etcd.
type Fleet struct {
	cfg Config
	cli *clientv3.Client
	key string
}

// ErrConfig is wrapped by Open's errors about the settings.
var ErrConfig = errors.New("fleet settings")

// Key is the etcd key of group's semaphore.
func Key(group string) string { return "/luo/fleet/" + group + "/semaphore" }

// Open checks cfg and makes a client; it does not wait for etcd (every
// request does, up to cfg.Timeout).
func Open(cfg Config) (*Fleet, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints", ErrConfig)
	}
	if cfg.Group == "" || strings.ContainsAny(cfg.Group, "/ \n") {
		return nil, fmt.Errorf("%w: group %q: must be non-empty, without '/' or spaces", ErrConfig, cfg.Group)
	}
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, "/ \n") {
		return nil, fmt.Errorf("%w: host %q: must be non-empty, without '/' or spaces", ErrConfig, cfg.Host)
	}
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("%w: slots %d: at least 1", ErrConfig, cfg.Slots)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	var tc *tls.Config
	if cfg.CACert != "" || cfg.Cert != "" || cfg.Key != "" {
		info := transport.TLSInfo{TrustedCAFile: cfg.CACert, CertFile: cfg.Cert, KeyFile: cfg.Key}
		var err error
		if tc, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrConfig, err)
		}
	}
	// gRPC waits up to two minutes between tries to reconnect; a host
	// whose etcd came back should see it within seconds.
	reconnect := grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 250 * time.Millisecond,
		Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}, MinConnectTimeout: cfg.Timeout})
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, TLS: tc, DialTimeout: cfg.Timeout,
		Logger: zap.NewNop(), DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{reconnect}})
	if err != nil {
		return nil, fmt.Errorf("%w: etcd client: %v", ErrConfig, err)
	}
	return &Fleet{cfg: cfg, cli: cli, key: Key(cfg.Group)}, nil
}

// Close closes the client.
func (f *Fleet) Close() error { return f.cli.Close() }

// Host is this host's name in the fleet.
func (f *Fleet) Host() string { return f.cfg.Host }

// Endpoints are etcd's endpoints.
func (f *Fleet) Endpoints() []string { return f.cfg.Endpoints }

// Group is the fleet group.
func (f *Fleet) Group() string { return f.cfg.Group }

// Status reads the group's semaphore.
func (f *Fleet) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	s, _, err := f.read(ctx)
	return s, err
}

// read reads the semaphore and the revision to compare with when it is
// changed (the key's ModRevision, 0 when it does not exist).
func (f *Fleet) read(ctx context.Context) (*Status, int64, error) {
	resp, err := f.cli.Get(ctx, f.key)
	if err != nil {
		return nil, 0, fmt.Errorf("read the fleet semaphore %s from etcd: %w", f.key, err)
	}
	st := &Status{Group: f.cfg.Group, Key: f.key, Semaphore: Semaphore{Max: f.cfg.Slots, Holders: []Holder{}}}
	if len(resp.Kvs) == 0 {
		return st, 0, nil
	}
	kv := resp.Kvs[0]
	if err := json.Unmarshal(kv.Value, &st.Semaphore); err != nil {
		return nil, 0, fmt.Errorf("the fleet semaphore %s in etcd is not luod's: %w", f.key, err)
	}
	if st.Holders == nil {
		st.Holders = []Holder{}
	}
	st.Revision = kv.ModRevision
	return st, kv.ModRevision, nil
}

// swap writes s if the key is still at rev; false when another writer was
// first.
func (f *Fleet) swap(ctx context.Context, rev int64, s *Semaphore) (bool, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return false, err
	}
	resp, err := f.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(f.key), "=", rev)).
		Then(clientv3.OpPut(f.key, string(b))).Commit()
	if err != nil {
		return false, fmt.Errorf("write the fleet semaphore %s to etcd: %w", f.key, err)
	}
	return resp.Succeeded, nil
}

// change applies fn to the semaphore until its compare-and-swap wins. fn
// returns whether to write, or an error to stop with.
func (f *Fleet) change(ctx context.Context, fn func(s *Semaphore) (bool, error)) (*Status, error) {
	for {
		st, rev, err := f.read(ctx)
		if err != nil {
			return nil, err
		}
		write, err := fn(&st.Semaphore)
		if err != nil || !write {
			return st, err
		}
		ok, err := f.swap(ctx, rev, &st.Semaphore)
		if err != nil {
			return nil, err
		}
		if ok {
			return st, nil
		}
	}
}

// Take takes a slot for this host (see update.Slots), waiting up to wait
// for one to be free.
func (f *Fleet) Take(ctx context.Context, use update.SlotUse, wait time.Duration) (*update.Slot, error) {
	deadline := time.Now().Add(wait)
	for {
		now := time.Now()
		h := Holder{Host: f.cfg.Host, Since: now, Kind: string(use.Kind), From: use.From, To: use.To, State: update.SlotUpdating, Changed: now}
		var busy *update.BusyError
		rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		st, err := f.change(rctx, func(s *Semaphore) (bool, error) {
			busy = nil
			if old := s.Holds(h.Host); old != nil {
				if old.State != update.SlotUpdating {
					return false, &update.KeptError{Host: h.Host, Holder: old.String()}
				}
				// Taken by a luod that died in its update.
				h.Since = old.Since
				*old = h
				return true, nil
			}
			if len(s.Holders) < s.Max {
				s.Holders = append(s.Holders, h)
				return true, nil
			}
			busy = &update.BusyError{Group: f.cfg.Group, Max: s.Max}
			for _, o := range s.Holders {
				busy.Holders = append(busy.Holders, o.String())
			}
			return false, nil
		})
		cancel()
		switch {
		case err != nil:
			return nil, err
		case busy == nil:
			return &update.Slot{Group: f.cfg.Group, Host: h.Host, Since: h.Since}, nil
		case time.Now().After(deadline):
			return nil, busy
		}
		// Wait for the semaphore to change, or the deadline.
		wctx, cancel := context.WithDeadline(ctx, deadline)
		wch := f.cli.Watch(clientv3.WithRequireLeader(wctx), f.key, clientv3.WithRev(st.Revision+1))
		select {
		case <-wch:
		case <-wctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// Release gives s back (see update.Slots); releasing a slot not held does
// nothing.
func (f *Fleet) Release(ctx context.Context, s *update.Slot) error {
	_, err := f.ReleaseHost(ctx, s.Host)
	return err
}

// ReleaseHost frees the slot host holds; false when it holds none.
func (f *Fleet) ReleaseHost(ctx context.Context, host string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	found := false
	_, err := f.change(ctx, func(s *Semaphore) (bool, error) {
		n := len(s.Holders)
		s.Holders = slices.DeleteFunc(s.Holders, func(h Holder) bool { return h.Host == host })
		found = len(s.Holders) < n
		return found, nil
	})
	return found, err
}

// Keep records state and reason in the slot s (see update.Slots); when the
// slot was released meanwhile, by hand, it stays released.
func (f *Fleet) Keep(ctx context.Context, s *update.Slot, state, reason string) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	_, err := f.change(ctx, func(sem *Semaphore) (bool, error) {
		h := sem.Holds(s.Host)
		if h == nil {
			return false, nil
		}
		h.State, h.Reason, h.Changed = state, reason, time.Now()
		return true, nil
	})
	return err
}

func (h Holder) String() string {
	s := fmt.Sprintf("%s (%s since %s", h.Host, h.State, h.Changed.Format(time.RFC3339))
	if h.To != "" {
		s += ", " + h.Kind + " to " + h.To
	} else {
		s += ", " + h.Kind
	}
	if h.Reason != "" {
		s += ": " + h.Reason
	}
	return s + ")"
}

// DefaultHost is the host name a fleet host goes by unless told otherwise.
func DefaultHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
