// gemm_direct: the product of gemm_staged (see there for the operand modes
// and the convolutions' implicit GEMMs) for CPU adapters such as lavapipe,
// which run a workgroup's invocations as the lanes of SIMD registers.
// Specialised by a shaders.GemmDirect.
//
// Nothing is staged: a workgroup is one row of THREADS invocations over
// TM rows of C, and each keeps TM×TN scalar accumulators for TN columns
// THREADS apart. A's indices depend only on the workgroup and the loop, so
// its loads are uniform (one scalar load broadcast to every lane); each B
// element a lane loads serves TM rows. The reduction index k is carried as
// counters (c2, c1, c0) over the convolution's nested sizes (·, s1, s0):
// (input channel, tap row, tap column) forward, (output channel, tap row,
// tap column) for the data gradient, (image, output row, output column)
// for the weight gradient, so no step divides, and per-column parts of the
// gather addresses are computed once before the loop. Workgroup memory and
// barriers, both costly on such adapters (per-lane gathers, coroutine
// switches), are not used. KStep 4 reads A as vec4 along k, four steps at
// a time.
//
// With Flat, the forward and data-gradient products run once over all
// images, whose positions side by side are the columns, instead of once per
// image in z: a small plane (7×7, 4×4) then fills whole tiles rather than a
// fraction of one.
{{if .Half}}enable f16;
{{end}}{{template "gemm_params" .}}
@group(0) @binding(1) var<storage, read_write> c: array<{{.CType.WGSL}}>;
@group(0) @binding(2) var<storage, read> a: array<{{if eq .KStep 4}}vec4<{{.AType.WGSL}}>{{else}}{{.AType.WGSL}}{{end}}>;
@group(0) @binding(3) var<storage, read> b: array<{{.BType.WGSL}}>;

const TM = {{.TM}}u;
const TN = {{.TN}}u;
const THREADS = {{.Threads}}u;
const BM = TM;
const BN = TN * THREADS;
{{template "gemm_consts" .}}
@compute @workgroup_size({{.Threads}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
{{template "gemm_range" .}}  let m0 = wid.y * BM;
{{if .IsConv}}{{if eq .B "im2col_t"}}  let s1 = p.oh;
  let s0 = p.ow;
{{else if eq .B "dy_col"}}  let s1 = TY;
  let s0 = TX;
  let nx = phase_nx();
{{else}}  let s1 = KH;
  let s0 = KW;
{{end}}  var c0 = k_lo % s0;
  var c1 = (k_lo / s0) % s1;
  var c2 = k_lo / (s0 * s1);
{{end}}{{range $j := seq .TN}}  let col_{{$j}} = wid.x * BN + lid.x + {{$j}}u * THREADS;
  let cc_{{$j}} = min(col_{{$j}}, p.n - 1u);
{{if or (eq $.B "im2col") (eq $.B "dy_col")}}{{if $.Flat}}  let img_{{$j}} = cc_{{$j}} / plane();
  let pos_{{$j}} = cc_{{$j}} % plane();
{{else}}  let img_{{$j}} = z;
  let pos_{{$j}} = cc_{{$j}};
{{end}}{{end}}{{if eq $.B "im2col"}}  let iy0_{{$j}} = i32((pos_{{$j}} / p.ow) * STRIDE) - i32(PAD);
  let ix0_{{$j}} = i32((pos_{{$j}} % p.ow) * STRIDE) - i32(PAD);
{{else if eq $.B "im2col_t"}}  let ic_{{$j}} = cc_{{$j}} / (KH * KW);
  let ky_{{$j}} = i32((cc_{{$j}} % (KH * KW)) / KW) - i32(PAD);
  let kx_{{$j}} = i32(cc_{{$j}} % KW) - i32(PAD);
{{else if eq $.B "dy_col"}}  let yp_{{$j}} = i32(pos_{{$j}} / nx + QY);
  let xp_{{$j}} = i32(pos_{{$j}} % nx + QX);
{{end}}{{end}}{{range $i := seq .TM}}  let row_{{$i}} = min(m0 + {{$i}}u, p.m - 1u);
{{range $j := seq $.TN}}  var acc_{{$i}}_{{$j}} = 0.0;
{{end}}{{end}}
  for (var k = k_lo; k < k_hi; k += {{.KStep}}u) {
{{if eq .KStep 4}}{{range $i := seq .TM}}{{if eq $.A "dense"}}    let av_{{$i}} = vec4<f32>(a[(z * p.sa + row_{{$i}} * p.k + k) / 4u]);
{{else if eq $.A "dy"}}    let av_{{$i}} = vec4<f32>(a[((c2 * p.cout + row_{{$i}}) * p.oh * p.ow + c1 * p.ow + c0) / 4u]);
{{end}}{{end}}{{end}}{{range $u := seq .KStep}}{{range $i := seq $.TM}}{{if eq $.KStep 4}}    let a_{{$u}}_{{$i}} = av_{{$i}}.{{comp $u}};
{{else if eq $.A "dense"}}{{if $.TransA}}    let a_{{$u}}_{{$i}} = f32(a[z * p.sa + k * p.m + row_{{$i}}]);
{{else}}    let a_{{$u}}_{{$i}} = f32(a[z * p.sa + row_{{$i}} * p.k + k]);
{{end}}{{else if eq $.A "dy"}}    let a_{{$u}}_{{$i}} = f32(a[((c2 * p.cout + row_{{$i}}) * p.oh + c1) * p.ow + c0]);
{{end}}{{end}}{{range $j := seq $.TN}}{{if eq $.B "dense"}}{{if $.TransB}}    let b_{{$u}}_{{$j}} = f32(b[z * p.sb + cc_{{$j}} * p.k + k + {{$u}}u]);
{{else}}    let b_{{$u}}_{{$j}} = f32(b[z * p.sb + (k + {{$u}}u) * p.n + cc_{{$j}}]);
{{end}}{{else if eq $.B "im2col"}}    let iy_{{$u}}_{{$j}} = iy0_{{$j}} + i32(c1);
    let ix_{{$u}}_{{$j}} = ix0_{{$j}} + i32(c0);
    let in_{{$u}}_{{$j}} = iy_{{$u}}_{{$j}} >= 0 && ix_{{$u}}_{{$j}} >= 0 && iy_{{$u}}_{{$j}} < i32(p.h) && ix_{{$u}}_{{$j}} < i32(p.w);
    let b_{{$u}}_{{$j}} = select(0.0, f32(b[select(0u, ((img_{{$j}} * p.cin + c2) * p.h + u32(iy_{{$u}}_{{$j}})) * p.w + u32(ix_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})]), in_{{$u}}_{{$j}});
{{else if eq $.B "im2col_t"}}    let iy_{{$u}}_{{$j}} = i32(c1 * STRIDE) + ky_{{$j}};
    let ix_{{$u}}_{{$j}} = i32(c0 * STRIDE) + kx_{{$j}};
    let in_{{$u}}_{{$j}} = iy_{{$u}}_{{$j}} >= 0 && ix_{{$u}}_{{$j}} >= 0 && iy_{{$u}}_{{$j}} < i32(p.h) && ix_{{$u}}_{{$j}} < i32(p.w);
    let b_{{$u}}_{{$j}} = select(0.0, f32(b[select(0u, ((c2 * p.cin + ic_{{$j}}) * p.h + u32(iy_{{$u}}_{{$j}})) * p.w + u32(ix_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})]), in_{{$u}}_{{$j}});
{{else if eq $.B "dy_col"}}    let oy_{{$u}}_{{$j}} = yp_{{$j}} - i32(c1);
    let ox_{{$u}}_{{$j}} = xp_{{$j}} - i32(c0);
    let in_{{$u}}_{{$j}} = oy_{{$u}}_{{$j}} >= 0 && ox_{{$u}}_{{$j}} >= 0 && oy_{{$u}}_{{$j}} < i32(p.oh) && ox_{{$u}}_{{$j}} < i32(p.ow);
    let b_{{$u}}_{{$j}} = select(0.0, f32(b[select(0u, ((img_{{$j}} * p.cout + c2) * p.oh + u32(oy_{{$u}}_{{$j}})) * p.ow + u32(ox_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})]), in_{{$u}}_{{$j}});
{{end}}{{end}}{{range $i := seq $.TM}}{{range $j := seq $.TN}}    acc_{{$i}}_{{$j}} = fma(a_{{$u}}_{{$i}}, b_{{$u}}_{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}{{if $.IsConv}}    c0++;
    if (c0 == s0) {
      c0 = 0u;
      c1++;
      if (c1 == s1) {
        c1 = 0u;
        c2++;
      }
    }
{{end}}{{end}}  }
{{range $i := seq .TM}}{{range $j := seq $.TN}}  store1(wid.z, m0 + {{$i}}u, col_{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}}

fn store1(z: u32, row: u32, col: u32, v: f32) {
  if (row >= p.m || col >= p.n) {
    return;
  }
  let i = out_index(z, row, col);
  var r = p.alpha * v;
  if (p.beta != 0.0) {
    r += p.beta * f32(c[i]);
  }
  r = epilogue(row, r);
  c[i] = {{.CType.WGSL}}(r);
}
{{template "gemm_epilogue" .GemmOperands}}{{template "gemm_out" .GemmOperands}}
