package sdnotify

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestControlMessage(t *testing.T) {
	t.Parallel()
	creds := &unix.Ucred{Pid: 42, Uid: 1000, Gid: 100}
	tests := []struct {
		name      string
		fds       []int
		creds     *unix.Ucred
		wantTypes []int32
	}{
		{"creds only", nil, creds, []int32{unix.SCM_CREDENTIALS}},
		{"fds then creds", []int{5, 7, 9}, creds, []int32{unix.SCM_RIGHTS, unix.SCM_CREDENTIALS}},
		{"fds without creds (fallback)", []int{5}, nil, []int32{unix.SCM_RIGHTS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oob := controlMessage(tt.fds, tt.creds)
			wantLen := 0
			if len(tt.fds) > 0 {
				wantLen += unix.CmsgSpace(4 * len(tt.fds))
			}
			if tt.creds != nil {
				wantLen += unix.CmsgSpace(unix.SizeofUcred)
			}
			if len(oob) != wantLen {
				t.Errorf("control data is %d bytes, want %d", len(oob), wantLen)
			}
			msgs, err := unix.ParseSocketControlMessage(oob)
			if err != nil {
				t.Fatal(err)
			}
			var types []int32
			for i := range msgs {
				m := &msgs[i]
				if m.Header.Level != unix.SOL_SOCKET {
					t.Errorf("level %d", m.Header.Level)
				}
				types = append(types, m.Header.Type)
				switch m.Header.Type {
				case unix.SCM_RIGHTS:
					fds, err := unix.ParseUnixRights(m)
					if err != nil || !reflect.DeepEqual(fds, tt.fds) {
						t.Errorf("SCM_RIGHTS = %v, %v; want %v", fds, err, tt.fds)
					}
				case unix.SCM_CREDENTIALS:
					c, err := unix.ParseUnixCredentials(m)
					if err != nil || *c != *tt.creds {
						t.Errorf("SCM_CREDENTIALS = %+v, %v; want %+v", c, err, tt.creds)
					}
				}
			}
			if !reflect.DeepEqual(types, tt.wantTypes) {
				t.Errorf("types = %v, want %v", types, tt.wantTypes)
			}
		})
	}
}
