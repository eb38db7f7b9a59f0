// btloss_sum: per-workgroup partial sums for the Barlow Twins loss, written
// to part[2·w], part[2·w + 1] for workgroup w and added up by btloss_finish
// (WGSL has no float atomics). Threads stride over the whole array with the
// grid's width, so neighbouring threads read neighbouring elements.
// With Dot, x and y are the [N, N] Gram matrices Ẑ_A·Ẑ_Aᵀ/N and
// Ẑ_B·Ẑ_Bᵀ/N, and the sums are Σ x∘y = Σ_ij C_ij² (the trace of their
// product, diagonal included) and 0. Without, x is C [D, D] and the sums are
// Σ_{i≠j} C_ij² and Σ_{i≠j} |C_ij|.
{{template "enable" .}}struct Params {
  len: u32,
  d: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
{{if .Dot}}@group(0) @binding(3) var<storage, read> y: array<f32>;
{{end}}
{{template "total" (reduction "total" "add" "vec2<f32>" 1 .WG .Subgroups)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}  var s = vec2<f32>(0.0);
  for (var i = wid.x * {{.WG}}u + lid.x; i < p.len; i += nwg.x * {{.WG}}u) {
{{if .Dot}}    s.x += x[i] * y[i];
{{else}}    let v = x[i];
    if (i / p.d != i % p.d) {
      s += vec2<f32>(v * v, abs(v));
    }
{{end}}  }
  let t = total(s, 0u, lid.x);
  if (lid.x == 0u) {
    part[2u * wid.x] = t.x;
    part[2u * wid.x + 1u] = t.y;
  }
}
