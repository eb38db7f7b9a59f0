// Command bt pretrains image encoders with Barlow Twins on any WebGPU
// adapter (Vulkan, Metal, DX12) and evaluates them.
//
//	bt demo               pretrain, evaluate against a random initialisation, show results
//	bt pretrain           pretrain a backbone with Barlow Twins
//	bt eval               kNN, linear probe, or features to .npy
//	bt devices            list adapters, show the chosen one, run a kernel self-check
//	bt bench              measure kernels against a CPU reference
//
// Every subcommand takes -adapter (index or name substring; also
// $BT_ADAPTER) and -h for its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"ablate":   {"run one of the paper's ablation studies as a grid of short runs", runAblate},
	"demo":     {"the whole job: pretrain on Fashion-MNIST, evaluate against a random initialisation, show results", runDemo},
	"devices":  {"list adapters, describe the chosen one and run a kernel self-check", runDevices},
	"bench":    {"measure GEMM GFLOP/s on the adapter beside gonum's CPU BLAS", runBench},
	"pretrain": {"pretrain a backbone with Barlow Twins", runPretrain},
	"export":   {"write a checkpoint's backbone with torchvision's names, for PyTorch", runExport},
	"eval":     {"evaluate a backbone: weighted kNN, linear probe, or embed to .npy", runEval},
}

func usage() {
	fmt.Fprintf(os.Stderr, "bt — Barlow Twins self-supervised pretraining on any WebGPU adapter\n\nUsage: bt <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'bt <command> -h' for a command's flags. Pick an adapter with -adapter or BT_ADAPTER (index or name substring); BT_VERBOSE=1 shows driver logs.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bt: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "bt %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// newFlags returns a flag set for a subcommand with the flags every
// subcommand shares.
func newFlags(name, synopsis string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("bt "+name, flag.ContinueOnError)
	adapter := fs.String("adapter", "", "adapter index or name substring (default $BT_ADAPTER, else the best adapter)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bt %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs, adapter
}
