package kv

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// SmallOptions returns Badger options tuned for one of many small databases:
// 1 MiB memtables and tables, small caches, two compactors, 16 MiB value-log
// files, metrics off. With about 1 MB of memtable and caches each, hundreds can
// be open at once.
func SmallOptions(dir string, key []byte, log *slog.Logger) (badger.Options, error) {
	switch len(key) {
	case 0, 16, 24, 32:
	default:
		return badger.Options{}, fmt.Errorf("%w (got %d)", ErrBadKey, len(key))
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithMetricsEnabled(false).
		WithMemTableSize(1 << 20).
		WithNumMemtables(2).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(4 << 10).
		WithBlockCacheSize(256 << 10).
		WithIndexCacheSize(256 << 10).
		WithNumGoroutines(2).
		WithCompression(options.ZSTD).
		WithDetectConflicts(true)
	if len(key) > 0 {
		opts = opts.WithEncryptionKey(key)
	}
	return opts, nil
}

// ControlOptions returns options for the node's control database: somewhat
// larger memtables (it takes all registry writes), unencrypted (it holds only
// wrapped keys, hashes and board data).
func ControlOptions(dir string, log *slog.Logger) badger.Options {
	opts, _ := SmallOptions(dir, nil, log)
	return opts.WithMemTableSize(8 << 20).WithBaseTableSize(2 << 20).WithBlockCacheSize(4 << 20)
}

// badgerLogger routes Badger's chatter into slog: its Info lines are
// housekeeping, so they go to Debug.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) logf(level slog.Level, format string, args ...any) {
	if l.log == nil {
		return
	}
	l.log.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "subsystem", "badger")
}

func (l badgerLogger) Errorf(f string, a ...any)   { l.logf(slog.LevelError, f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.logf(slog.LevelWarn, f, a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.logf(slog.LevelDebug, f, a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.logf(slog.LevelDebug-4, f, a...) }
