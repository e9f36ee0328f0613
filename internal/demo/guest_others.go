//go:build !linux

package demo

import "errors"

// Guest only runs in the Linux VM.
func Guest() error { return errors.New("the demo guest runs in the Linux VM") }
