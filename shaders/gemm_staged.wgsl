// gemm_staged: C = alpha·op(A)·op(B) + beta·C for a batch of row-major
// matrices, op(A) M×K, op(B) K×N, C M×N; workgroup z is the batch index.
// A convolution's forward may finish each value with an epilogue (a bias
// per row, a ReLU: lib.tmpl's gemm_epilogue) before storing it.
// Specialised by a shaders.GemmStaged: the tile (BM…TN), the operands.
//
// Each workgroup computes a BM×BN tile of C with lib.tmpl's tile_mma: per
// step of BK it stages the A and B tiles in workgroup memory, k-major, so
// that a thread's TM rows of A and TN columns of B are contiguous vec4
// reads; each thread then holds a TM×TN block of C in registers (TM·TN/4
// vec4 accumulators, unrolled by the template) and does TM·TN multiply-adds
// per pair of reads. Out-of-range elements are staged as zero, so any M, N,
// K works; beta = 0 never reads C, which may hold garbage.
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
// arithmetic divides by constants. With Flat, the forward and data
// gradient run once over all images, whose positions side by side are the
// columns, instead of once per image in z, so that a small plane (7×7,
// 4×4) fills whole tiles. gemm_direct is the same product for CPU
// adapters.
//
// The tile's variants (shaders.Tile: double-buffered and padded workgroup
// arrays, vec4 loads of stored operands) are switches of tile_mma and of
// the loads here; every one computes the same product.
{{if .Half}}enable f16;
{{end}}{{template "gemm_params" .}}
@group(0) @binding(1) var<storage, read_write> c: array<{{.CType.WGSL}}>;
@group(0) @binding(2) var<storage, read> a: array<{{if .VecA}}vec4<{{.AType.WGSL}}>{{else}}{{.AType.WGSL}}{{end}}>;
@group(0) @binding(3) var<storage, read> b: array<{{if .VecB}}vec4<{{.BType.WGSL}}>{{else}}{{.BType.WGSL}}{{end}}>;

const BM = {{.BM}}u;
const BN = {{.BN}}u;
const BK = {{.BK}}u;
const TM = {{.TM}}u;
const TN = {{.TN}}u;
const THREADS = {{.Threads}}u;
{{template "gemm_consts" .}}{{template "tile_shared" .}}
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
  return f32(b[((z * p.cin + ic) * p.h + u32(iy)) * p.w + u32(ix)]);
}
{{end}}
{{if .VecA}}// tile_a4 returns op(A)[row, col … col+3] (AKFast) or op(A)[row … row+3,
// col] for batch z, four neighbours in memory read as one vec4, 0 outside
// op(A) or beyond the reduction's end k_hi; the caller aligns them, so
// they lie in range whole or not at all.
fn tile_a4(z: u32, row: u32, col: u32, k_hi: u32) -> vec4<f32> {
  if (row >= p.m || col >= k_hi) {
    return vec4<f32>(0.0);
  }
{{if eq .A "dense"}}{{if .TransA}}  return vec4<f32>(a[(z * p.sa + col * p.m + row) / 4u]);
{{else}}  return vec4<f32>(a[(z * p.sa + row * p.k + col) / 4u]);
{{end}}{{else if eq .A "dy"}}  let pos = p.oh * p.ow;
  return vec4<f32>(a[(((col / pos) * p.cout + row) * pos + col % pos) / 4u]);
{{end}}}
{{else}}// tile_a returns op(A)[row, col] for batch z, 0 outside op(A) or beyond
// the reduction's end k_hi.
fn tile_a(z: u32, row: u32, col: u32, k_hi: u32) -> f32 {
  if (row >= p.m || col >= k_hi) {
    return 0.0;
  }
{{if eq .A "dense"}}{{if .TransA}}  return f32(a[z * p.sa + col * p.m + row]);
{{else}}  return f32(a[z * p.sa + row * p.k + col]);
{{end}}{{else if eq .A "dy"}}  // dy[img, oc, pos] for row = oc, col = img·OH·OW + pos.
  let pos = p.oh * p.ow;
  return f32(a[((col / pos) * p.cout + row) * pos + col % pos]);
{{end}}}
{{end}}
{{if .VecB}}// tile_b4 returns op(B)[row … row+3, col] (BKFast) or op(B)[row, col …
// col+3] for batch z, as tile_a4 does for A.
fn tile_b4(z: u32, row: u32, col: u32, k_hi: u32) -> vec4<f32> {
  if (col >= p.n || row >= k_hi) {
    return vec4<f32>(0.0);
  }
{{if .TransB}}  return vec4<f32>(b[(z * p.sb + col * p.k + row) / 4u]);
{{else}}  return vec4<f32>(b[(z * p.sb + row * p.n + col) / 4u]);
{{end}}}
{{else}}// tile_b returns op(B)[row, col] for batch z, 0 outside op(B) or beyond
// the reduction's end k_hi. With Flat, col also picks the image.
fn tile_b(z: u32, row: u32, col: u32, k_hi: u32) -> f32 {
  if (col >= p.n || row >= k_hi) {
    return 0.0;
  }
{{if .Flat}}  let img = col / plane();
  let pos = col % plane();
{{else if or (eq .B "im2col") (eq .B "dy_col")}}  let img = z;
  let pos = col;
{{end}}{{if eq .B "dense"}}{{if .TransB}}  return f32(b[z * p.sb + col * p.k + row]);
{{else}}  return f32(b[z * p.sb + row * p.n + col]);
{{end}}{{else if eq .B "im2col"}}  return im2col(img, row, pos);
{{else if eq .B "im2col_t"}}  let pos = p.oh * p.ow;
  return im2col(row / pos, col, row % pos);
{{else if eq .B "dy_col"}}  // dy[img, oc, oy, ox] for row = (oc·TY + c1)·TX + c0, the phase's tap
  // (ky0 + STRIDE·c1, kx0 + STRIDE·c0), and pos = the phase's pixel (i, j),
  // which output (i + QY − c1, j + QX − c0) reads through that tap.
  let nx = phase_nx();
  let t = row % (TY * TX);
  let oy = i32(pos / nx + QY) - i32(t / TX);
  let ox = i32(pos % nx + QX) - i32(t % TX);
  if (oy < 0 || ox < 0 || u32(oy) >= p.oh || u32(ox) >= p.ow) {
    return 0.0;
  }
  return f32(b[((img * p.cout + row / (TY * TX)) * p.oh + u32(oy)) * p.ow + u32(ox)]);
{{end}}}
{{end}}
@compute @workgroup_size({{div .BN .TN}}, {{div .BM .TM}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
{{template "gemm_range" .}}  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tm = lid.y * TM;
  let tn = lid.x * TN;
{{template "tile_mma" .Tile}}
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
        r += p.beta * f32(c[i]);
      }
      r = epilogue(row, r);
      c[i] = {{.CType.WGSL}}(r);
    }
  }
}
{{template "gemm_epilogue" .GemmOperands}}{{template "gemm_out" .GemmOperands}}
