// batchnorm_sync: the passes of a BatchNorm whose statistics span several
// processes (synchronised BatchNorm, layers.BatchNorm.Sync), over x viewed
// as [N, C, HW], one workgroup of WG threads per channel b for the sums.
// Between the passes the host combines every rank's sums (package dist);
// the forward's normalisation is then the eval mode of batchnorm with the
// global statistics in place of the running ones. Mode picks the pass:
//   stats  this rank's mean and M2 = Σ(x − mean)², from sums of x − x₀ and
//          of the squared deviations (two passes over x, so a large common
//          offset does not cancel): stats[b] = mean, stats[C+b] = M2.
//   grad   this rank's Σdy and Σdy·x̂, x̂ = (x − mean)·invstd from the
//          forward's cache (mean as x₀ + δ, then invstd, as batchnorm
//          keeps it), into sums[b] and sums[C+b]; dγ += Σdy·x̂ and
//          dβ += Σdy, this rank's share of the parameters' gradients.
//   apply  with the sums over every rank, elementwise:
//          dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M), M = p.m, every rank's
//          count of values per channel.
// With ReLU the gradient is dy where y = γ·x̂ + β > 0 and 0 elsewhere, as
// in batchnorm's backward. Without Affine, γ = 1 and β = 0 and their
// buffers are not bound. With Half, x, dy and dx are stored as f16 (S),
// widened on load and narrowed on store; sums and statistics stay f32.
{{if .Half}}enable f16;
{{end}}struct Params {
  n: u32,
  c: u32,
  hw: u32,
  m: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if eq .Mode "stats"}}@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<{{.S}}>;
{{else if eq .Mode "grad"}}@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
{{if .Affine}}@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<{{.S}}>;
@group(0) @binding(5) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(6) var<storage, read> cache: array<f32>;
{{if .ReLU}}@group(0) @binding(7) var<storage, read> gamma: array<f32>;
@group(0) @binding(8) var<storage, read> beta: array<f32>;
{{end}}{{else}}@group(0) @binding(2) var<storage, read> dy: array<{{.S}}>;
@group(0) @binding(3) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(4) var<storage, read> cache: array<f32>;
{{end}}{{else}}@group(0) @binding(1) var<storage, read_write> dx: array<{{.S}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{.S}}>;
@group(0) @binding(3) var<storage, read> x: array<{{.S}}>;
@group(0) @binding(4) var<storage, read> cache: array<f32>;
@group(0) @binding(5) var<storage, read> sums: array<f32>;
{{if .Affine}}@group(0) @binding(6) var<storage, read> gamma: array<f32>;
{{if .ReLU}}@group(0) @binding(7) var<storage, read> beta: array<f32>;
{{end}}{{end}}{{end}}{{if ne .Mode "stats"}}
// xhat is f32(x[k])'s normalised value in channel b.
fn xhat(k: u32, b: u32) -> f32 {
  return ((f32(x[k]) - cache[b]) - cache[p.c + b]) * cache[2u * p.c + b];
}

// grad is the gradient reaching BatchNorm's output at k: dy, or, with a
// fused ReLU, dy where the output was positive.
fn grad(k: u32, b: u32) -> f32 {
{{if .ReLU}}{{if .Affine}}  let y = gamma[b] * xhat(k, b) + beta[b];
{{else}}  let y = xhat(k, b);
{{end}}  return select(0.0, f32(dy[k]), y > 0.0);
{{else}}  return f32(dy[k]);
{{end}}}
{{end}}
{{if eq .Mode "apply"}}
@compute @workgroup_size({{.WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * {{.WG}}u;
  if (k >= p.n * p.c * p.hw) {
    return;
  }
  let b = (k / p.hw) % p.c;
{{if .Affine}}  let g = gamma[b];
{{else}}  let g = 1.0;
{{end}}  dx[k] = {{.S}}(g * cache[2u * p.c + b] * (grad(k, b) - sums[b] / p.m - xhat(k, b) * sums[p.c + b] / p.m));
}
{{else}}
{{template "total" (reduction "total" "add" "vec2<f32>" 1 .WG false)}}

// at is the index of the i-th value of channel b.
fn at(i: u32, b: u32) -> u32 {
  return (i / p.hw) * p.c * p.hw + b * p.hw + i % p.hw;
}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= p.c) {
    return; // the whole workgroup: b is uniform
  }
  let t = lid.x;
  let count = p.n * p.hw;
{{if eq .Mode "stats"}}  let x0 = f32(x[b * p.hw]);
  var s = 0.0;
  for (var i = t; i < count; i += {{.WG}}u) {
    s += f32(x[at(i, b)]) - x0;
  }
  let delta = total(vec2<f32>(s, 0.0), 0u, t).x / f32(count);
  var q = 0.0;
  for (var i = t; i < count; i += {{.WG}}u) {
    let d = (f32(x[at(i, b)]) - x0) - delta;
    q += d * d;
  }
  let m2 = total(vec2<f32>(q, 0.0), 0u, t).x;
  if (t == 0u) {
    stats[b] = x0 + delta;
    stats[p.c + b] = m2;
  }
{{else}}  var s = vec2<f32>(0.0);
  for (var i = t; i < count; i += {{.WG}}u) {
    let k = at(i, b);
    let g = grad(k, b);
    s += vec2<f32>(g, g * xhat(k, b));
  }
  let r = total(s, 0u, t);
  if (t == 0u) {
    sums[b] = r.x;
    sums[p.c + b] = r.y;
{{if .Affine}}    dbeta[b] += r.x;
    dgamma[b] += r.y;
{{end}}  }
{{end}}}
{{end}}
