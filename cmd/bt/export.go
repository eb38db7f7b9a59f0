package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
)

// exportFormats are bt export's -format values.
const (
	formatSafetensors = "safetensors"
	formatONNX        = "onnx"
)

func runExport(args []string) error {
	fs, adapter := newFlags("export", "Writes a checkpoint's backbone alone.\n\n"+
		"-format safetensors: torchvision's ResNet names with no prefix, for PyTorch: load it with load_state_dict(strict=False) (it has no fc layer).\n"+
		"-format onnx: the backbone in evaluation mode as an ONNX model (opset 17, dynamic batch), for ONNX Runtime, OpenVINO or TensorRT;\n"+
		"its metadata records the preprocessing (size, in_channels, mean, std). It needs no adapter.")
	ckpt := fs.String("checkpoint", "", "checkpoint from bt pretrain")
	format := fs.String("format", formatSafetensors, "safetensors (for PyTorch) or onnx")
	out := fs.String("out", "", "file to write (default backbone.safetensors or backbone.onnx)")
	bn := fs.String("batchnorm", string(onnx.FoldBN), "onnx: fold BatchNorm into the convolutions, or keep BatchNormalization nodes (nodes)")
	proj := fs.Bool("with-projector", false, "onnx: add the projector's output, embeddings, beside the representations (needs a checkpoint of bt pretrain)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bt export takes no arguments besides flags; got %q", fs.Args())
	}
	if *ckpt == "" {
		return errors.New("give -checkpoint, a file written by bt pretrain")
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	switch *format {
	case formatSafetensors:
		for _, name := range []string{"batchnorm", "with-projector"} {
			if explicit[name] {
				return fmt.Errorf("-%s applies to -format onnx only", name)
			}
		}
		if *out == "" {
			*out = "backbone.safetensors"
		}
		return exportSafetensors(*ckpt, *out, *adapter)
	case formatONNX:
		if explicit["adapter"] {
			return errors.New("-adapter: -format onnx runs nothing on an adapter")
		}
		if *out == "" {
			*out = "backbone.onnx"
		}
		return exportONNX(*ckpt, *out, onnx.Options{BatchNorm: onnx.BatchNorm(*bn), Projector: *proj})
	}
	return fmt.Errorf("-format %q: choose %s or %s", *format, formatSafetensors, formatONNX)
}

func exportSafetensors(ckpt, out, adapter string) error {
	d, err := openDevice(adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	c, err := train.LoadCheckpoint(ckpt)
	if err != nil {
		return err
	}
	m, err := c.Backbone(d)
	if err != nil {
		return err
	}
	defer m.Release()
	if err := train.ExportBackbone(out, m, c.Data); err != nil {
		return err
	}
	fmt.Printf("wrote %s: the %s backbone (%d-dim representation)\n", out, m.Config.Arch, m.Backbone.Dim)
	return nil
}

func exportONNX(ckpt, out string, opt onnx.Options) error {
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("-out %s: its directory does not exist", out)
	}
	c, err := train.LoadCheckpoint(ckpt)
	if err != nil {
		return err
	}
	if err := onnx.Write(out, c, opt); err != nil {
		return err
	}
	what := "representations"
	if opt.Projector {
		what += " and the projector's embeddings"
	}
	fmt.Printf("wrote %s: the %s backbone as ONNX (opset %d), images → %s\n", out, c.Model.Arch, onnx.Opset, what)
	return nil
}
