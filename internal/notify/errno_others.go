//go:build !linux

package notify

// errnoFromName knows no names outside Linux: errno numbers differ there,
// and notifications are only received on Linux. Numbers still parse.
func errnoFromName(string) int { return 0 }
