//go:build !linux

package testutil

import "errors"

func probeUserNS() error { return errors.ErrUnsupported }
