package luo

import "os"

// NewTestSession returns a Session that owns f, without the checks of
// SessionFromFile, so that the benchmarks can run the wrapper on a file
// whose LUO ioctls fail at once with ENOTTY (such as /dev/null).
func NewTestSession(f *os.File, name string, incoming bool) *Session {
	return newSessionFile(f, name, incoming)
}

// RetrievedFile wraps fd as RetrieveFD wraps the fd the kernel returns.
func (s *Session) RetrievedFile(fd int32, token uint64) *os.File {
	return s.retrievedFile(fd, token)
}

// NewRawTestSession adopts fd as CreateSession and RetrieveSession adopt the
// fd the kernel returns.
func NewRawTestSession(fd int, name string, incoming bool) *Session {
	return newSession(fd, name, incoming)
}
