package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Fingerprint describes a dataset's contents: its class names, how many
// images each holds, and a hash of its file list (each image's name,
// relative to the dataset's root, and label, in order). Ranks compare it
// before training together, checkpoints record it, and evaluation checks
// its class names against the training labels'.
type Fingerprint struct {
	Images  int      `json:"images"`
	Classes []string `json:"classes,omitempty"`
	Counts  []int    `json:"counts,omitempty"` // images per class, in Classes' order
	Files   string   `json:"files"`            // "sha256:" and the hash of the list
}

// FingerprintOf describes ds. A dataset without files (Synthetic, a
// decoded IDX or CIFAR file) is listed by its indices and labels.
func FingerprintOf(ds Dataset) Fingerprint {
	fp := Fingerprint{Images: ds.Len(), Classes: slices.Clone(ds.ClassNames())}
	if len(fp.Classes) > 0 {
		fp.Counts = make([]int, len(fp.Classes))
	}
	h := sha256.New()
	var num [8]byte
	folder, _ := ds.(*Folder)
	for i := range ds.Len() {
		l := ds.Label(i)
		if l >= 0 && l < len(fp.Counts) {
			fp.Counts[l]++
		}
		if folder != nil {
			rel, err := filepath.Rel(folder.root, folder.files[i])
			if err != nil {
				rel = folder.files[i]
			}
			h.Write([]byte(filepath.ToSlash(rel)))
			h.Write([]byte{0})
		}
		binary.LittleEndian.PutUint64(num[:], uint64(int64(l)))
		h.Write(num[:])
	}
	fp.Files = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return fp
}

// Diff names how other differs from fp ("" when it does not), for an
// error that says what changed.
func (fp Fingerprint) Diff(other Fingerprint) string {
	var d []string
	if fp.Images != other.Images {
		d = append(d, fmt.Sprintf("%d images against %d", other.Images, fp.Images))
	}
	if !slices.Equal(fp.Classes, other.Classes) {
		d = append(d, fmt.Sprintf("classes %s against %s", nameList(other.Classes), nameList(fp.Classes)))
	} else if !slices.Equal(fp.Counts, other.Counts) {
		d = append(d, fmt.Sprintf("images per class %v against %v", other.Counts, fp.Counts))
	}
	if len(d) == 0 && fp.Files != other.Files {
		d = append(d, "other files of the same number and classes")
	}
	return strings.Join(d, ", ")
}

// nameList shows up to 5 names.
func nameList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 5 {
		return fmt.Sprintf("%s… (%d)", strings.Join(names[:5], ", "), len(names))
	}
	return strings.Join(names, ", ")
}
