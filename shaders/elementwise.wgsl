// elementwise: y[i] = EXPR for i < n, where EXPR reads the inputs at i.
// One template serves add, scale, axpy, fill, broadcast bias and ReLU
// forward and backward; the expression and input names are the
// specialisation. A broadcast input is read at (i / stride) % period: a per-column
// bias of a [rows, cols] matrix has stride 1, period cols; a per-channel bias
// of an NCHW tensor has stride H·W, period C. Large tensors are
// dispatched over x and y (65,535 workgroups per dimension), so the flat
// index is rebuilt from both. Tensors named in Halves are stored as f16
// (mixed precision): EXPR reads them widened to f32 (the caller writes
// f32(x[…])), computes in f32, and y is narrowed on store. Each workgroup
// covers WG·E consecutive elements, E steps of WG neighbouring ones (so a
// step's loads coalesce on GPUs and fill a CPU adapter's SIMD lanes): E > 1
// spends a workgroup's start-up cost, large on CPU adapters, on more data.
{{if .Halves}}enable f16;
{{end}}struct Params {
  n: u32,
  alpha: f32,
  stride: u32,
  period: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<{{elem .Halves "y"}}>;
{{range $i, $name := .Inputs}}@group(0) @binding({{add $i 2}}) var<storage, read> {{$name}}: array<{{elem $.Halves $name}}>;
{{end}}
// relu passes NaN on, as PyTorch's does: max(v, 0) would turn it into 0
// and hide a diverged network from the loss and its guard.
fn relu(v: f32) -> f32 {
  return select(v, 0.0, v < 0.0);
}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let first = (wid.x + wid.y * nwg.x) * {{mul .WG .E}}u + li;
  for (var k = 0u; k < {{.E}}u; k++) {
    let i = first + k * {{.WG}}u;
    if (i >= p.n) {
      return;
    }
    y[i] = {{elem .Halves "y"}}({{.Expr}});
  }
}
