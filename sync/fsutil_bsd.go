//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package sync

import "syscall"

func ctimespec(st *syscall.Stat_t) syscall.Timespec { return st.Ctimespec }
