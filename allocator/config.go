package allocator

import (
	"errors"
	"fmt"
)

// Config holds the allocator's settings, the `allocator:` section of the edge
// configuration.
type Config struct {
	// Classes are the buffer size classes in bytes, strictly ascending. A
	// request is rounded up to the smallest class that holds it; requests
	// above the largest class are allocated plainly. Default: powers of two
	// from 256 B to 64 KiB (a maximal UDP datagram fits the largest).
	Classes []int `yaml:"classes"`
	// MaxBytes caps the memory retained in free lists, across all classes.
	// A Put past it drops the buffer for the garbage collector. Default 32 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxPerClass caps the number of buffers retained per class (split
	// evenly over the class's shards). Default 0: no count cap, MaxBytes alone
	// bounds each class.
	MaxPerClass int `yaml:"max_per_class"`
	// WarmupFile is where Run reads the last run's usage report at start (to
	// pre-fill the classes) and writes this run's report at stop. Default
	// empty: no warm-up and no report file.
	WarmupFile string `yaml:"warmup_file"`
	// WarmupShare is the share of MaxBytes that warm-up may pre-fill, from 0
	// to 1. Default 0.5.
	WarmupShare float64 `yaml:"warmup_share"`
}

// Defaults of Config, applied by SetDefaults to zero fields.
const (
	DefaultMaxBytes    int64 = 32 << 20
	DefaultWarmupShare       = 0.5
	// MaxClassSize is the largest size class Validate accepts.
	MaxClassSize = 16 << 20
	// MaxClasses is the most size classes Validate accepts.
	MaxClasses = 32
)

// DefaultClasses returns the default size classes: powers of two from 256 B
// to 64 KiB.
func DefaultClasses() []int {
	var cs []int
	for s := 256; s <= 64<<10; s *= 2 {
		cs = append(cs, s)
	}
	return cs
}

// SetDefaults fills the zero fields of c with their defaults.
func (c *Config) SetDefaults() {
	if len(c.Classes) == 0 {
		c.Classes = DefaultClasses()
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.WarmupShare == 0 {
		c.WarmupShare = DefaultWarmupShare
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Classes) == 0 {
		errs = append(errs, errors.New("classes: at least one size class is needed"))
	}
	if len(c.Classes) > MaxClasses {
		errs = append(errs, fmt.Errorf("classes: %d size classes, at most %d", len(c.Classes), MaxClasses))
	}
	for i, s := range c.Classes {
		switch {
		case s <= 0:
			errs = append(errs, fmt.Errorf("classes[%d] (%d) must be > 0", i, s))
		case s > MaxClassSize:
			errs = append(errs, fmt.Errorf("classes[%d] (%d) must be <= %d", i, s, MaxClassSize))
		case i > 0 && s <= c.Classes[i-1]:
			errs = append(errs, fmt.Errorf("classes[%d] (%d) must be > classes[%d] (%d): classes are strictly ascending", i, s, i-1, c.Classes[i-1]))
		}
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes (%d) must be >= 0", c.MaxBytes))
	}
	if c.MaxPerClass < 0 {
		errs = append(errs, fmt.Errorf("max_per_class (%d) must be >= 0", c.MaxPerClass))
	}
	if !(c.WarmupShare >= 0 && c.WarmupShare <= 1) {
		errs = append(errs, fmt.Errorf("warmup_share (%g) must be between 0 and 1", c.WarmupShare))
	}
	return errors.Join(errs...)
}
