package main

import (
	"errors"
	"fmt"

	"github.com/bt-org/bt/bt/train"
)

func runExport(args []string) error {
	fs, adapter := newFlags("export", "Writes a checkpoint's backbone alone, with torchvision's ResNet names and no prefix, as safetensors:\nPyTorch users load it with load_state_dict(strict=False) (it has no fc layer).")
	ckpt := fs.String("checkpoint", "", "checkpoint from bt pretrain")
	out := fs.String("out", "backbone.safetensors", "file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ckpt == "" {
		return errors.New("give -checkpoint, a file written by bt pretrain")
	}
	d, err := openDevice(*adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	c, err := train.LoadCheckpoint(*ckpt)
	if err != nil {
		return err
	}
	m, err := c.Backbone(d)
	if err != nil {
		return err
	}
	defer m.Release()
	if err := train.ExportBackbone(*out, m, c.Data); err != nil {
		return err
	}
	fmt.Printf("wrote %s: the %s backbone (%d-dim representation)\n", *out, m.Config.Arch, m.Backbone.Dim)
	return nil
}
