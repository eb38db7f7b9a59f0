// batchnorm_serial: BatchNorm's training and backward passes in the layout
// for CPU adapters, over x viewed as [N, C, HW] (see batchnorm for the
// arithmetic, which is the same).
//
// One invocation per workgroup walks the values of one channel in a chunk of
// p.rows images, row (image) by row. Its indices depend only on the
// workgroup and the loops, so every load is uniform: one load for all lanes,
// where the lanes of a wide workgroup would each cost a load of their own
// (adapters such as lavapipe run invocations as SIMD lanes and load lane by
// lane). A row of HW values is read as the vec4s that cover it, masked to
// the row, so rows of any length are read four values at a time; the vec4s
// a row shares with its neighbours' channels are written component by
// component. The chunks keep each invocation's loops within the limit of
// such adapters (gpu.MaxLoopSteps) and spread a channel over the cores.
//
// Workgroup g is chunk j = g mod p.chunks of channel b = g / p.chunks. Each
// pass is two dispatches: Pass 1 writes the chunk's partial results to
// partial[2g], partial[2g + 1]; Pass 2 merges the channel's chunks and
// writes the chunk's values.
//   train     1: d = mean of x − x₀ over the chunk and M2 = Σ((x − x₀) − d)²,
//                two passes over the chunk;
//             2: δ = Σ cnt·d / M and M2 = Σ M2 + cnt·(d − δ)² over the
//                chunks (Chan, Golub and LeVeque's merge, as stable as two
//                passes over the whole channel), y, and in chunk 0 the
//                cache and running statistics.
//   backward  1: Σdy and Σdy·((x − x₀) − δ) over the chunk;
//             2: their sums over the chunks, dx, and in chunk 0 dγ and dβ.
// With ReLU, dy is first taken back through the fused ReLU (see batchnorm).
// Summing row by row keeps the rounding of long sums to that of a row plus
// the rows of a chunk. With Half the data tensors are stored as f16 (S
// their scalar type), widened on load and narrowed on store; everything
// else is f32 (mixed precision).
{{if .Half}}enable f16;
{{end}}struct Params {
  n: u32,
  c: u32,
  hw: u32,
  eps: f32,
  momentum: f32,
  rows: u32,
  chunks: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if eq .Mode "train"}}{{if eq .Pass 1}}@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<{{.S}}>>;
{{else}}@group(0) @binding(1) var<storage, read_write> y: array<vec4<{{.S}}>>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> run_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> run_var: array<f32>;
@group(0) @binding(5) var<storage, read> x: array<vec4<{{.S}}>>;
@group(0) @binding(6) var<storage, read> partial: array<f32>;
{{if .Affine}}@group(0) @binding(7) var<storage, read> gamma: array<f32>;
@group(0) @binding(8) var<storage, read> beta: array<f32>;
{{end}}{{end}}{{else}}{{if eq .Pass 1}}@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<vec4<{{.S}}>>;
@group(0) @binding(3) var<storage, read> x: array<vec4<{{.S}}>>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
{{if and .ReLU .Affine}}@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
{{end}}{{else}}@group(0) @binding(1) var<storage, read_write> dx: array<vec4<{{.S}}>>;
{{if .Affine}}@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<vec4<{{.S}}>>;
@group(0) @binding(5) var<storage, read> x: array<vec4<{{.S}}>>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read> partial: array<f32>;
@group(0) @binding(8) var<storage, read> gamma: array<f32>;
{{if .ReLU}}@group(0) @binding(9) var<storage, read> beta: array<f32>;
{{end}}{{else}}@group(0) @binding(2) var<storage, read> dy: array<vec4<{{.S}}>>;
@group(0) @binding(3) var<storage, read> x: array<vec4<{{.S}}>>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> partial: array<f32>;
{{end}}{{end}}{{end}}
{{if or (eq .Pass 2) (and (eq .Mode "backward") .ReLU)}}{{template "bn" (.Steps "vec4<f32>" (eq .Pass 2))}}{{end}}

// inrow masks the components of the q-th vec4 that lie in [lo, hi).
fn inrow(q: u32, lo: u32, hi: u32) -> vec4<bool> {
  let i = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
  return i >= vec4<u32>(lo) & i < vec4<u32>(hi);
}

fn hsum(v: vec4<f32>) -> f32 {
  return dot(v, vec4<f32>(1.0));
}

// quad is the index of the vec4 that holds element k.
fn quad(k: u32) -> u32 {
  return k / 4u;
}

// count is how many values chunk j of a channel holds.
fn count(j: u32) -> f32 {
  return f32((min((j + 1u) * p.rows, p.n) - j * p.rows) * p.hw);
}
{{if eq .Pass 2}}{{if eq .Mode "train"}}
fn normalise(v: vec4<f32>, x0: f32, delta: f32, scale: f32, shift: f32) -> vec4<f32> {
  return act(((v - x0) - delta) * scale + shift);
}
{{else}}
fn grad_in(gy: vec4<f32>, v: vec4<f32>, x0: f32, delta: f32, invstd: f32, scale: f32, shift: f32, mdy: f32, mdyx: f32) -> vec4<f32> {
  let g = passed(gy, ((v - x0) - delta) * scale + shift);
  return scale * (g - mdy - ((v - x0) - delta) * invstd * mdyx);
}
{{end}}{{end}}
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.c * p.chunks) {
    return;
  }
  let b = g / p.chunks;
  let j = g % p.chunks;
  // Row lo..lo + HW is channel b of one image; rows are C·HW apart.
  let row = p.c * p.hw;
  let first = min(j * p.rows, p.n) * row + b * p.hw;
  let last = min((j + 1u) * p.rows, p.n) * row;
{{if eq .Mode "train"}}  let x0 = f32(x[quad(b * p.hw)][b * p.hw % 4u]);
{{if eq .Pass 1}}  var sum = 0.0;
  for (var lo = first; lo < last; lo += row) {
    let hi = lo + p.hw;
    var s = vec4<f32>(0.0);
    for (var q = lo / 4u; q < (hi + 3u) / 4u; q++) {
      s += select(vec4<f32>(0.0), vec4<f32>(x[q]) - x0, inrow(q, lo, hi));
    }
    sum += hsum(s);
  }
  let d = sum / count(j);
  var m2 = 0.0;
  for (var lo = first; lo < last; lo += row) {
    let hi = lo + p.hw;
    var s = vec4<f32>(0.0);
    for (var q = lo / 4u; q < (hi + 3u) / 4u; q++) {
      let e = select(vec4<f32>(0.0), (vec4<f32>(x[q]) - x0) - d, inrow(q, lo, hi));
      s += e * e;
    }
    m2 += hsum(s);
  }
  partial[2u * g] = d;
  partial[2u * g + 1u] = m2;
{{else}}  let m = f32(p.n * p.hw);
  var sum = 0.0;
  for (var i = 0u; i < p.chunks; i++) {
    sum += count(i) * partial[2u * (b * p.chunks + i)];
  }
  let delta = sum / m;
  var m2 = 0.0;
  for (var i = 0u; i < p.chunks; i++) {
    let e = partial[2u * (b * p.chunks + i)] - delta;
    m2 += partial[2u * (b * p.chunks + i) + 1u] + count(i) * e * e;
  }
  let variance = m2 / m;
  let invstd = inverseSqrt(variance + p.eps);
  let scale = scale_of(b, invstd);
  let shift = shift_of(b);
  for (var lo = first; lo < last; lo += row) {
    let hi = lo + p.hw;
    let q0 = (lo + 3u) / 4u;
    let q1 = hi / 4u;
    for (var k = lo; k < min(hi, 4u * q0); k++) {
      y[quad(k)][k % 4u] = {{.S}}(normalise(vec4<f32>(f32(x[quad(k)][k % 4u])), x0, delta, scale, shift).x);
    }
    for (var q = q0; q < q1; q++) {
      y[q] = vec4<{{.S}}>(normalise(vec4<f32>(x[q]), x0, delta, scale, shift));
    }
    for (var k = max(4u * q1, 4u * q0); k < hi; k++) {
      y[quad(k)][k % 4u] = {{.S}}(normalise(vec4<f32>(f32(x[quad(k)][k % 4u])), x0, delta, scale, shift).x);
    }
  }
  if (j == 0u) {
    keep(b, x0, delta, variance, invstd, m);
  }
{{end}}{{else}}  let x0 = stats[b];
  let delta = stats[p.c + b];
  let invstd = stats[2u * p.c + b];
{{if or .ReLU (eq .Pass 2)}}  let scale = scale_of(b, invstd);
  let shift = {{if .ReLU}}shift_of(b){{else}}0.0{{end}};
{{end}}{{if eq .Pass 1}}  var sdy = 0.0;
  var sdyx = 0.0;
  for (var lo = first; lo < last; lo += row) {
    let hi = lo + p.hw;
    var s = vec4<f32>(0.0);
    var sx = vec4<f32>(0.0);
    for (var q = lo / 4u; q < (hi + 3u) / 4u; q++) {
{{if .ReLU}}      let e = select(vec4<f32>(0.0), passed(vec4<f32>(dy[q]), ((vec4<f32>(x[q]) - x0) - delta) * scale + shift), inrow(q, lo, hi));
{{else}}      let e = select(vec4<f32>(0.0), vec4<f32>(dy[q]), inrow(q, lo, hi));
{{end}}
      s += e;
      sx += e * ((vec4<f32>(x[q]) - x0) - delta);
    }
    sdy += hsum(s);
    sdyx += hsum(sx);
  }
  partial[2u * g] = sdy;
  partial[2u * g + 1u] = sdyx;
{{else}}  let m = f32(p.n * p.hw);
  var sdy = 0.0;
  var sdyx = 0.0;
  for (var i = 0u; i < p.chunks; i++) {
    sdy += partial[2u * (b * p.chunks + i)];
    sdyx += partial[2u * (b * p.chunks + i) + 1u];
  }
  sdyx *= invstd;
  let mdy = sdy / m;
  let mdyx = sdyx / m;
  for (var lo = first; lo < last; lo += row) {
    let hi = lo + p.hw;
    let q0 = (lo + 3u) / 4u;
    let q1 = hi / 4u;
    for (var k = lo; k < min(hi, 4u * q0); k++) {
      dx[quad(k)][k % 4u] = {{.S}}(grad_in(vec4<f32>(f32(dy[quad(k)][k % 4u])), vec4<f32>(f32(x[quad(k)][k % 4u])), x0, delta, invstd, scale, shift, mdy, mdyx).x);
    }
    for (var q = q0; q < q1; q++) {
      dx[q] = vec4<{{.S}}>(grad_in(vec4<f32>(dy[q]), vec4<f32>(x[q]), x0, delta, invstd, scale, shift, mdy, mdyx));
    }
    for (var k = max(4u * q1, 4u * q0); k < hi; k++) {
      dx[quad(k)][k % 4u] = {{.S}}(grad_in(vec4<f32>(f32(dy[quad(k)][k % 4u])), vec4<f32>(f32(x[quad(k)][k % 4u])), x0, delta, invstd, scale, shift, mdy, mdyx).x);
    }
  }
  if (j == 0u) {
    grads(b, sdy, sdyx);
  }
{{end}}{{end}}}
