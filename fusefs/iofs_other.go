//go:build !linux

package fusefs

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
)

// ReadOnlyFS is what MountFS serves.
type ReadOnlyFS interface {
	fs.ReadDirFS
	fs.ReadLinkFS
}

// MountFS is unsupported off Linux.
func MountFS(context.Context, ReadOnlyFS, string, *slog.Logger) (*Server, error) {
	return nil, errors.ErrUnsupported
}
