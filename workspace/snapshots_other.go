//go:build !linux

package workspace

import "context"

// Off Linux no sandbox runs, so there is nothing to freeze or stop.
func (s *Service) freezeForSnapshot(context.Context, string) (func(), error) { return func() {}, nil }

func (s *Service) stopForRestore(string) (func(), error) { return func() {}, nil }
