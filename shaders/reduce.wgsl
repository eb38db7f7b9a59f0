// reduce: x is viewed as [A, B, C]; out[b] reduces x[a, b, c] over a and c.
// A column reduction of a [rows, cols] matrix is [rows, cols, 1], a row
// reduction is [1, rows, cols], and a per-channel reduction of an NCHW
// tensor is [N, C, H·W]. Each workgroup owns BX consecutive b; its BY
// threads per b stride over the A·C elements and meet in workgroup memory.
// With C = 1, BX = 32 makes neighbouring threads read neighbouring b, so the
// loads coalesce. MeanVar is two-pass (mean first, then the mean of squared
// deviations), which stays accurate where E[x²]−E[x]² cancels. X is x's
// element type: f16 for mixed precision's activations (a bias gradient's
// sum of dy), read as f32; the sums and outputs are f32.
{{if eq .X "f16"}}enable f16;
{{end}}{{template "enable" .}}struct Params {
  a: u32,
  b: u32,
  c: u32,
  beta: f32, // sums accumulate as out = beta·out + sum; beta 0 never reads out
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
{{if eq .Op "meanvar"}}@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<{{.X}}>;
{{else}}@group(0) @binding(2) var<storage, read> x: array<{{.X}}>;
{{end}}
{{template "total" (reduction "total" "add" "f32" .BX .BY .Subgroups)}}

@compute @workgroup_size({{mul .BX .BY}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}  let lid = vec2<u32>(li % {{.BX}}u, li / {{.BX}}u);
  let b = (wid.x + wid.y * nwg.x) * {{.BX}}u + lid.x;
  let inside = b < p.b;
  let count = p.a * p.c;
  var acc = 0.0;
  if (inside) {
    for (var t = lid.y; t < count; t += {{.BY}}u) {
      let v = f32(x[(t / p.c) * p.b * p.c + b * p.c + t % p.c]);
{{if eq .Op "sumsq"}}      acc += v * v;
{{else}}      acc += v;
{{end}}    }
  }
  let s = total(acc, lid.x, lid.y);
{{if eq .Op "meanvar"}}  let mean = s / f32(count);
  var dev = 0.0;
  if (inside) {
    for (var t = lid.y; t < count; t += {{.BY}}u) {
      let d = f32(x[(t / p.c) * p.b * p.c + b * p.c + t % p.c]) - mean;
      dev += d * d;
    }
  }
  let v = total(dev, lid.x, lid.y);
  if (inside && lid.y == 0u) {
    out[b] = mean;
    out2[b] = v / f32(count);
  }
{{else}}  if (inside && lid.y == 0u) {
{{if eq .Op "mean"}}    out[b] = s / f32(count);
{{else}}    var r = s;
    if (p.beta != 0.0) {
      r += p.beta * out[b];
    }
    out[b] = r;
{{end}}  }
{{end}}}
