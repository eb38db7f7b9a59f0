package gpu_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

func TestBackendText(t *testing.T) {
	for _, b := range gpu.Backends() {
		text, err := b.MarshalText()
		if err != nil {
			t.Fatalf("%v.MarshalText: %v", b, err)
		}
		var got gpu.Backend
		if err := got.UnmarshalText([]byte(strings.ToUpper(string(text)))); err != nil || got != b {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", strings.ToUpper(string(text)), got, err, b)
		}
	}
	for _, tc := range []struct {
		in   string
		want gpu.Backend
		err  string
	}{
		{"d3d12", gpu.BackendDX12, ""},
		{" Vulkan ", gpu.BackendVulkan, ""},
		{"", 0, `unknown backend ""`},
		{"directx", 0, "auto, vulkan, metal, dx12, gl"},
	} {
		var got gpu.Backend
		err := got.UnmarshalText([]byte(tc.in))
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("UnmarshalText(%q): error %v, want one containing %q", tc.in, err, tc.err)
		}
	}
	if _, err := gpu.Backend(99).MarshalText(); err == nil {
		t.Error("MarshalText of Backend(99) succeeded")
	}
}

// backendOf is the Backend that lists an adapter of info.Backend.
var backendOf = map[string]gpu.Backend{"Vulkan": gpu.BackendVulkan, "Metal": gpu.BackendMetal, "D3D12": gpu.BackendDX12}

// TestOpenBackend opens the default adapter through its own backend alone,
// refuses Metal where there is none and a bad $BT_BACKEND by name, and
// shows the setting in the report.
func TestOpenBackend(t *testing.T) {
	name := gputest.Device(t).Info
	b, ok := backendOf[name.Backend]
	if !ok {
		t.Fatalf("default adapter %s has a backend outside Vulkan, Metal and DX12", name)
	}
	d, err := gpu.Open(gpu.Options{Backend: b})
	if err != nil {
		t.Fatalf("Open with backend %v: %v", b, err)
	}
	if d.Info.Backend != name.Backend || d.Backend != b {
		t.Errorf("Open with backend %v opened %s (Backend %v)", b, d.Info, d.Backend)
	}
	if rep := d.Report(); !strings.Contains(rep, "backend  "+b.String()) {
		t.Errorf("report does not name backend %v:\n%s", b, rep)
	}
	d.Release()
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		d, err := gpu.Open(gpu.Options{Backend: gpu.BackendMetal})
		if err == nil {
			d.Release()
			t.Fatalf("Open with backend metal on %s succeeded", runtime.GOOS)
		}
		if !strings.Contains(err.Error(), "backend metal") {
			t.Errorf("Open with backend metal: error %q does not name the backend", err)
		}
	}
	t.Setenv("BT_BACKEND", "directx")
	if d, err := gpu.Open(gpu.Options{}); err == nil || !strings.Contains(err.Error(), "$BT_BACKEND") {
		if d != nil {
			d.Release()
		}
		t.Errorf("Open with BT_BACKEND=directx: error %v, want one naming $BT_BACKEND", err)
	}
	if _, err := gpu.Adapters(); err == nil || !strings.Contains(err.Error(), "$BT_BACKEND") {
		t.Errorf("Adapters with BT_BACKEND=directx: error %v, want one naming $BT_BACKEND", err)
	}
}

// TestOpenSkipsRefusingAdapter makes the adapter Open would choose refuse
// every pipeline, as Wine's DX12 does (its HLSL compiler is missing). Open
// must pass over it, naming it and the reason: to the next adapter where
// there is one, to an error where there is none. Naming it with -adapter
// still opens it, and its kernels then fail with the pipeline's error.
func TestOpenSkipsRefusingAdapter(t *testing.T) {
	t.Setenv("BT_ADAPTER", "") // Open reads "" as unset
	first := gputest.Device(t).Info
	infos, err := gpu.Adapters()
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, a := range infos {
		if !strings.Contains(a.Name, first.Name) {
			others++
		}
	}
	d, err := gpu.Open(gpu.RefusePipelines(gpu.Options{}, first.Name))
	switch {
	case others == 0 && err == nil:
		d.Release()
		t.Fatalf("Open chose %s, whose pipelines all fail", d.Info)
	case others == 0:
		for _, want := range []string{"quick check", first.String(), "refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open's error %q lacks %q", err, want)
			}
		}
	case err != nil:
		t.Fatalf("Open with %d other adapter(s): %v", others, err)
	default:
		if strings.Contains(d.Info.Name, first.Name) || len(d.Skipped) == 0 || d.Skipped[0].Adapter.Name != first.Name ||
			!strings.Contains(d.Skipped[0].Err.Error(), "refused") {
			t.Errorf("Open chose %s, skipping %v; want %s skipped for its refused pipelines", d.Info, d.Skipped, first)
		}
		if rep := d.Report(); !strings.Contains(rep, "skipped  "+first.String()) {
			t.Errorf("report does not name the skipped adapter:\n%s", rep)
		}
		d.Release()
	}

	forced, err := gpu.Open(gpu.RefusePipelines(gpu.Options{Adapter: first.Name}, first.Name))
	if err != nil {
		t.Fatalf("Open forced onto %s: %v", first.Name, err)
	}
	defer forced.Release()
	if forced.Info.Name != first.Name || len(forced.Skipped) != 0 {
		t.Errorf("Open forced onto %s opened %s, skipping %v", first.Name, forced.Info, forced.Skipped)
	}
	x, err := forced.NewTensor(3)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	if err := forced.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, x, 1) }); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Fill on the refusing adapter: error %v, want the refused pipeline's", err)
	}
}
