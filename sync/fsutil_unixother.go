//go:build unix && !linux

package sync

import (
	"io"
	"path/filepath"
)

// openBeneath opens rel under root without following a final symlink.
func openBeneath(root, rel string) (io.ReadCloser, error) {
	return openNoFollow(filepath.Join(root, rel))
}
