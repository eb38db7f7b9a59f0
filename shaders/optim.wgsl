// optim: one optimiser step over a parameter w and its gradient, in place.
// Each workgroup updates E·WG elements, element base + k·WG + lid for k < E,
// so neighbouring threads touch neighbouring elements; large parameters are
// dispatched over x and y (65,535 workgroups per dimension), so the
// workgroup index is rebuilt from both.
// Rule "momentum" is LARS and SGD: d = grad + wd·w, scaled by the trust
// ratio q when Trust; m = momentum·m + q·d; w −= lr·m. With Trust, every
// workgroup first sums optim_norms's G partial pairs at part[off…] into
// ‖w‖² and ‖d‖², so q = eta·‖w‖/‖d‖ (1 where either is 0) is computed on
// the device; the G ≤ WG pairs are a small read beside the E·WG elements.
// Rule "adamw" is PyTorch's AdamW: w = decay·w with decay = 1 − lr·wd,
// m = β1·m + c1·grad, v = β2·v + c2·grad² (c = 1 − β), and
// w −= step·m / (√v / bc2 + eps) with step = lr/(1−β1ᵗ) and bc2 = √(1−β2ᵗ)
// computed in float64 on the host.
{{template "enable" .}}struct Params {
  n: u32,
  groups: u32,
  off: u32,
  lr: f32,
  wd: f32,
  beta1: f32, // the momentum for rule "momentum"
  c1: f32,    // 1 − β1 and 1 − β2, formed in float64 before rounding
  beta2: f32,
  c2: f32,
  eps: f32,
  eta: f32,
  decay: f32,
  step: f32,
  bc2: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
{{if eq .Rule "adamw"}}@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
{{else}}@group(0) @binding(3) var<storage, read> grad: array<f32>;
{{if .Trust}}@group(0) @binding(4) var<storage, read> part: array<f32>;

{{template "total" (reduction "total" "add" "vec2<f32>" 1 .WG .Subgroups)}}
{{end}}{{end}}
@compute @workgroup_size({{.WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>{{template "subgroup_args" .}}) {
{{template "subgroup_init" .}}{{if and (ne .Rule "adamw") .Trust}}  var sw = 0.0;
  var sg = 0.0;
  for (var k = lid.x; k < p.groups; k += {{.WG}}u) {
    sw += part[p.off + 2u * k];
    sg += part[p.off + 2u * k + 1u];
  }
  let t = total(vec2<f32>(sw, sg), 0u, lid.x);
  let wn = sqrt(t.x);
  let gn = sqrt(t.y);
  let q = select(1.0, p.eta * wn / gn, wn > 0.0 && gn > 0.0);
{{else if ne .Rule "adamw"}}  let q = 1.0;
{{end}}  let base = (wid.x + wid.y * nwg.x) * {{mul .WG .E}}u + lid.x;
  for (var k = 0u; k < {{.E}}u; k++) {
    let i = base + k * {{.WG}}u;
    if (i >= p.n) {
      return;
    }
{{if eq .Rule "adamw"}}    let g = grad[i];
    let mi = p.beta1 * m[i] + p.c1 * g;
    let vi = p.beta2 * v[i] + p.c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    w[i] = p.decay * w[i] - p.step * mi / (sqrt(vi) / p.bc2 + p.eps);
{{else}}    let wi = w[i];
    let mi = p.beta1 * m[i] + q * (grad[i] + p.wd * wi);
    m[i] = mi;
    w[i] = wi - p.lr * mi;
{{end}}  }
}
