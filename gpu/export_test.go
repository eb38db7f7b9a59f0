package gpu

// StageConvTiles makes convolutions use the staged tiles that GPUs get on
// any adapter, until the returned function restores the default.
func StageConvTiles() (restore func()) {
	stagedConvTiles = true
	return func() { stagedConvTiles = false }
}
