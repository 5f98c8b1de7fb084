package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Seccomp-BPF, built in pure Go. The program is an allowlist: a syscall not
// named in the policy returns EPERM; a foreign ABI (i386 via int 0x80, x32)
// kills the process. Some syscalls are allowed only for certain arguments
// (see policy in seccomp_<arch>.go). Arguments are compared on their low 32
// bits, the width the kernel itself uses for the ones we check (ioctl
// commands, socket families, personality values, clone namespace flags).

// Classic BPF opcodes and seccomp constants (linux/filter.h, linux/seccomp.h).
const (
	bpfLdAbsW = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfAndK   = 0x54 // BPF_ALU | BPF_AND | BPF_K
	bpfJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK  = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK   = 0x06 // BPF_RET | BPF_K

	retKillProcess = 0x80000000
	retErrno       = 0x00050000
	retAllow       = 0x7fff0000

	// offsets in struct seccomp_data
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[i] at 16+8*i; low word first on little-endian

	x32SyscallBit = 0x40000000
)

// sockFilter is struct sock_filter.
type sockFilter struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// argLow is the offset of the low 32 bits of argument i (little-endian).
func argLow(i int) uint32 { return uint32(offArgs + 8*i) }

// rule is what the filter does with one syscall number.
type rule struct {
	nr   uint32
	name string
	// errno, when non-zero, refuses the syscall with it outright.
	errno uint32
	// deny lists arguments that make an otherwise allowed call return EPERM.
	deny []argMatch
	// only, when set, allows the call only if every listed argument has one of
	// the listed values (after masking); otherwise EPERM.
	only []argMatch
}

// argMatch compares (arg_low32 & Mask) with Values, or, with AnyBits, tests
// arg_low32 & AnyBits != 0.
type argMatch struct {
	Arg     int
	Mask    uint32 // 0 means no mask
	Values  []uint32
	AnyBits uint32
}

// asm is a tiny assembler with forward labels.
type asm struct {
	prog   []sockFilter
	fixups []fixup
	labels map[string]int
}

type fixup struct {
	at      int
	jt, jf  string
	trueIdx bool
}

func (a *asm) emit(code uint16, k uint32) {
	a.prog = append(a.prog, sockFilter{Code: code, K: k})
}

// jump emits a conditional jump whose targets are labels ("" = next).
func (a *asm) jump(code uint16, k uint32, jt, jf string) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), jt: jt, jf: jf})
	a.prog = append(a.prog, sockFilter{Code: code, K: k})
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *asm) resolve() ([]sockFilter, error) {
	off := func(from int, l string) (uint8, error) {
		if l == "" {
			return 0, nil
		}
		to, ok := a.labels[l]
		if !ok {
			return 0, fmt.Errorf("seccomp: undefined label %q", l)
		}
		d := to - from - 1
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp: jump to %q out of range (%d)", l, d)
		}
		return uint8(d), nil
	}
	for _, f := range a.fixups {
		jt, err := off(f.at, f.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(f.at, f.jf)
		if err != nil {
			return nil, err
		}
		a.prog[f.at].Jt, a.prog[f.at].Jf = jt, jf
	}
	if len(a.prog) > 4096 {
		return nil, fmt.Errorf("seccomp: program has %d instructions, max 4096", len(a.prog))
	}
	return a.prog, nil
}

// buildFilter compiles a policy for one audit arch into a BPF program.
func buildFilter(auditArch uint32, rules []rule) ([]sockFilter, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("seccomp policy for this architecture: %w", errors.ErrUnsupported)
	}
	// Sized up front and labelled with strconv, not fmt: every sandbox init
	// builds this program while it starts.
	a := asm{prog: make([]sockFilter, 0, 4*len(rules)), labels: make(map[string]int, 2*len(rules))}
	a.emit(bpfLdAbsW, offArch)
	a.jump(bpfJeqK, auditArch, "archok", "")
	a.emit(bpfRetK, retKillProcess)
	a.label("archok")
	a.emit(bpfLdAbsW, offNr)
	a.jump(bpfJgeK, x32SyscallBit, "", "nrok")
	a.emit(bpfRetK, retKillProcess)
	a.label("nrok")
	seen := make(map[uint32]bool, len(rules))
	for i, r := range rules {
		if seen[r.nr] {
			return nil, fmt.Errorf("seccomp: syscall %s (%d) listed twice", r.name, r.nr)
		}
		seen[r.nr] = true
		next := "next" + strconv.Itoa(i)
		a.jump(bpfJeqK, r.nr, "", next)
		switch {
		case r.errno != 0:
			a.emit(bpfRetK, retErrno|r.errno)
		case len(r.deny) > 0:
			deny := "deny" + strconv.Itoa(i)
			for _, m := range r.deny {
				a.emit(bpfLdAbsW, argLow(m.Arg))
				if m.AnyBits != 0 {
					a.jump(bpfJsetK, m.AnyBits, deny, "")
					continue
				}
				if m.Mask != 0 {
					a.emit(bpfAndK, m.Mask)
				}
				for _, v := range m.Values {
					a.jump(bpfJeqK, v, deny, "")
				}
			}
			a.emit(bpfRetK, retAllow)
			a.label(deny)
			a.emit(bpfRetK, retErrno|eperm)
		case len(r.only) > 0:
			for j, m := range r.only {
				ok := "ok" + strconv.Itoa(i) + "_" + strconv.Itoa(j)
				a.emit(bpfLdAbsW, argLow(m.Arg))
				if m.Mask != 0 {
					a.emit(bpfAndK, m.Mask)
				}
				for _, v := range m.Values {
					a.jump(bpfJeqK, v, ok, "")
				}
				a.emit(bpfRetK, retErrno|eperm)
				a.label(ok)
			}
			a.emit(bpfRetK, retAllow)
		default:
			a.emit(bpfRetK, retAllow)
		}
		a.label(next)
	}
	a.emit(bpfRetK, retErrno|eperm)
	return a.resolve()
}

// encodeFilter returns the program as the kernel's sock_filter array bytes
// (native little-endian); used by tests and for hashing.
func encodeFilter(prog []sockFilter) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		b = binary.LittleEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.LittleEndian.AppendUint32(b, ins.K)
	}
	return b
}

const (
	eperm  = 1
	enosys = 38
)
