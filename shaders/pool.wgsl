// pool: pooling over the NC planes of an NCHW tensor, one thread per element
// written. Op picks the pass:
//   max           y[p, oy, ox] = max of the K×K window at (oy·S−Pad, ox·S−Pad)
//                 of plane p; padded positions are never chosen; ties go to
//                 the first in scan order and a NaN wins, as in PyTorch.
//                 arg holds the chosen element's index within its plane, as
//                 a float: exact below 2²⁴, and free of the denormals a
//                 bitcast u32 would be, which some GPUs flush.
//   max_backward  each input element gathers dy from the (at most
//                 ⌈K/S⌉²) windows that contain it and chose it: a scatter
//                 of dy into dx would need float atomics, which WGSL lacks.
//   avg           the global average pool, y[p] = mean of plane p; a thread
//                 reads its plane's H·W contiguous values, so a warp's loads
//                 cover one contiguous span, and no thread idles when H·W is
//                 small (7×7 in ResNet-50, 4×4 in CIFAR ResNets).
//   avg_backward  its gradient, dx[p, ·] = dy[p]/(H·W).
// Window size, stride and padding are template constants, so the index
// arithmetic divides by constants. Large grids are dispatched over x and y,
// so the flat index is rebuilt from both. In is the element type of x and
// dy, Out that of y and dx: f16 under mixed precision (activations, where
// the representation the global average pool writes may stay f32), widened
// on load and narrowed on store; argmax and the arithmetic stay f32.
{{if or (eq .In "f16") (eq .Out "f16")}}enable f16;
{{end}}struct Params {
  nc: u32,
  h: u32,
  w: u32,
  oh: u32,
  ow: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if eq .Op "max"}}@group(0) @binding(1) var<storage, read_write> y: array<{{.Out}}>;
@group(0) @binding(2) var<storage, read_write> arg: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<{{.In}}>;
{{else if eq .Op "max_backward"}}@group(0) @binding(1) var<storage, read_write> dx: array<{{.Out}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{.In}}>;
@group(0) @binding(3) var<storage, read> arg: array<f32>;
{{else if eq .Op "avg"}}@group(0) @binding(1) var<storage, read_write> y: array<{{.Out}}>;
@group(0) @binding(2) var<storage, read> x: array<{{.In}}>;
{{else}}@group(0) @binding(1) var<storage, read_write> dx: array<{{.Out}}>;
@group(0) @binding(2) var<storage, read> dy: array<{{.In}}>;
{{end}}
{{if eq .Op "max"}}// is_nan tests the bits: compilers that assume no NaNs fold v != v to false.
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}
{{end}}
@compute @workgroup_size({{.WG}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * {{.WG}}u;
{{if eq .Op "max"}}  if (i >= p.nc * p.oh * p.ow) {
    return;
  }
  let plane = i / (p.oh * p.ow);
  let o = i % (p.oh * p.ow);
  let y0 = i32(o / p.ow) * {{.S}} - {{.Pad}};
  let x0 = i32(o % p.ow) * {{.S}} - {{.Pad}};
  let base = plane * p.h * p.w;
  var best = 0.0;
  var at = -1;
  for (var a = max(y0, 0); a < min(y0 + {{.K}}, i32(p.h)); a++) {
    for (var b = max(x0, 0); b < min(x0 + {{.K}}, i32(p.w)); b++) {
      let q = a * i32(p.w) + b;
      let v = f32(x[base + u32(q)]);
      if (at < 0 || v > best || is_nan(v)) {
        best = v;
        at = q;
      }
    }
  }
  y[i] = {{.Out}}(best);
  arg[i] = f32(at);
{{else if eq .Op "max_backward"}}  if (i >= p.nc * p.h * p.w) {
    return;
  }
  let plane = i / (p.h * p.w);
  let q = i % (p.h * p.w);
  let yy = i32(q / p.w);
  let xx = i32(q % p.w);
  // Window oy covers rows oy·S−Pad … oy·S−Pad+K−1; truncating division is
  // the ceiling here wherever the clamp to 0 does not apply.
  let oy0 = max((yy + {{.Pad}} - {{.K}} + {{.S}}) / {{.S}}, 0);
  let oy1 = min((yy + {{.Pad}}) / {{.S}}, i32(p.oh) - 1);
  let ox0 = max((xx + {{.Pad}} - {{.K}} + {{.S}}) / {{.S}}, 0);
  let ox1 = min((xx + {{.Pad}}) / {{.S}}, i32(p.ow) - 1);
  let me = f32(q);
  let base = plane * p.oh * p.ow;
  var acc = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = base + u32(oy) * p.ow + u32(ox);
      if (arg[o] == me) {
        acc += f32(dy[o]);
      }
    }
  }
  dx[i] = {{.Out}}(acc);
{{else if eq .Op "avg"}}  let hw = p.h * p.w;
  if (i >= p.nc) {
    return;
  }
  var acc = 0.0;
  for (var l = 0u; l < hw; l++) {
    acc += f32(x[i * hw + l]);
  }
  y[i] = {{.Out}}(acc / f32(hw));
{{else}}  let hw = p.h * p.w;
  if (i >= p.nc * hw) {
    return;
  }
  dx[i] = {{.Out}}(f32(dy[i / hw]) / f32(hw));
{{end}}}
