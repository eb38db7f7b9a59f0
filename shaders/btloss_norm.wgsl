// btloss_norm: the Barlow Twins loss's batch normalisation of both views,
// and the diagonal of their cross-correlation. For every column i of
// z_a, z_b [N, D]: the batch mean and biased variance (two passes, which
// stay accurate where E[z²]−E[z]² would cancel), ẑ = (z − μ)/√(σ² + ε)
// written to h_a, h_b [N, D], inv[v·D + i] = 1/√(σ² + ε) of view v, and
// gap[i] = 1 − C_ii, an O(N·D) reduction that spares the loss the diagonal
// of a D×D matrix. The invariance term and its gradient are made of 1 − C_ii,
// which training drives towards 0, where 1 − Σ ẑ_a·ẑ_b/N would lose its
// digits to cancellation; since Σ ẑ²/N = σ²/(σ² + ε) exactly,
// 1 − C_ii = (Σ (ẑ_a − ẑ_b)²/N + ε/(σ_a² + ε) + ε/(σ_b² + ε))/2, a sum of
// positive terms. Each workgroup owns BX neighbouring columns, so a row's
// loads coalesce; its BY threads per column stride over the batch and meet
// in workgroup memory. Without Norm (the paper's "no normalisation"
// ablation) the embeddings are used as they are. With Given, Ẑ has been
// normalised over several ranks' batches (synchronised BatchNorm) and only
// this rank's Σ (ẑ_a − ẑ_b)² is wanted, in gap[i], for the host to sum
// over the ranks and finish 1 − C_ii as above.
struct Params {
  n: u32,
  d: u32,
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
{{if .Given}}@group(0) @binding(1) var<storage, read_write> gap: array<f32>;
@group(0) @binding(2) var<storage, read> h_a: array<f32>;
@group(0) @binding(3) var<storage, read> h_b: array<f32>;
{{else}}@group(0) @binding(1) var<storage, read_write> h_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> h_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;
@group(0) @binding(4) var<storage, read_write> gap: array<f32>;
@group(0) @binding(5) var<storage, read> z_a: array<f32>;
@group(0) @binding(6) var<storage, read> z_b: array<f32>;
{{end}}
{{template "total" (reduction "total" "add" "vec2<f32>" .BX .BY false)}}

@compute @workgroup_size({{.BX}}, {{.BY}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * {{.BX}}u + lid.x;
  let inside = col < p.d;
  let fn_ = f32(p.n);
{{if .Given}}  var dd = 0.0;
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let e = h_a[r * p.d + col] - h_b[r * p.d + col];
      dd += e * e;
    }
  }
  let t = total(vec2<f32>(dd, 0.0), lid.x, lid.y).x;
  if (inside && lid.y == 0u) {
    gap[col] = t;
  }
{{else if .Norm}}  var s = vec2<f32>(0.0);
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      s += vec2<f32>(z_a[r * p.d + col], z_b[r * p.d + col]);
    }
  }
  let mean = total(s, lid.x, lid.y) / fn_;
  var q = vec2<f32>(0.0);
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let e = vec2<f32>(z_a[r * p.d + col], z_b[r * p.d + col]) - mean;
      q += e * e;
    }
  }
  let is = 1.0 / sqrt(total(q, lid.x, lid.y) / fn_ + p.eps);
  var dd = 0.0;
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let i = r * p.d + col;
      let ha = (z_a[i] - mean.x) * is.x;
      let hb = (z_b[i] - mean.y) * is.y;
      h_a[i] = ha;
      h_b[i] = hb;
      dd += (ha - hb) * (ha - hb);
    }
  }
  let t = total(vec2<f32>(dd, 0.0), lid.x, lid.y).x / fn_;
  if (inside && lid.y == 0u) {
    inv[col] = is.x;
    inv[p.d + col] = is.y;
    gap[col] = 0.5 * (t + p.eps * (is.x * is.x + is.y * is.y));
  }
{{else}}  // Without normalisation (an ablation) Ẑ is Z and 1 − C_ii is taken
  // directly: nothing bounds Σ z_a·z_b/N near 1 here.
  var dot = 0.0;
  if (inside) {
    for (var r = lid.y; r < p.n; r += {{.BY}}u) {
      let i = r * p.d + col;
      h_a[i] = z_a[i];
      h_b[i] = z_b[i];
      dot += z_a[i] * z_b[i];
    }
  }
  let t = total(vec2<f32>(dot, 0.0), lid.x, lid.y).x / fn_;
  if (inside && lid.y == 0u) {
    inv[col] = 1.0;
    inv[p.d + col] = 1.0;
    gap[col] = 1.0 - t;
  }
{{end}}}
