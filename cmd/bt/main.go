// Command bt pretrains image encoders with Barlow Twins on any WebGPU
// adapter (Vulkan, Metal, DX12) and evaluates them.
//
//	bt demo               pretrain, evaluate against a random initialisation, show results
//	bt pretrain           pretrain a backbone with Barlow Twins
//	bt eval               kNN, linear probe, or features to .npy
//	bt devices            list adapters, show the chosen one, run a kernel self-check
//	bt bench              measure kernels against a CPU reference
//	bt serve              a local web page for runs: live curves, heat maps, neighbours
//	bt version            versions of bt, Go and wgpu-native, and the build's parts
//
// Every subcommand takes -adapter (index or name substring; also
// $BT_ADAPTER), -backend (auto, vulkan, metal, dx12 or gl; also
// $BT_BACKEND) and -h for its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
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
	"tune":     {"time kernel variants on the adapter and keep the fastest for later runs", runTune},
	"export":   {"write a checkpoint's backbone for PyTorch (safetensors) or ONNX Runtime (onnx)", runExport},
	"eval":     {"evaluate a backbone: weighted kNN, linear probe, or embed to .npy", runEval},
	"serve":    {"a local web page for runs: live curves, heat maps, overlays, nearest neighbours", runServe},
	"version":  {"print bt's version and commit, Go's, wgpu-native's and the build's optional parts", runVersion},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "bt — Barlow Twins self-supervised pretraining on any WebGPU adapter\n\nUsage: bt <command> [flags]\n\nCommands:\n")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'bt <command> -h' for a command's flags. Pick an adapter with -adapter or BT_ADAPTER (index or name substring), a native API with -backend or BT_BACKEND; BT_VERBOSE=1 shows driver logs.\n")
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func main() {
	quietDrivers()
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		if len(os.Args) < 2 {
			usage(os.Stderr)
			os.Exit(2)
		}
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bt: unknown command %q%s; 'bt -h' lists the commands\n", os.Args[1], suggest(os.Args[1], commandNames(), ""))
		os.Exit(2)
	}
	err := cmd.run(os.Args[2:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(os.Stdout, lastFlags)
	case errors.Is(err, errReported):
		os.Exit(1)
	case err != nil:
		fmt.Fprintf(os.Stderr, "bt %s: %v%s\n", os.Args[1], err, flagHint(err))
		if lastFlags != nil && isParseError(err) {
			fmt.Fprintf(os.Stderr, "Run 'bt %s -h' for its flags.\n", os.Args[1])
		}
		os.Exit(1)
	}
}

// errReported is the error of a command that has printed its error itself.
var errReported = errors.New("reported")

// lastFlags is the flag set of the command being run, for its help and
// for hints after a mistyped flag; groups orders its help.
var (
	lastFlags *flag.FlagSet
	groups    = map[*flag.FlagSet][]flagGroup{}
	synopses  = map[*flag.FlagSet]string{}
)

// newFlags returns a flag set for a subcommand with the flags every
// subcommand shares. It prints nothing itself: main prints an error first,
// with a hint, and the help (to stdout) only when asked for.
func newFlags(name, synopsis string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("bt "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	adapter := fs.String("adapter", "", "adapter index or name substring, used even where it fails the quick check (default $BT_ADAPTER, else the best adapter that passes it)")
	fs.Var(backendFlag{&backend}, "backend", "native API, also $BT_BACKEND: "+backendNames()+" (auto: Vulkan, Metal and DX12)")
	lastFlags = fs
	synopses[fs] = synopsis
	return fs, adapter
}

// setGroups orders a flag set's help under headings; flags in no group
// are listed last.
func setGroups(fs *flag.FlagSet, gs []flagGroup) { groups[fs] = gs }

// printHelp writes a command's synopsis and its flags, grouped.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	if fs == nil {
		usage(w)
		return
	}
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n", fs.Name(), synopses[fs])
	seen := map[string]bool{}
	show := func(f *flag.Flag) {
		seen[f.Name] = true
		name, usage := flag.UnquoteUsage(f)
		if p, ok := f.Value.(interface{ placeholder() string }); ok {
			name = p.placeholder() // flag calls every custom Value "value"
		}
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%-28s %s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	}
	for _, g := range groups[fs] {
		fmt.Fprintf(w, "\n%s:\n", strings.ToUpper(g.name[:1])+g.name[1:])
		for _, n := range g.flags {
			if f := fs.Lookup(n); f != nil && !seen[n] {
				show(f)
			}
		}
	}
	var rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			rest = append(rest, f)
		}
	})
	if len(rest) > 0 {
		if len(groups[fs]) > 0 {
			fmt.Fprintf(w, "\nOther:\n")
		} else {
			fmt.Fprintf(w, "\nFlags:\n")
		}
		for _, f := range rest {
			show(f)
		}
	}
}

// isParseError reports whether err came from the flag package.
func isParseError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "flag provided but not defined") || strings.HasPrefix(msg, "invalid value") ||
		strings.HasPrefix(msg, "invalid boolean") || strings.HasPrefix(msg, "flag needs an argument")
}

// flagHint suggests the flag a mistyped one was probably meant to be.
func flagHint(err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok || lastFlags == nil {
		return ""
	}
	var names []string
	lastFlags.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return suggest(strings.TrimLeft(name, "-"), names, "-")
}

// suggest is "; did you mean X?" for the closest of names within two
// edits of s, or "".
func suggest(s string, names []string, prefix string) string {
	best, dist := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < dist {
			best, dist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s%s?", prefix, best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
