// gemm: C = alpha·op(A)·op(B) + beta·C for a batch of row-major matrices,
// op(A) M×K, op(B) K×N, C M×N; workgroup z is the batch index.
//
// Each workgroup computes a BM×BN tile of C. Per step of BK it stages the
// A and B tiles in workgroup memory, k-major, so that a thread's TM rows of A
// and TN columns of B are contiguous vec4 reads; each thread then holds a
// TM×TN block of C in registers (TM·TN/4 vec4 accumulators, unrolled by the
// template) and does TM·TN multiply-adds per pair of reads. Staging loads are
// ordered so that neighbouring threads read neighbouring addresses for every
// transpose case. Out-of-range elements are staged as zero, so any M, N, K
// works; beta = 0 never reads C, which may hold garbage.
struct Params {
  m: u32,
  n: u32,
  k: u32,
  sa: u32,
  sb: u32,
  sc: u32,
  alpha: f32,
  beta: f32,
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

var<workgroup> ta: array<vec4<f32>, {{div (mul .BK .BM) 4}}>;
var<workgroup> tb: array<vec4<f32>, {{div (mul .BK .BN) 4}}>;

fn load_a(z: u32, row: u32, col: u32) -> f32 {
  if (row >= p.m || col >= p.k) {
    return 0.0;
  }
{{if .TransA}}  return a[z * p.sa + col * p.m + row];
{{else}}  return a[z * p.sa + row * p.k + col];
{{end}}}

fn load_b(z: u32, row: u32, col: u32) -> f32 {
  if (row >= p.k || col >= p.n) {
    return 0.0;
  }
{{if .TransB}}  return b[z * p.sb + col * p.k + row];
{{else}}  return b[z * p.sb + row * p.n + col];
{{end}}}

@compute @workgroup_size({{div .BN .TN}}, {{div .BM .TM}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let z = wid.z;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tm = lid.y * TM;
  let tn = lid.x * TN;
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  var acc_{{$i}}_{{$j}} = vec4<f32>(0.0);
{{end}}{{end}}
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var e = tid; e < BM * BK; e += THREADS) {
{{if .TransA}}      let mm = e % BM;
      let kk = e / BM;
{{else}}      let kk = e % BK;
      let mm = e / BK;
{{end}}      ta[(kk * BM + mm) / 4u][mm % 4u] = load_a(z, m0 + mm, k0 + kk);
    }
    for (var e = tid; e < BN * BK; e += THREADS) {
{{if .TransB}}      let kk = e % BK;
      let nn = e / BK;
{{else}}      let nn = e % BN;
      let kk = e / BN;
{{end}}      tb[(kk * BN + nn) / 4u][nn % 4u] = load_b(z, k0 + kk, n0 + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
{{range $q := seq (div .TM 4)}}      let a{{$q}} = ta[(kk * BM + tm) / 4u + {{$q}}u];
{{end}}{{range $j := seq (div .TN 4)}}      let b{{$j}} = tb[(kk * BN + tn) / 4u + {{$j}}u];
{{end}}{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}      acc_{{$i}}_{{$j}} = fma(vec4<f32>(a{{div $i 4}}.{{comp (mod $i 4)}}), b{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}    }
    workgroupBarrier();
  }
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  store(z, m0 + tm + {{$i}}u, n0 + tn + {{mul $j 4}}u, acc_{{$i}}_{{$j}});
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
