package allocator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// ErrRunning is returned by Run when the allocator is already running.
var ErrRunning = errors.New("allocator: already running")

// sampleInterval is how often Run samples the in-use figures for PeakInUse.
const sampleInterval = time.Second

// Run warms the allocator from Config.WarmupFile (a missing file is a first
// start and is skipped; an unreadable one is logged and skipped: warm-up is
// an optimisation), samples the in-use figures every second until ctx ends,
// then writes the report to WarmupFile (through a temporary file renamed
// into place) and returns. With no WarmupFile it only samples. Run logs to
// slog.Default(); it returns an error only if the report cannot be saved.
func (a *Allocator) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer a.running.Store(false)
	logger := slog.Default().With("component", "allocator")
	if path := a.cfg.WarmupFile; path != "" {
		r, err := loadReport(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			logger.Info("no allocator warm-up report, starting cold", "file", path)
		case err != nil:
			logger.Warn("skipping allocator warm-up", "file", path, "err", err)
		default:
			n := a.Warm(r)
			logger.Info("allocator warmed", "file", path, "bytes", n, "report_time", r.Time)
		}
	}
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-t.C:
			a.Report() // raises PeakInUse
		case <-ctx.Done():
			done = true
		}
	}
	if a.cfg.WarmupFile == "" {
		return nil
	}
	if err := a.SaveReport(a.cfg.WarmupFile); err != nil {
		return err
	}
	logger.Info("allocator report saved", "file", a.cfg.WarmupFile)
	return nil
}

func loadReport(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err
	}
	defer f.Close()
	return ReadReport(f)
}

// SaveReport writes a's report to path through a temporary file in the same
// directory, renamed into place, so a crash never leaves half a report.
func (a *Allocator) SaveReport(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("saving allocator report: %w", err)
	}
	tmp := f.Name()
	err = a.WriteReport(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("saving allocator report %q: %w", path, err)
	}
	return nil
}
