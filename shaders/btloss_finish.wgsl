// btloss_finish: the Barlow Twins loss and its statistics from the partial
// sums of btloss_sum or btloss_tile, part [G, 2], and the diagonal's
// gap [D] = 1 − C_ii. One workgroup; each thread adds a strided share of the
// partials and of the diagonal, then lib.tmpl's total adds up the threads.
// stats = [loss, Σ_i (1 − C_ii)², Σ_{i≠j} C_ij², Σ_i C_ii, Σ_{i≠j} |C_ij|].
// With Full, the partials' first column includes the diagonal (the Gram
// form of the fused path), so Σ_i C_ii² is taken off it: the rank of C is at
// most N, which bounds Σ C² below by (Σ C_ii)²/N, so where that path is
// chosen (D > N) the difference does not cancel badly.
struct Params {
  g: u32,
  d: u32,
  lambda: f32,
  scale: f32,
  ondiag: f32, // weight of the invariance term: 1, or 0 for the redundancy-only ablation
}
@group(0) @binding(0) var<uniform> p: Params;
{{if .Loss}}@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read> part: array<f32>;
@group(0) @binding(4) var<storage, read> gap: array<f32>;
{{else}}@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read> gap: array<f32>;
{{end}}
{{template "total" (reduction "total4" "add" "vec4<f32>" 1 .WG false)}}
{{template "total" (reduction "total1" "add" "f32" 1 .WG false)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  // s = (Σ C² from the partials, Σ |C| from the partials, Σ (1 − C_ii)², Σ C_ii)
  var s = vec4<f32>(0.0);
  var sq = 0.0;
  for (var w = lid.x; w < p.g; w += {{.WG}}u) {
    s.x += part[2u * w];
    s.y += part[2u * w + 1u];
  }
  for (var i = lid.x; i < p.d; i += {{.WG}}u) {
    let g = gap[i];
    s.z += g * g;
    s.w += 1.0 - g;
    sq += (1.0 - g) * (1.0 - g);
  }
  let t = total4(s, 0u, lid.x);
  let tsq = total1(sq, 0u, lid.x);
  if (lid.x == 0u) {
{{if .Full}}    // Rounding can take the difference below 0; NaN must pass.
    let off = select(t.x - tsq, 0.0, t.x - tsq < 0.0);
{{else}}    let off = t.x;
{{end}}    let l = p.scale * (p.ondiag * t.z + p.lambda * off);
{{if .Loss}}    loss[0] = l;
{{end}}    stats[0] = l;
    stats[1] = t.z;
    stats[2] = off;
    stats[3] = t.w;
    stats[4] = t.y;
  }
}
