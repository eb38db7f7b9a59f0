package pipeline

import (
	"os"
	"path/filepath"
)

// DefaultDir is where Open looks for a dataset when no directory is given:
// %ProgramData%\bt\datasets, the machine-wide data folder (Windows has no
// dataset packages to install into one; unpack a data set there as
// <name>\ or give its folder with -data-dir).
var DefaultDir = filepath.Join(programData(), "bt", "datasets")

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}
