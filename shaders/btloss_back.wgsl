// btloss_back: the Barlow Twins loss's backward pass from dẐ to dZ, for both
// views at once. On entry g_a, g_b [N, D] hold (2·s·λ/N)·Ẑ_B·Cᵀ and
// (2·s·λ/N)·Ẑ_A·C, the gradient dL/dẐ would have if every entry of C were
// weighed as the off-diagonal ones are; either path gets them from a GEMM.
// The diagonal's difference is added here, in O(N·D): dL/dC_ii is
// 2·s·w·(C_ii − 1) for the invariance term's weight w, so with
// h_i = −2·s·(w·gap_i + λ·(1 − gap_i)), gap_i = 1 − C_ii
// from btloss_norm, dẑ_a[n, i] = g_a[n, i] + h_i·ẑ_b[n, i]/N and
// dẑ_b[n, i] = g_b[n, i] + h_i·ẑ_a[n, i]/N. Then BatchNorm's backward,
// dz = (dẑ − mean(dẑ) − ẑ·mean(dẑ·ẑ))/√(σ² + ε), overwrites g_a and g_b
// (mean(dẑ) is 0 in exact arithmetic, since every column of Ẑ sums to 0;
// subtracting it removes the rounding residue at no cost, as BatchNorm's
// gradient must have a zero batch mean):
// a workgroup owns whole columns, and every read of a column precedes the
// barrier in total(), so writing in place is safe.
struct Params {
  n: u32,
  d: u32,
  lambda: f32,
  scale: f32,
  ondiag: f32, // weight of the invariance term: 1, or 0 for the redundancy-only ablation
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> g_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> g_b: array<f32>;
@group(0) @binding(3) var<storage, read> h_a: array<f32>;
@group(0) @binding(4) var<storage, read> h_b: array<f32>;
@group(0) @binding(5) var<storage, read> inv: array<f32>;
@group(0) @binding(6) var<storage, read> gap: array<f32>;

{{template "total" (reduction "total" "add" "vec4<f32>" .BX .BY false)}}

@compute @workgroup_size({{.BX}}, {{.BY}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * {{.BX}}u + lid.x;
  let inside = col < p.d;
  let fn_ = f32(p.n);
  var k = 0.0;
  var is = vec2<f32>(0.0);
  if (inside) {
    let g = gap[col];
    k = -2.0 * p.scale * (p.ondiag * g + p.lambda * (1.0 - g)) / fn_;
    is = vec2<f32>(inv[col], inv[p.d + col]);
  }
{{if .Norm}}  // s = (Σ dẑ_a, Σ dẑ_a·ẑ_a, Σ dẑ_b, Σ dẑ_b·ẑ_b) over the column.
  var s = vec4<f32>(0.0);
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let i = r * p.d + col;
      let ha = h_a[i];
      let hb = h_b[i];
      let da = g_a[i] + k * hb;
      let db = g_b[i] + k * ha;
      s += vec4<f32>(da, da * ha, db, db * hb);
    }
  }
  let m = total(s, lid.x, lid.y) / fn_;
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let i = r * p.d + col;
      let ha = h_a[i];
      let hb = h_b[i];
      let da = g_a[i] + k * hb;
      let db = g_b[i] + k * ha;
      g_a[i] = is.x * (da - m.x - ha * m.y);
      g_b[i] = is.y * (db - m.z - hb * m.w);
    }
  }
{{else}}  // Without normalisation dẑ is dz.
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let i = r * p.d + col;
      let ha = h_a[i];
      let hb = h_b[i];
      g_a[i] = g_a[i] + k * hb;
      g_b[i] = g_b[i] + k * ha;
    }
  }
{{end}}}
