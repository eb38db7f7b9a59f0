// xent: softmax cross-entropy of logits [N, K] against integer labels
// (stored as floats) [N]. One workgroup per row: the row's maximum and the
// sum of exponentials are reduced by lib.tmpl's total (the maximum is
// subtracted first, so large logits do not overflow). The forward pass
// writes each row's loss; the backward pass writes the gradient of the mean
// loss, (softmax − onehot)/N, which is also the gradient's whole story: the
// caller's upstream gradient of the mean is folded into scale.
struct Params {
  n: u32,
  k: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // forward: loss [N]; backward: dlogits [N, K]
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<f32>;

{{template "total" (reduction "reduce_max" "max" "f32" 1 .WG false)}}
{{template "total" (reduction "reduce_sum" "add" "f32" 1 .WG false)}}

@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  // Every thread of the workgroup takes part in the reductions, so a row
  // past the end still reduces (zeros) and only skips the writes.
  let inside = row < p.n;
  let base = min(row, p.n - 1u) * p.k;
  let t = lid.x;
  var m = -3.4e38;
  for (var j = t; j < p.k; j += {{.WG}}u) {
    m = max(m, logits[base + j]);
  }
  m = reduce_max(m, 0u, t);
  var s = 0.0;
  for (var j = t; j < p.k; j += {{.WG}}u) {
    s += exp(logits[base + j] - m);
  }
  s = reduce_sum(s, 0u, t);
  let label = u32(labels[min(row, p.n - 1u)]);
  if (!inside) {
    return;
  }
{{if .Backward}}  for (var j = t; j < p.k; j += {{.WG}}u) {
    var g = exp(logits[base + j] - m) / s;
    if (j == label) {
      g -= 1.0;
    }
    out[base + j] = p.scale * g;
  }
{{else}}  if (t == 0u) {
    out[row] = log(s) + m - logits[base + label];
  }
{{end}}}
