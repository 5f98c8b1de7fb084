// Package linuxvm boots a Debian kernel (linux-image-amd64) under
// qemu-system-x86_64 with TCG (no KVM on the build machines) and an
// initramfs holding the sandbox test binary, busybox and a tiny init
// (./vminit). The VM has a pure cgroup v2 hierarchy, so the same sandbox
// suite that runs on the cgroup v1-hybrid build host runs on v2 there. The
// result comes back as a marker line on the serial console.
//
// The test runs only when BULKHEAD_TEST_VM=1 (`make test-vm`): it takes
// minutes, so `make test` leaves it to its own target, which CI runs.
package linuxvm
