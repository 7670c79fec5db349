package allocator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"
)

// ReportVersion is the version of the report format that WriteReport writes
// and ReadReport accepts.
const ReportVersion = 1

// ErrReportVersion is returned by ReadReport for a report of another version.
var ErrReportVersion = errors.New("allocator: unsupported report version")

// Report describes an allocator's allocation pattern since it was built.
type Report struct {
	// Version is the report format, ReportVersion.
	Version int `json:"version"`
	// Time is when the report was taken.
	Time time.Time `json:"time"`
	// MaxBytes is the cap of retained memory the allocator ran with.
	MaxBytes int64 `json:"max_bytes"`
	// RetainedBytes is the memory held in free lists, all classes.
	RetainedBytes int64 `json:"retained_bytes"`
	// Classes has one entry per size class, ascending.
	Classes []ClassReport `json:"classes"`
	// Oversize counts requests above the largest class, allocated plainly.
	Oversize OversizeReport `json:"oversize"`
}

// ClassReport describes one size class. Counters run from the allocator's
// start; InUse and Retained are at the time of the report.
type ClassReport struct {
	// Size is the class's buffer size in bytes.
	Size int `json:"size"`
	// Gets counts requests served by this class; Hits of them came from the
	// free list and Misses were allocated.
	Gets   uint64 `json:"gets"`
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// Puts counts buffers given back; Drops of them were not retained
	// (grown past the class, or over MaxBytes or MaxPerClass).
	Puts  uint64 `json:"puts"`
	Drops uint64 `json:"drops"`
	// InUse is the number of buffers handed out and not yet put back, and
	// PeakInUse the highest InUse sampled (by Run every second, and by every
	// Report); warm-up pre-fills in proportion to PeakInUse * Size.
	InUse     int64 `json:"in_use"`
	PeakInUse int64 `json:"peak_in_use"`
	// InUseBytes is InUse * Size.
	InUseBytes int64 `json:"in_use_bytes"`
	// Retained is the number of buffers in the free list; RetainedBytes is
	// Retained * Size.
	Retained      int64 `json:"retained"`
	RetainedBytes int64 `json:"retained_bytes"`
	// WastedBytes is the rounding loss of the buffers in use: the class size
	// minus the size asked for, summed.
	WastedBytes int64 `json:"wasted_bytes"`
}

// OversizeReport describes requests above the largest class.
type OversizeReport struct {
	Gets uint64 `json:"gets"`
	Puts uint64 `json:"puts"`
	// InUseBytes is the size of oversize buffers handed out and not yet put
	// back, PeakInUseBytes the highest sampled.
	InUseBytes     int64 `json:"in_use_bytes"`
	PeakInUseBytes int64 `json:"peak_in_use_bytes"`
}

// Report returns the allocation pattern so far. Each class is read shard by
// shard, so under load the figures of a class are consistent only to within
// the operations that ran while it was read.
func (a *Allocator) Report() Report {
	r := Report{
		Version:  ReportVersion,
		Time:     time.Now(),
		MaxBytes: a.cfg.MaxBytes,
		Classes:  make([]ClassReport, len(a.classes)),
	}
	for i := range a.classes {
		c := &a.classes[i]
		cr := ClassReport{Size: c.size}
		for j := range c.shards {
			s := &c.shards[j]
			s.mu.Lock()
			cr.Gets += s.gets
			cr.Hits += s.hits
			cr.Puts += s.puts
			cr.Drops += s.drops
			cr.WastedBytes += s.waste
			cr.Retained += int64(len(s.free))
			s.mu.Unlock()
		}
		cr.Misses = cr.Gets - cr.Hits
		cr.InUse = int64(cr.Gets) - int64(cr.Puts)
		cr.PeakInUse = raise(&c.peak, cr.InUse)
		cr.InUseBytes = cr.InUse * int64(c.size)
		cr.RetainedBytes = cr.Retained * int64(c.size)
		r.RetainedBytes += cr.RetainedBytes
		r.Classes[i] = cr
	}
	a.oversizeMu.Lock()
	a.oversizePeak = max(a.oversizePeak, a.oversizeBytes)
	r.Oversize = OversizeReport{
		Gets:           a.oversizeGets,
		Puts:           a.oversizePuts,
		InUseBytes:     a.oversizeBytes,
		PeakInUseBytes: a.oversizePeak,
	}
	a.oversizeMu.Unlock()
	return r
}

// raise sets p to v if v is higher and returns the result.
func raise(p *atomic.Int64, v int64) int64 {
	for {
		old := p.Load()
		if v <= old {
			return old
		}
		if p.CompareAndSwap(old, v) {
			return v
		}
	}
}

// WriteReport writes a's report to w as indented JSON.
func (a *Allocator) WriteReport(w io.Writer) error {
	r := a.Report()
	return r.Write(w)
}

// Write writes r to w as indented JSON.
func (r Report) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing allocator report: %w", err)
	}
	return nil
}

// ReadReport reads a report written by WriteReport.
func ReadReport(rd io.Reader) (Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return Report{}, fmt.Errorf("reading allocator report: %w", err)
	}
	if r.Version != ReportVersion {
		return Report{}, fmt.Errorf("reading allocator report: %w: %d (want %d)", ErrReportVersion, r.Version, ReportVersion)
	}
	return r, nil
}

// Warm pre-fills the free lists from the report of an earlier run: each
// class with the size of one of a's classes gets up to the PeakInUse buffers
// it had then, scaled down proportionally so that the total fits
// WarmupShare * MaxBytes. Classes already holding buffers are topped up, and
// the caps on retained memory hold as for Put. Warm returns the bytes it
// added. Classes of the report that a does not have are ignored.
func (a *Allocator) Warm(r Report) int64 {
	budget := int64(a.cfg.WarmupShare * float64(a.cfg.MaxBytes))
	want := make([]int64, len(a.classes)) // buffers per class
	var total float64                     // bytes wanted
	for _, cr := range r.Classes {
		ci := a.classFor(cr.Size)
		if ci < 0 || a.classes[ci].size != cr.Size || cr.PeakInUse <= 0 {
			continue
		}
		want[ci] = cr.PeakInUse
		total += float64(cr.PeakInUse) * float64(cr.Size)
	}
	scale := 1.0
	if total > float64(budget) {
		scale = float64(budget) / total
	}
	var added int64
	for ci, n := range want {
		c := &a.classes[ci]
		target := int64(math.Floor(float64(n) * scale))
		have := int64(0)
		for j := range c.shards {
			c.shards[j].mu.Lock()
			have += int64(len(c.shards[j].free))
			c.shards[j].mu.Unlock()
		}
		if target <= have {
			continue
		}
		added += int64(a.fill(ci, int(target-have))) * int64(c.size)
	}
	return added
}
