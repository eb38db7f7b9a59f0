// rownorm: normalises each row of x [N, D] over its D features, or takes
// such a normalisation's gradient. Mode "l2" divides by the row's length
// (cosine similarity's normalisation); mode "std" subtracts the row's mean
// and divides by √(var + eps) (the loss ablation "normalisation along the
// feature dimension"). inv [N] keeps 1/‖x‖ or 1/√(var + eps) for the
// backward pass:
//   l2:  dx = inv·(dy − y·Σ(dy·y))
//   std: dx = inv·(dy − mean(dy) − y·mean(dy·y))
// One workgroup per row; its threads stride over the features.
{{template "enable" .}}struct Params {
  n: u32,
  d: u32,
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if .Backward}}@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> inv: array<f32>;
{{else}}@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> inv: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
{{end}}
{{template "total" (reduction "total" "add" "vec2<f32>" 1 .WG .Subgroups)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}  let row = wid.x + wid.y * nwg.x;
  // Every thread takes part in the reductions; a row past the end reads
  // the last row and writes nothing.
  let inside = row < p.n;
  let base = min(row, p.n - 1u) * p.d;
  let fd = f32(p.d);
{{if .Backward}}  var s = vec2<f32>(0.0);
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
    s += vec2<f32>(dy[base + j], dy[base + j] * y[base + j]);
  }
  let t = total(s, 0u, lid.x);
  let r = inv[min(row, p.n - 1u)];
  if (!inside) {
    return;
  }
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
{{if eq .Mode "l2"}}    dx[base + j] = r * (dy[base + j] - y[base + j] * t.y);
{{else}}    dx[base + j] = r * (dy[base + j] - t.x / fd - y[base + j] * t.y / fd);
{{end}}  }
{{else}}{{if eq .Mode "l2"}}  var q = vec2<f32>(0.0);
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
    q.x += x[base + j] * x[base + j];
  }
  let r = 1.0 / max(sqrt(total(q, 0u, lid.x).x), p.eps);
  let mean = 0.0;
{{else}}  var s = vec2<f32>(0.0);
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
    s.x += x[base + j];
  }
  let mean = total(s, 0u, lid.x).x / fd;
  var q = vec2<f32>(0.0);
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
    let e = x[base + j] - mean;
    q.x += e * e;
  }
  let r = 1.0 / sqrt(total(q, 0u, lid.x).x / fd + p.eps);
{{end}}  if (!inside) {
    return;
  }
  for (var j = lid.x; j < p.d; j += {{.WG}}u) {
    y[base + j] = (x[base + j] - mean) * r;
  }
  if (lid.x == 0u) {
    inv[row] = r;
  }
{{end}}}
