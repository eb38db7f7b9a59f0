// batchnorm: BatchNorm over x viewed as [N, C, HW] (NCHW, or [N, C] with
// HW = 1), one channel per slice b, in the layout for GPUs (CPU adapters
// get batchnorm_serial). Mode picks the pass:
//   train     batch statistics: mean, then biased variance from the squared
//             deviations (two passes over x, so a large common offset does
//             not cancel as in E[x²]−E[x]²), y = γ·(x−mean)·invstd + β;
//             the running statistics move by momentum towards the batch
//             mean and the UNBIASED batch variance, as in PyTorch.
//             The mean is kept as x₀ + δ, x₀ the channel's first value:
//             sums of x − x₀ stay near the data's spread rather than its
//             offset, and x − x₀ is exact for x within a factor of two of
//             x₀, so (x − x₀) − δ is accurate relative to the spread, where
//             x − mean, with the mean rounded to float32, would carry up to
//             half an ulp of the offset. stats[b] = x₀, stats[C+b] = δ and
//             stats[2C+b] = invstd are kept for backward.
//   eval      running statistics, elementwise over all of x.
//   With ReLU the output is max(y, 0), and backward takes the gradient of
//   that output, zero where y ≤ 0: y is worked out again from x and the
//   statistics with the forward's expression, so no output is kept.
//   backward  sums Σdy and Σdy·x̂ over the channel, then
//             dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M), M = N·HW;
//             dγ += Σdy·x̂ and dβ += Σdy.
// In train and backward each workgroup owns BX channels, BY threads per
// channel striding over its M values in memory order; they meet in workgroup
// memory. With HW = 1, BX = 32 makes neighbouring threads read neighbouring
// channels; otherwise BX = 1 and neighbouring threads read neighbouring HW
// positions, so the loads coalesce either way. A workgroup reads its
// channel two (train: three) times and writes it once, all in one dispatch.
// With V = 4 (HW a multiple of 4) the data tensors are read and written as
// vec4, four neighbouring positions per thread and step, and the sizes in
// Params count vec4s along HW: CPU adapters load storage lane by lane, so
// each vec4 costs one such load instead of four.
// Without Affine, γ = 1 and β = 0 and their buffers are not bound.
// With Half the data tensors (x, y, dy, dx) are stored as f16, S being
// their element type: loads widen to T, all arithmetic and the statistics
// stay f32, stores narrow (mixed precision).
{{if .Half}}enable f16;
{{end}}{{if ne .Mode "eval"}}{{template "enable" .}}{{end}}struct Params {
  n: u32,
  c: u32,
  hw: u32,
  eps: f32,
  momentum: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if eq .Mode "train"}}@group(0) @binding(1) var<storage, read_write> y: array<{{.S}}>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> run_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> run_var: array<f32>;
@group(0) @binding(5) var<storage, read> x: array<{{.S}}>;
{{if .Affine}}@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
{{end}}{{else if eq .Mode "eval"}}@group(0) @binding(1) var<storage, read_write> y: array<{{.S}}>;
@group(0) @binding(2) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(3) var<storage, read> run_mean: array<f32>;
@group(0) @binding(4) var<storage, read> run_var: array<f32>;
{{if .Affine}}@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
{{end}}{{else}}@group(0) @binding(1) var<storage, read_write> dx: array<{{.S}}>;
{{if .Affine}}@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<{{.S}}>;
@group(0) @binding(5) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read> gamma: array<f32>;
{{if .ReLU}}@group(0) @binding(8) var<storage, read> beta: array<f32>;
{{end}}{{else}}@group(0) @binding(2) var<storage, read> dy: array<{{.S}}>;
@group(0) @binding(3) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
{{end}}{{end}}
{{if eq .Mode "eval"}}
{{template "bn" (.Steps "f32" false)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * {{.WG}}u;
  if (i >= p.n * p.c * p.hw) {
    return;
  }
  let b = (i / p.hw) % p.c;
  let scale = inverseSqrt(run_var[b] + p.eps);
{{if .Affine}}  y[i] = {{.S}}(act(gamma[b] * (f32(x[i]) - run_mean[b]) * scale + beta[b]));
{{else}}  y[i] = {{.S}}(act((f32(x[i]) - run_mean[b]) * scale));
{{end}}}
{{else}}

// hsum adds up the V values a thread holds.
fn hsum(v: {{.T}}) -> f32 {
{{if eq .V 4}}  return dot(v, vec4<f32>(1.0));
{{else}}  return v;
{{end}}}

{{template "total" (reduction "total" "add" "f32" .BX .BY .Subgroups)}}
{{template "bn" (.Steps .T true)}}

// Cursor walks the values of one channel in memory order, BY at a time:
// k is the index of the current value and pos its position within HW. It
// divides only where it starts, since integer division by a value known only
// at run time is slow on CPU adapters (scalarised lane by lane).
struct Cursor {
  k: u32,
  pos: u32,
}

// start is the cursor at the t-th value of channel b.
fn start(t: u32, b: u32) -> Cursor {
  return Cursor((t / p.hw) * p.c * p.hw + b * p.hw + t % p.hw, t % p.hw);
}

// advance moves cur on by BY values: by dk in memory and dpos within HW,
// plus a row of channels when the position wraps.
fn advance(cur: Cursor, dk: u32, dpos: u32) -> Cursor {
  let pos = cur.pos + dpos;
  if (pos >= p.hw) {
    return Cursor(cur.k + dk + (p.c - 1u) * p.hw, pos - p.hw);
  }
  return Cursor(cur.k + dk, pos);
}

@compute @workgroup_size({{mul .BX .BY}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}  let lid = vec2<u32>(li % {{.BX}}u, li / {{.BX}}u);
  let b = (wid.x + wid.y * nwg.x) * {{.BX}}u + lid.x;
  let inside = b < p.c;
  let count = p.n * p.hw;
  let m = f32(count * {{.V}}u);
  let dpos = {{.BY}}u % p.hw;
  let dk = ({{.BY}}u / p.hw) * p.c * p.hw + dpos;
{{if eq .Mode "train"}}  var x0 = 0.0;
  var acc = {{.T}}(0.0);
  if (inside) {
    x0 = f32(x[b * p.hw]{{if eq .V 4}}.x{{end}});
    var cur = start(lid.y, b);
    for (var t = lid.y; t < count; t += {{.BY}}u) {
      acc += {{.T}}(x[cur.k]) - x0;
      cur = advance(cur, dk, dpos);
    }
  }
  let delta = total(hsum(acc), lid.x, lid.y) / m;
  var dev = {{.T}}(0.0);
  if (inside) {
    var cur = start(lid.y, b);
    for (var t = lid.y; t < count; t += {{.BY}}u) {
      let d = ({{.T}}(x[cur.k]) - x0) - delta;
      dev += d * d;
      cur = advance(cur, dk, dpos);
    }
  }
  let variance = total(hsum(dev), lid.x, lid.y) / m;
  if (!inside) {
    return;
  }
  let invstd = inverseSqrt(variance + p.eps);
  let scale = scale_of(b, invstd);
  let shift = shift_of(b);
  var cur = start(lid.y, b);
  for (var t = lid.y; t < count; t += {{.BY}}u) {
    y[cur.k] = {{.S}}(act((({{.T}}(x[cur.k]) - x0) - delta) * scale + shift));
    cur = advance(cur, dk, dpos);
  }
  if (lid.y == 0u) {
    keep(b, x0, delta, variance, invstd, m);
  }
{{else}}  var x0 = 0.0;
  var delta = 0.0;
  var invstd = 0.0;
  var scale = 0.0;
  var shift = 0.0;
  var vdy = {{.T}}(0.0);
  var vdyx = {{.T}}(0.0);
  if (inside) {
    x0 = stats[b];
    delta = stats[p.c + b];
    invstd = stats[2u * p.c + b];
    scale = scale_of(b, invstd);
{{if .ReLU}}    shift = shift_of(b);
{{end}}    var cur = start(lid.y, b);
    for (var t = lid.y; t < count; t += {{.BY}}u) {
      let xk = {{.T}}(x[cur.k]);
      let g = passed({{.T}}(dy[cur.k]), ((xk - x0) - delta) * scale + shift);
      vdy += g;
      vdyx += g * ((xk - x0) - delta) * invstd;
      cur = advance(cur, dk, dpos);
    }
  }
  let sdy = total(hsum(vdy), lid.x, lid.y);
  let sdyx = total(hsum(vdyx), lid.x, lid.y);
  if (!inside) {
    return;
  }
  let mdy = sdy / m;
  let mdyx = sdyx / m;
  var cur = start(lid.y, b);
  for (var t = lid.y; t < count; t += {{.BY}}u) {
    let k = cur.k;
    let xk = {{.T}}(x[k]);
    let g = passed({{.T}}(dy[k]), ((xk - x0) - delta) * scale + shift);
    dx[k] = {{.S}}(scale * (g - mdy - ((xk - x0) - delta) * invstd * mdyx));
    cur = advance(cur, dk, dpos);
  }
  if (lid.y == 0u) {
    grads(b, sdy, sdyx);
  }
{{end}}}
{{end}}
