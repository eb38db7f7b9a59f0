// btloss_tile: sums over the cross-correlation C = Ẑ_Aᵀ·Ẑ_B/N [D, D]
// without storing it. Each workgroup computes one BM×BN tile of C in
// registers exactly as gemm.wgsl does with TransA (Ẑ_A and Ẑ_B are both
// [N, D], read a row of the batch at a time, so the staging loads
// coalesce), then, instead of storing it, adds up Σ_{i≠j} C_ij² and
// Σ_{i≠j} |C_ij| over the tile and writes them to part[2·t], part[2·t + 1]
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
const THREADS = {{mul (div .BM .TM) (div .BN .TN)}}u;

var<workgroup> ta: array<vec4<f32>, {{div (mul .BK .BM) 4}}>;
var<workgroup> tb: array<vec4<f32>, {{div (mul .BK .BN) 4}}>;
var<workgroup> red: array<vec2<f32>, {{mul (div .BM .TM) (div .BN .TN)}}>;

// load_a and load_b read [row, col] of Ẑ_A and Ẑ_B [N, D], 0 outside them.
fn load_a(row: u32, col: u32) -> f32 {
  if (row >= p.n || col >= p.d) {
    return 0.0;
  }
  return a[row * p.d + col];
}

fn load_b(row: u32, col: u32) -> f32 {
  if (row >= p.n || col >= p.d) {
    return 0.0;
  }
  return b[row * p.d + col];
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
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tm = lid.y * TM;
  let tn = lid.x * TN;
{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}  var acc_{{$i}}_{{$j}} = vec4<f32>(0.0);
{{end}}{{end}}
  for (var k0 = 0u; k0 < p.n; k0 += BK) {
    for (var e = tid; e < BM * BK; e += THREADS) {
      let mm = e % BM;
      let kk = e / BM;
      ta[(kk * BM + mm) / 4u][mm % 4u] = load_a(k0 + kk, m0 + mm);
    }
    for (var e = tid; e < BN * BK; e += THREADS) {
      let nn = e % BN;
      let kk = e / BN;
      tb[(kk * BN + nn) / 4u][nn % 4u] = load_b(k0 + kk, n0 + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
{{range $q := seq (div .TM 4)}}      let a{{$q}} = ta[(kk * BM + tm) / 4u + {{$q}}u];
{{end}}{{range $j := seq (div .TN 4)}}      let b{{$j}} = tb[(kk * BN + tn) / 4u + {{$j}}u];
{{end}}{{range $i := seq .TM}}{{range $j := seq (div $.TN 4)}}      acc_{{$i}}_{{$j}} = fma(vec4<f32>(a{{div $i 4}}.{{comp (mod $i 4)}}), b{{$j}}, acc_{{$i}}_{{$j}});
{{end}}{{end}}    }
    workgroupBarrier();
  }
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
