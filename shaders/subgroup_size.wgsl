// subgroup_size: a probe, not a computation. Each of the p.n invocations of
// one workgroup writes the subgroup size it runs with to out, so that
// gpu.Device.SubgroupSize can report the sizes an adapter picks.
struct Params {
  n: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size({{.WG}})
fn main(@builtin(local_invocation_index) i: u32, @builtin(subgroup_size) size: u32) {
  if (i < p.n) {
    out[i] = f32(size);
  }
}
