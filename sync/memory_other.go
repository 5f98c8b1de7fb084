//go:build !linux

package sync

import "errors"

// adviseHugePages is Linux-only advice; elsewhere buffers get the default
// pages.
func adviseHugePages([]byte) error { return errors.ErrUnsupported }
