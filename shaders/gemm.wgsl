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
//   dgrad    dx[z]  (Cin × H·W)     = Wᵀ-gather (Cin × Cout·KH·KW) · dy-gather[z]
//   wgrad    dW     (Cout × Cin·KH·KW) = Σ_z dy[z] · im2col(x[z])ᵀ, the sum over
//            z and positions being the reduction, split into chunks of
//            kchunk over workgroup z (SplitK) whose partial products land in
//            separate slices of C.
// Kernel size, stride and padding are template constants, so the index
// arithmetic divides by constants.
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
@group(0) @binding(2) var<storage, read> a: array<f32>;
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
{{end}}
var<workgroup> ta: array<vec4<f32>, {{div (mul .BK .BM) 4}}>;
var<workgroup> tb: array<vec4<f32>, {{div (mul .BK .BN) 4}}>;
{{if or (eq .B "im2col") (eq .B "im2col_t")}}
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
{{end}}{{else if eq .A "convw_t"}}  // W[oc, ic, tap] for row = ic, col = oc·KH·KW + tap.
  return a[((col / (KH * KW)) * p.cin + row) * KH * KW + col % (KH * KW)];
{{else if eq .A "dy"}}  // dy[img, oc, pos] for row = oc, col = img·OH·OW + pos.
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
{{else if eq .B "dy_col"}}  // dy[z, oc, oy, ox] for row = oc·KH·KW + tap and col = the input pixel
  // (y, x) that output (oy, ox) reads through tap, if there is one.
  let tap = row % (KH * KW);
  let ty = i32(col / p.w + PAD) - i32(tap / KW);
  let tx = i32(col % p.w + PAD) - i32(tap % KW);
  if (ty < 0 || tx < 0 || u32(ty) % STRIDE != 0u || u32(tx) % STRIDE != 0u) {
    return 0.0;
  }
  let oy = u32(ty) / STRIDE;
  let ox = u32(tx) / STRIDE;
  if (oy >= p.oh || ox >= p.ow) {
    return 0.0;
  }
  return b[((z * p.cout + row / (KH * KW)) * p.oh + oy) * p.ow + ox];
{{end}}}

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
      let i = z * p.sc + row * p.n + col + q;
      var r = p.alpha * v[q];
      if (p.beta != 0.0) {
        r += p.beta * c[i];
      }
      c[i] = r;
    }
  }
}
