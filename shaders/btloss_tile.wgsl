// btloss_tile: sums over the cross-correlation C = Ẑ_Aᵀ·Ẑ_B/N [D, D]
// without storing it. Each workgroup computes one BM×BN tile of C in
// registers with gemm_staged's tile loop (lib.tmpl's tile_mma) as a
// product with TransA (Ẑ_A and Ẑ_B are both [N, D], staged a row of the
// batch at a time, so the loads coalesce), then, instead of storing it,
// adds up Σ_{i≠j} C_ij² and Σ_{i≠j} |C_ij| over the tile and writes them to part[2·t], part[2·t + 1]
// for tile t; btloss_finish adds the tiles. The fused path uses it for the
// statistics its Gram form cannot give (mean |C_ij|), only when asked.
struct Params {
  d: u32,
  n: u32,
  invn: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const BM = {{.BM}}u;
const BN = {{.BN}}u;
const BK = {{.BK}}u;
const TM = {{.TM}}u;
const TN = {{.TN}}u;
const THREADS = {{.Threads}}u;
{{template "tile_shared" .}}
var<workgroup> red: array<vec2<f32>, {{.Threads}}>;

// tile_a and tile_b are op(A)[row, k] = Ẑ_A[k, row] and op(B)[k, col] =
// Ẑ_B[k, col], 0 outside them; one product, so z is unused.
fn tile_a(z: u32, row: u32, k: u32, k_hi: u32) -> f32 {
  if (row >= p.d || k >= k_hi) {
    return 0.0;
  }
  return a[k * p.d + row];
}

fn tile_b(z: u32, k: u32, col: u32, k_hi: u32) -> f32 {
  if (col >= p.d || k >= k_hi) {
    return 0.0;
  }
  return b[k * p.d + col];
}

// sums adds the off-diagonal, in-range entries of one accumulator row.
fn sums(row: u32, col: u32, v: vec4<f32>) -> vec2<f32> {
  var s = vec2<f32>(0.0);
  if (row >= p.d) {
    return s;
  }
  for (var q = 0u; q < 4u; q++) {
    if (col + q < p.d && col + q != row) {
      let c = v[q] * p.invn;
      s += vec2<f32>(c * c, abs(c));
    }
  }
  return s;
}

@compute @workgroup_size({{div .BN .TN}}, {{div .BM .TM}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let z = 0u;
  let k_lo = 0u;
  let k_hi = p.n;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tm = lid.y * TM;
  let tn = lid.x * TN;
{{template "tile_mma" .}}
  var s = vec2<f32>(0.0);
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  s += sums(m0 + tm + {{$i}}u, n0 + tn + {{mul $j 4}}u, acc_{{$i}}_{{$j}});
{{end}}{{end}}  red[tid] = s;
  workgroupBarrier();
  for (var h = THREADS / 2u; h > 0u; h = h >> 1u) {
    if (tid < h) {
      red[tid] += red[tid + h];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let t = wid.y * nwg.x + wid.x;
    part[2u * t] = red[0].x;
    part[2u * t + 1u] = red[0].y;
  }
}
