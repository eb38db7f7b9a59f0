// optim_norms: the first half of a LARS step. Workgroup k of G writes
// part[off + 2k] = Σ w[i]² and part[off + 2k + 1] = Σ (grad[i] + wd·w[i])²
// over the elements i ≡ k·WG + lid (mod G·WG), so the G workgroups together
// cover the parameter once. optim then sums the G pairs into the two norms
// of the trust ratio on the device, without a float atomic or a read-back.
// Many parameters share one part buffer, each at its own offset.
{{template "enable" .}}struct Params {
  n: u32,
  groups: u32,
  off: u32,
  wd: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;

{{template "total" (reduction "total" "add" "vec2<f32>" 1 .WG .Subgroups)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}  var sw = 0.0;
  var sg = 0.0;
  for (var i = wid.x * {{.WG}}u + lid.x; i < p.n; i += p.groups * {{.WG}}u) {
    let v = w[i];
    let d = grad[i] + p.wd * v;
    sw += v * v;
    sg += d * d;
  }
  let t = total(vec2<f32>(sw, sg), 0u, lid.x);
  if (lid.x == 0u) {
    part[p.off + 2u * wid.x] = t.x;
    part[p.off + 2u * wid.x + 1u] = t.y;
  }
}
