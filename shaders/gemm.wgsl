// gemm: C = alpha·op(A)·op(B) + beta·C for a batch of row-major matrices,
// op(A) M×K, op(B) K×N, C M×N; workgroup z is the batch index.
//
// Each workgroup computes a BM×BN tile of C. Per step of BK it stages the
// A and B tiles in workgroup memory, k-major, so that a thread's TM rows of A
// and TN columns of B are contiguous vec4 reads; each thread then holds a
// TM×TN block of C in registers (TM·TN/4 vec4 accumulators, unrolled by the
// template) and does TM·TN multiply-adds per pair of reads. Staging loads are
// ordered so that neighbouring threads read neighbouring addresses (AKFast,
// BKFast: whether the operand is contiguous along k). Out-of-range elements
// are staged as zero, so any M, N, K works; beta = 0 never reads C, which may
// hold garbage.
//
// Convolutions (NCHW) are the same product with operands gathered on the
// fly instead of stored (implicit GEMM), chosen by the A and B modes:
//   forward  out[z] (Cout × OH·OW)  = W (Cout × Cin·KH·KW) · im2col(x[z])
//   dgrad    dx[z]  (Cin × H·W)     = Wᵀ (Cin × Cout·KH·KW) · dy-gather[z], one
//            dispatch per phase (PY, PX) of a strided convolution: the input
//            pixels y ≡ PY, x ≡ PX (mod STRIDE) are read only through the
//            TY×TX taps ky ≡ PY + PAD, kx ≡ PX + PAD (mod STRIDE), so each is a
//            product over Cout·TY·TX with no taps falling between outputs
//            (a stride-1 convolution is one phase of every tap). Wᵀ is the
//            phase's taps laid out dense by the caller; column col is the
//            phase's pixel (i, j) = (col / NX, col % NX), at
//            (PY + STRIDE·i, PX + STRIDE·j) in dx.
//   wgrad    dW     (Cout × Cin·KH·KW) = Σ_z dy[z] · im2col(x[z])ᵀ, the sum over
//            z and positions being the reduction, split into chunks of
//            kchunk over workgroup z (SplitK) whose partial products land in
//            separate slices of C.
// Kernel size, stride and padding are template constants, so the index
// arithmetic divides by constants. With Flat (direct tiles), the forward
// and data-gradient products run once over all images, whose positions
// side by side are the columns, instead of once per image in z: a small
// plane (7×7, 4×4) then fills whole tiles rather than a fraction of one.
//
// Direct (for CPU adapters such as lavapipe, which run a workgroup's
// invocations as the lanes of SIMD registers) stages nothing: a workgroup is
// one row of BN/TN threads over TM = BM rows, and each thread keeps TM×TN
// scalar accumulators for TN columns THREADS apart. A's indices depend only
// on the workgroup and the loop, so its loads are uniform (one scalar load
// broadcast to every lane); each B element a lane loads serves TM rows. The
// reduction index is carried as counters (c2, c1, c0) over the convolution's
// nested sizes, so no step divides, and per-column parts of the gather
// addresses are computed once before the loop. Workgroup memory and
// barriers, both costly on such adapters (per-lane gathers, coroutine
// switches), are not used.
struct Params {
  m: u32,
  n: u32,
  k: u32,
  sa: u32,
  sb: u32,
  sc: u32,
  alpha: f32,
  beta: f32,
  cin: u32,
  h: u32,
  w: u32,
  cout: u32,
  oh: u32,
  ow: u32,
  kchunk: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<{{if eq .KStep 4}}vec4<f32>{{else}}f32{{end}}>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const BM = {{.BM}}u;
const BN = {{.BN}}u;
const BK = {{.BK}}u;
const TM = {{.TM}}u;
const TN = {{.TN}}u;
const THREADS = {{mul (div .BM .TM) (div .BN .TN)}}u;
{{if .Conv}}const KH = {{.KH}}u;
const KW = {{.KW}}u;
const STRIDE = {{.Stride}}u;
const PAD = {{.Pad}}u;
{{end}}{{if eq .B "dy_col"}}const PY = {{.PY}}u;
const PX = {{.PX}}u;
const TY = {{.TY}}u;
const TX = {{.TX}}u;
const QY = {{.QY}}u;
const QX = {{.QX}}u;
{{end}}
{{if not .Direct}}var<workgroup> ta: array<vec4<f32>, {{div (mul .BK .BM) 4}}>;
var<workgroup> tb: array<vec4<f32>, {{div (mul .BK .BN) 4}}>;
{{end}}
{{if not .Direct}}{{if or (eq .B "im2col") (eq .B "im2col_t")}}
// im2col reads x[z] at (channel, tap) = kk, (output row, column) = col.
fn im2col(z: u32, kk: u32, col: u32) -> f32 {
  let ic = kk / (KH * KW);
  let tap = kk % (KH * KW);
  let iy = i32((col / p.ow) * STRIDE + tap / KW) - i32(PAD);
  let ix = i32((col % p.ow) * STRIDE + tap % KW) - i32(PAD);
  if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
    return 0.0;
  }
  return b[((z * p.cin + ic) * p.h + u32(iy)) * p.w + u32(ix)];
}
{{end}}
// load_a returns op(A)[row, col] for batch z.
fn load_a(z: u32, row: u32, col: u32) -> f32 {
{{if eq .A "dense"}}{{if .TransA}}  return a[z * p.sa + col * p.m + row];
{{else}}  return a[z * p.sa + row * p.k + col];
{{end}}{{else if eq .A "dy"}}  // dy[img, oc, pos] for row = oc, col = img·OH·OW + pos.
  let pos = p.oh * p.ow;
  return a[((col / pos) * p.cout + row) * pos + col % pos];
{{end}}}

// load_b returns op(B)[row, col] for batch z.
fn load_b(z: u32, row: u32, col: u32) -> f32 {
{{if eq .B "dense"}}{{if .TransB}}  return b[z * p.sb + col * p.k + row];
{{else}}  return b[z * p.sb + row * p.n + col];
{{end}}{{else if eq .B "im2col"}}  return im2col(z, row, col);
{{else if eq .B "im2col_t"}}  let pos = p.oh * p.ow;
  return im2col(row / pos, col, row % pos);
{{else if eq .B "dy_col"}}  // dy[z, oc, oy, ox] for row = (oc·TY + c1)·TX + c0, the phase's tap
  // (ky0 + STRIDE·c1, kx0 + STRIDE·c0), and col = the phase's pixel (i, j),
  // which output (i + QY − c1, j + QX − c0) reads through that tap.
  let nx = phase_nx();
  let t = row % (TY * TX);
  let oy = i32(col / nx + QY) - i32(t / TX);
  let ox = i32(col % nx + QX) - i32(t % TX);
  if (oy < 0 || ox < 0 || u32(oy) >= p.oh || u32(ox) >= p.ow) {
    return 0.0;
  }
  return b[((z * p.cout + row / (TY * TX)) * p.oh + u32(oy)) * p.ow + u32(ox)];
{{end}}}
{{end}}
{{if .Direct}}
// Direct mode: the reduction index k is (c2, c1, c0) over sizes (·, s1, s0):
// (input channel, tap row, tap column) forward, (output channel, tap row,
// tap column) for the data gradient, (image, output row, output column) for
// the weight gradient; unused for plain products.
@compute @workgroup_size({{div .BN .TN}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
{{if .SplitK}}  let z = 0u;
  let k_lo = wid.z * p.kchunk;
  let k_hi = min(p.k, k_lo + p.kchunk);
{{else}}  let z = wid.z;
  let k_lo = 0u;
  let k_hi = p.k;
{{end}}  let m0 = wid.y * BM;
{{if .Conv}}{{if eq .B "im2col_t"}}  let s1 = p.oh;
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
{{if eq .KStep 4}}{{range $i := seq .TM}}{{if eq $.A "dense"}}    let av_{{$i}} = a[(z * p.sa + row_{{$i}} * p.k + k) / 4u];
{{else if eq $.A "dy"}}    let av_{{$i}} = a[((c2 * p.cout + row_{{$i}}) * p.oh * p.ow + c1 * p.ow + c0) / 4u];
{{end}}{{end}}{{end}}{{range $u := seq .KStep}}{{range $i := seq $.TM}}{{if eq $.KStep 4}}    let a_{{$u}}_{{$i}} = av_{{$i}}.{{comp $u}};
{{else if eq $.A "dense"}}{{if $.TransA}}    let a_{{$u}}_{{$i}} = a[z * p.sa + k * p.m + row_{{$i}}];
{{else}}    let a_{{$u}}_{{$i}} = a[z * p.sa + row_{{$i}} * p.k + k];
{{end}}{{else if eq $.A "dy"}}    let a_{{$u}}_{{$i}} = a[((c2 * p.cout + row_{{$i}}) * p.oh + c1) * p.ow + c0];
{{end}}{{end}}{{range $j := seq $.TN}}{{if eq $.B "dense"}}{{if $.TransB}}    let b_{{$u}}_{{$j}} = b[z * p.sb + cc_{{$j}} * p.k + k + {{$u}}u];
{{else}}    let b_{{$u}}_{{$j}} = b[z * p.sb + (k + {{$u}}u) * p.n + cc_{{$j}}];
{{end}}{{else if eq $.B "im2col"}}    let iy_{{$u}}_{{$j}} = iy0_{{$j}} + i32(c1);
    let ix_{{$u}}_{{$j}} = ix0_{{$j}} + i32(c0);
    let in_{{$u}}_{{$j}} = iy_{{$u}}_{{$j}} >= 0 && ix_{{$u}}_{{$j}} >= 0 && iy_{{$u}}_{{$j}} < i32(p.h) && ix_{{$u}}_{{$j}} < i32(p.w);
    let b_{{$u}}_{{$j}} = select(0.0, b[select(0u, ((img_{{$j}} * p.cin + c2) * p.h + u32(iy_{{$u}}_{{$j}})) * p.w + u32(ix_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})], in_{{$u}}_{{$j}});
{{else if eq $.B "im2col_t"}}    let iy_{{$u}}_{{$j}} = i32(c1 * STRIDE) + ky_{{$j}};
    let ix_{{$u}}_{{$j}} = i32(c0 * STRIDE) + kx_{{$j}};
    let in_{{$u}}_{{$j}} = iy_{{$u}}_{{$j}} >= 0 && ix_{{$u}}_{{$j}} >= 0 && iy_{{$u}}_{{$j}} < i32(p.h) && ix_{{$u}}_{{$j}} < i32(p.w);
    let b_{{$u}}_{{$j}} = select(0.0, b[select(0u, ((c2 * p.cin + ic_{{$j}}) * p.h + u32(iy_{{$u}}_{{$j}})) * p.w + u32(ix_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})], in_{{$u}}_{{$j}});
{{else if eq $.B "dy_col"}}    let oy_{{$u}}_{{$j}} = yp_{{$j}} - i32(c1);
    let ox_{{$u}}_{{$j}} = xp_{{$j}} - i32(c0);
    let in_{{$u}}_{{$j}} = oy_{{$u}}_{{$j}} >= 0 && ox_{{$u}}_{{$j}} >= 0 && oy_{{$u}}_{{$j}} < i32(p.oh) && ox_{{$u}}_{{$j}} < i32(p.ow);
    let b_{{$u}}_{{$j}} = select(0.0, b[select(0u, ((img_{{$j}} * p.cout + c2) * p.oh + u32(oy_{{$u}}_{{$j}})) * p.ow + u32(ox_{{$u}}_{{$j}}), in_{{$u}}_{{$j}})], in_{{$u}}_{{$j}});
{{end}}{{end}}{{range $i := seq $.TM}}{{range $j := seq $.TN}}    acc_{{$i}}_{{$j}} = fma(a_{{$u}}_{{$i}}, b_{{$u}}_{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}{{if $.Conv}}    c0++;
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
    r += p.beta * c[i];
  }
  c[i] = r;
}
{{else}}
@compute @workgroup_size({{div .BN .TN}}, {{div .BM .TM}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
{{if .SplitK}}  // Workgroup z owns reduction chunk z; A and B are not batched.
  let z = 0u;
  let k_lo = wid.z * p.kchunk;
  let k_hi = min(p.k, k_lo + p.kchunk);
{{else}}  let z = wid.z;
  let k_lo = 0u;
  let k_hi = p.k;
{{end}}  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tm = lid.y * TM;
  let tn = lid.x * TN;
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  var acc_{{$i}}_{{$j}} = vec4<f32>(0.0);
{{end}}{{end}}
  for (var k0 = k_lo; k0 < k_hi; k0 += BK) {
    for (var e = tid; e < BM * BK; e += THREADS) {
{{if .AKFast}}      let kk = e % BK;
      let mm = e / BK;
{{else}}      let mm = e % BM;
      let kk = e / BM;
{{end}}      var v = 0.0;
      if (m0 + mm < p.m && k0 + kk < k_hi) {
        v = load_a(z, m0 + mm, k0 + kk);
      }
      ta[(kk * BM + mm) / 4u][mm % 4u] = v;
    }
    for (var e = tid; e < BN * BK; e += THREADS) {
{{if .BKFast}}      let kk = e % BK;
      let nn = e / BK;
{{else}}      let nn = e % BN;
      let kk = e / BN;
{{end}}      var v = 0.0;
      if (n0 + nn < p.n && k0 + kk < k_hi) {
        v = load_b(z, k0 + kk, n0 + nn);
      }
      tb[(kk * BN + nn) / 4u][nn % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
{{range $q := seq (div .TM 4)}}      let a{{$q}} = ta[(kk * BM + tm) / 4u + {{$q}}u];
{{end}}{{range $j := seq (div .TN 4)}}      let b{{$j}} = tb[(kk * BN + tn) / 4u + {{$j}}u];
{{end}}{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}      acc_{{$i}}_{{$j}} = fma(vec4<f32>(a{{div $i 4}}.{{comp (mod $i 4)}}), b{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}    }
    workgroupBarrier();
  }
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  store(wid.z, m0 + tm + {{$i}}u, n0 + tn + {{mul $j 4}}u, acc_{{$i}}_{{$j}});
{{end}}{{end}}}

fn store(z: u32, row: u32, col: u32, v: vec4<f32>) {
  if (row >= p.m) {
    return;
  }
  for (var q = 0u; q < 4u; q++) {
    if (col + q < p.n) {
      let i = out_index(z, row, col + q);
      var r = p.alpha * v[q];
      if (p.beta != 0.0) {
        r += p.beta * c[i];
      }
      c[i] = r;
    }
  }
}
{{end}}

// out_index is where C[z, row, col] lives: row-major, or for a data
// gradient the phase's pixel in dx; with Flat, col also picks the image.
fn out_index(z: u32, row: u32, col: u32) -> u32 {
{{if .Flat}}  let img = z + col / plane();
  let pos = col % plane();
{{else}}  let img = z;
  let pos = col;
{{end}}{{if eq .B "dy_col"}}  let nx = phase_nx();
  return img * p.sc + row * p.h * p.w + (PY + STRIDE * (pos / nx)) * p.w + PX + STRIDE * (pos % nx);
{{else}}  return img * p.sc + row * {{if .Flat}}plane(){{else}}p.n{{end}} + pos;
{{end}}}
{{if .Flat}}
// plane is how many columns of C one image has.
fn plane() -> u32 {
{{if eq .B "dy_col"}}  return phase_ny() * phase_nx();
{{else}}  return p.oh * p.ow;
{{end}}}
{{end}}{{if eq .B "dy_col"}}
// phase_nx and phase_ny are the phase's columns and rows of dx.
fn phase_nx() -> u32 {
  return (p.w - PX + STRIDE - 1u) / STRIDE;
}

fn phase_ny() -> u32 {
  return (p.h - PY + STRIDE - 1u) / STRIDE;
}
{{end}}