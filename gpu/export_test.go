package gpu

// StageConvTiles makes convolutions use the staged tiles that GPUs get on
// any adapter, until the returned function restores the default.
func StageConvTiles() (restore func()) {
	stagedConvTiles = true
	return func() { stagedConvTiles = false }
}

// PerImageConv makes direct tiles run convolutions image by image, until
// the returned function restores the default.
func PerImageConv() (restore func()) {
	perImageConv = true
	return func() { perImageConv = false }
}
