package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/ftpct/ftpct/config"
)

// applyGC sets the Go collector's target (gc-percent) and soft memory limit
// (memory-limit), each unless its environment variable (GOGC, GOMEMLIMIT)
// is set: the runtime read that at start, and an operator who set it meant
// it. It returns what is in force, for the log.
func applyGC(s *config.Settings, log *slog.Logger) (gcPercent string, memLimit string) {
	gcPercent, memLimit = os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT")
	if gcPercent == "" {
		debug.SetGCPercent(s.GCPercent)
		gcPercent = config.Lookup("gc-percent").Text(s)
	} else {
		log.Debug("GOGC set in the environment: gc-percent ignored", "GOGC", gcPercent)
	}
	if memLimit == "" {
		limit := s.MemoryLimit
		if limit == 0 {
			limit = noMemoryLimit
		}
		debug.SetMemoryLimit(limit)
		memLimit = config.Lookup("memory-limit").Text(s)
	} else {
		log.Debug("GOMEMLIMIT set in the environment: memory-limit ignored", "GOMEMLIMIT", memLimit)
	}
	return gcPercent, memLimit
}

// noMemoryLimit is the runtime's "no limit" (math.MaxInt64, the default
// of debug.SetMemoryLimit).
const noMemoryLimit = 1<<63 - 1
