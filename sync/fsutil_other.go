//go:build !unix

package sync

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func statExtra(fs.FileInfo) (uint64, int64) { return 0, 0 }

func openNoFollow(path string) (io.ReadCloser, error) { return os.Open(path) }

func openBeneath(root, rel string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(root, rel))
}

func createNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

func lchtimes(string, int64) error { return errors.ErrUnsupported }

const oNoFollow = 0
