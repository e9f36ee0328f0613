package control

import "time"

// SetTimeouts sets the write and reject timeouts of s (see writeTimeout
// and rejectTimeout), so that tests need not wait for the real ones. Call
// it before Serve.
func SetTimeouts(s *Server, write, reject time.Duration) {
	s.writeTimeout, s.rejectTimeout = write, reject
}

// ManagerMethods are the methods of io.luo.Manager the Server knows.
var ManagerMethods = managerMethods
