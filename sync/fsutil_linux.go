package sync

import "syscall"

func ctimespec(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }
