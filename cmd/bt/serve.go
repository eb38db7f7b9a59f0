package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/bt-org/bt/internal/serve"
)

// serveFlags is bt serve's command line: the server's options, where it
// listens, and the runs directory.
type serveFlags struct {
	opts serve.Options
	addr string
	mib  int
}

func parseServe(args []string) (serveFlags, error) {
	fs, adapter := newFlags("serve", "A local web page for the runs under RUNS_DIR (default runs): their states, live curves from metrics.jsonl,\nheat maps, runs overlaid, and what a checkpoint learned (nearest neighbours, a PCA map). Read-only;\nembeddings are cached in the user's cache directory.\n\n  bt serve [-addr 127.0.0.1:8080] [-images DIR] [RUNS_DIR]")
	var f serveFlags
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on: loopback unless -allow-remote")
	fs.BoolVar(&f.opts.AllowRemote, "allow-remote", false, "listen on a non-loopback -addr and answer requests for any host name: anyone who reaches it sees the runs")
	fs.StringVar(&f.opts.Images, "images", "", "a folder of your own images the neighbours page may embed besides a run's dataset")
	fs.StringVar(&f.opts.CacheDir, "cache", "", "where embeddings are cached (default: bt/embeddings in the user's cache directory)")
	fs.Var(intFlag{&f.mib, 1}, "max-file-mib", "largest file under RUNS_DIR served, in MiB")
	f.mib = serve.DefaultMaxFileBytes >> 20
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.opts.Root = "runs"
	switch fs.NArg() {
	case 0:
	case 1:
		f.opts.Root = fs.Arg(0)
	default:
		return f, fmt.Errorf("unexpected argument %q: serve takes one RUNS_DIR, after its flags", fs.Arg(1))
	}
	f.opts.Adapter = *adapter
	f.opts.MaxFileBytes = int64(f.mib) << 20
	return f, serve.CheckAddr(f.addr, f.opts.AllowRemote)
}

func runServe(args []string) error {
	f, err := parseServe(args)
	if err != nil {
		return err
	}
	s, err := serve.New(f.opts)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve.ListenAndServe(ctx, f.addr, f.opts.AllowRemote, s, func(a net.Addr) {
		fmt.Fprintf(os.Stderr, "serving the runs in %s at http://%s/ (Ctrl-C stops)\n", f.opts.Root, a)
	})
}
