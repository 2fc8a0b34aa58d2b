package artifact

// Limits bound what a bundle may hold, so a hostile or broken archive (a zip
// or tar bomb) cannot fill the disk or exhaust inodes. They are enforced on
// the bytes actually read, never only on the sizes an archive declares.
// A zero field takes its default.
type Limits struct {
	// MaxTotalBytes bounds the sum of all file sizes. Default 1 GiB.
	MaxTotalBytes int64
	// MaxFileBytes bounds a single file. Default 512 MiB.
	MaxFileBytes int64
	// MaxEntries bounds the number of entries (files, directories, symlinks,
	// counting directories implied by paths). Default 100 000.
	MaxEntries int
	// MaxPathLen bounds an entry's path and a symlink's target, in bytes.
	// Default 1024.
	MaxPathLen int
	// MaxArchiveBytes bounds an archive received by IngestStream, which is
	// spooled to disk before it is unpacked. Default 1 GiB.
	MaxArchiveBytes int64
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxTotalBytes:   1 << 30,
		MaxFileBytes:    512 << 20,
		MaxEntries:      100_000,
		MaxPathLen:      1024,
		MaxArchiveBytes: 1 << 30,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = d.MaxPathLen
	}
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = d.MaxArchiveBytes
	}
	return l
}
