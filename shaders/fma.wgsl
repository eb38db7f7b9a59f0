// fma: the adapter's arithmetic ceiling. Each invocation keeps CHAINS
// independent vec4 accumulators in registers and runs
// acc = fma(acc, a, b) on each, UNROLL times per loop trip for p.iters
// trips; nothing is read or written inside the loop, and one store per
// invocation keeps the work from being optimised away. Independent chains
// hide the FMA units' latency; a and b come from the parameters, so the
// compiler cannot fold the chain.
struct Params {
  iters: u32,
  a: f32,
  b: f32,
  pad: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size({{.WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let a = vec4<f32>(p.a);
  let b = vec4<f32>(p.b);
{{range $c := seq .Chains}}  var acc{{$c}} = vec4<f32>(f32(i), f32({{$c}}), 1.0, 2.0);
{{end}}  for (var k = 0u; k < p.iters; k++) {
{{range $u := seq $.Unroll}}{{range $c := seq $.Chains}}    acc{{$c}} = fma(acc{{$c}}, a, b);
{{end}}{{end}}  }
  var s = vec4<f32>(0.0);
{{range $c := seq .Chains}}  s += acc{{$c}};
{{end}}  y[i] = s.x + s.y + s.z + s.w;
}
