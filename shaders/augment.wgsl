// augment: the Barlow Twins view augmentations over a batch of 8-bit
// source images, one stage per specialisation (.Stage), every random
// choice drawn on the CPU and read from the per-sample record m (META
// words per sample, f32 or bitcast u32, laid out by package augment):
//   0 source byte offset, 1 source H, 2 source W, 3 source channels,
//   4..7 ax, bx, ay, by (output pixel centre → source coordinate per axis),
//   8 jittered, 9..12 jitter order, 13..16 brightness, contrast and
//   saturation factors and hue shift, 17 gray, 18 blurred, 19 solarized,
//   20 blur radius r, 21.. the 2r+1 blur weights.
// Each stage repeats the CPU path's arithmetic in the same order
// (pipeline.Augmenter.Apply), so the two differ by float rounding only.
struct Params {
  n: u32,      // samples
  size: u32,   // output side
  threshold: f32,
  mean0: f32, mean1: f32, mean2: f32,
  inv0: f32, inv1: f32, inv2: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
const META: u32 = {{.Meta}}u;
const C: u32 = {{.C}}u;

fn mu(k: u32, i: u32) -> u32 { return bitcast<u32>(m[k * META + i]); }
fn mf(k: u32, i: u32) -> f32 { return m[k * META + i]; }
fn clamp01(v: f32) -> f32 { return clamp(v, 0.0, 1.0); }
const LUMA = vec3<f32>(0.299, 0.587, 0.114);

{{if eq .Stage "resize"}}
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn weight(x0: f32) -> f32 {
  let x = abs(x0);
{{if .Bicubic}}  let a = -0.5;
  if (x < 1.0) { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0; }
  if (x < 2.0) { return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a; }
  return 0.0;
{{else}}  return max(1.0 - x, 0.0);
{{end}}}

// Axis is one output coordinate's taps, as pipeline's taps.plan computes
// them: PIL's kernel widened by the downscaling factor, clipped to the
// image and renormalised.
struct Axis { lo: i32, hi: i32, c: f32, inv: f32, sum: f32 }

fn plan(a: f32, b: f32, k: u32, n: i32) -> Axis {
  let scale = abs(a);
  let support = {{if .Bicubic}}2.0{{else}}1.0{{end}} * max(scale, 1.0);
  let inv = 1.0 / max(scale, 1.0);
  let taps = i32(ceil(support)) * 2 + 1;
  let c = a * (f32(k) + 0.5) + b;
  var lo = max(i32(floor(c - support + 0.5)), 0);
  var hi = min(i32(ceil(c + support - 0.5)), n - 1);
  if (lo > hi) {
    lo = min(max(i32(c), 0), n - 1);
    hi = lo;
  }
  if (hi - lo + 1 > taps) { hi = lo + taps - 1; }
  var sum = 0.0;
  for (var j = lo; j <= hi; j++) { sum += weight((f32(j) + 0.5 - c) * inv); }
  return Axis(lo, hi, c, inv, sum);
}

fn w(ax: Axis, j: i32) -> f32 {
  if (ax.sum == 0.0) { return select(0.0, 1.0, j == ax.lo); }
  return weight((f32(j) + 0.5 - ax.c) * ax.inv) / ax.sum;
}

// px reads channel ch of source pixel (x, y), converting RGB to luma when
// the output has one channel (the CPU path resamples RGB and converts
// after; the map is linear, so only rounding differs).
fn px(off: u32, sw: u32, sc: u32, x: i32, y: i32, ch: u32) -> f32 {
  let i = off + (u32(y) * sw + u32(x)) * sc + ch;
  return f32((src[i >> 2u] >> ((i & 3u) * 8u)) & 255u) / 255.0;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.z;
  let s = p.size;
  if (gid.x >= s || gid.y >= s || k >= p.n) { return; }
  let off = mu(k, 0u);
  let sh = i32(mu(k, 1u));
  let sw = mu(k, 2u);
  let sc = mu(k, 3u);
  let ax = plan(mf(k, 4u), mf(k, 5u), gid.x, i32(sw));
  let ay = plan(mf(k, 6u), mf(k, 7u), gid.y, sh);
  var acc = vec3<f32>(0.0);
  for (var i = ay.lo; i <= ay.hi; i++) {
    let wy = w(ay, i);
    var row = vec3<f32>(0.0);
    for (var j = ax.lo; j <= ax.hi; j++) {
      let wx = w(ax, j);
      if (sc == 1u) {
        row += vec3<f32>(wx * px(off, sw, sc, j, i, 0u));
      } else {
        row += wx * vec3<f32>(px(off, sw, sc, j, i, 0u), px(off, sw, sc, j, i, 1u), px(off, sw, sc, j, i, 2u));
      }
    }
    acc += wy * row;
  }
{{if .Bicubic}}  acc = clamp(acc, vec3<f32>(0.0), vec3<f32>(1.0));
{{end}}  let n = s * s;
  let o = k * C * n + gid.y * s + gid.x;
{{if eq .C 1}}  if (sc == 3u) { out[o] = dot(LUMA, acc); } else { out[o] = acc.x; }
{{else}}  out[o] = acc.x;
  out[o + n] = acc.y;
  out[o + 2u * n] = acc.z;
{{end}}}
{{end}}

{{if eq .Stage "colour"}}
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> img: array<f32>;

var<workgroup> part: array<f32, 256>;

fn luma(base: u32, n: u32, i: u32) -> f32 {
  if (C == 1u) { return img[base + i]; }
  return LUMA.x * img[base + i] + LUMA.y * img[base + n + i] + LUMA.z * img[base + 2u * n + i];
}

fn rgb2hsv(c: vec3<f32>) -> vec3<f32> {
  let mx = max(max(c.x, c.y), c.z);
  let mn = min(min(c.x, c.y), c.z);
  let d = mx - mn;
  if (d == 0.0) { return vec3<f32>(0.0, 0.0, mx); }
  var h: f32;
  if (mx == c.x) { h = (c.y - c.z) / d; }
  else if (mx == c.y) { h = 2.0 + (c.z - c.x) / d; }
  else { h = 4.0 + (c.x - c.y) / d; }
  h /= 6.0;
  if (h < 0.0) { h += 1.0; }
  return vec3<f32>(h, d / mx, mx);
}

fn hsv2rgb(c: vec3<f32>) -> vec3<f32> {
  let h6 = c.x * 6.0;
  let sector = i32(h6);
  let f = h6 - f32(sector);
  let v = c.z;
  let pp = v * (1.0 - c.y);
  let q = v * (1.0 - c.y * f);
  let t = v * (1.0 - c.y * (1.0 - f));
  switch (sector % 6) {
    case 0: { return vec3<f32>(v, t, pp); }
    case 1: { return vec3<f32>(q, v, pp); }
    case 2: { return vec3<f32>(pp, v, t); }
    case 3: { return vec3<f32>(pp, q, v); }
    case 4: { return vec3<f32>(t, pp, v); }
    default: { return vec3<f32>(v, pp, q); }
  }
}

// One workgroup per sample runs the jitter operations in the drawn order,
// then grayscale; contrast's mean luma is a workgroup reduction. Every pass
// gives invocation lid the pixels lid, lid+256, … with all their channels,
// so each invocation only reads what it wrote and only the reduction needs
// barriers.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let n = p.size * p.size;
  let base = k * C * n;
  if (mu(k, 8u) != 0u) {
    for (var slot = 0u; slot < 4u; slot++) {
      let op = mu(k, 9u + slot);
      let f = mf(k, 13u + op);
      if (op == 0u && f != 1.0) {
        for (var i = lid; i < n; i += 256u) {
          for (var ch = 0u; ch < C; ch++) { img[base + ch * n + i] = clamp01(img[base + ch * n + i] * f); }
        }
      }
      if (op == 1u && f != 1.0) {
        var s = 0.0;
        for (var i = lid; i < n; i += 256u) { s += luma(base, n, i); }
        part[lid] = s;
        workgroupBarrier();
        for (var h = 128u; h > 0u; h >>= 1u) {
          if (lid < h) { part[lid] += part[lid + h]; }
          workgroupBarrier();
        }
        let mean = part[0] / f32(n) * (1.0 - f);
        workgroupBarrier();
        for (var i = lid; i < n; i += 256u) {
          for (var ch = 0u; ch < C; ch++) { img[base + ch * n + i] = clamp01(f * img[base + ch * n + i] + mean); }
        }
      }
      if (C == 3u && op == 2u && f != 1.0) {
        for (var i = lid; i < n; i += 256u) {
          let l = luma(base, n, i) * (1.0 - f);
          img[base + i] = clamp01(f * img[base + i] + l);
          img[base + n + i] = clamp01(f * img[base + n + i] + l);
          img[base + 2u * n + i] = clamp01(f * img[base + 2u * n + i] + l);
        }
      }
      if (C == 3u && op == 3u && f != 0.0) {
        for (var i = lid; i < n; i += 256u) {
          var hsv = rgb2hsv(vec3<f32>(img[base + i], img[base + n + i], img[base + 2u * n + i]));
          hsv.x += f;
          hsv.x -= floor(hsv.x);
          let c = hsv2rgb(hsv);
          img[base + i] = c.x;
          img[base + n + i] = c.y;
          img[base + 2u * n + i] = c.z;
        }
      }
    }
  }
  if (C == 3u && mu(k, 17u) != 0u) {
    for (var i = lid; i < n; i += 256u) {
      let l = luma(base, n, i);
      img[base + i] = l;
      img[base + n + i] = l;
      img[base + 2u * n + i] = l;
    }
  }
}
{{end}}

{{if eq .Stage "blur"}}
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// reflect mirrors without repeating the edge (PyTorch's "reflect").
fn reflect(i: i32, n: i32) -> i32 {
  if (i < 0) { return -i; }
  if (i >= n) { return 2 * (n - 1) - i; }
  return i;
}

// One separable pass (.Vertical or not) of the Gaussian blur of the
// samples that drew it, with the CPU's weights; the others are copied.
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = p.size;
  let k = gid.z / C;
  if (gid.x >= s || gid.y >= s || k >= p.n) { return; }
  let base = gid.z * s * s;
  let o = base + gid.y * s + gid.x;
  let r = i32(mu(k, 20u));
  if (mu(k, 18u) == 0u || r == 0) {
    y[o] = x[o];
    return;
  }
  var acc = 0.0;
  for (var j = 0; j <= 2 * r; j++) {
{{if .Vertical}}    let t = u32(reflect(i32(gid.y) + j - r, i32(s))) * s + gid.x;
{{else}}    let t = gid.y * s + u32(reflect(i32(gid.x) + j - r, i32(s)));
{{end}}    acc += mf(k, 21u + u32(j)) * x[base + t];
  }
  y[o] = acc;
}
{{end}}

{{if eq .Stage "finish"}}
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> img: array<f32>;

// Solarization where drawn, then normalisation.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let n = p.size * p.size;
  if (i >= p.n * C * n) { return; }
  let k = i / (C * n);
  let ch = (i / n) % C;
  var v = img[i];
  if (mu(k, 19u) != 0u && v >= p.threshold) { v = 1.0 - v; }
  var mean = array<f32, 3>(p.mean0, p.mean1, p.mean2);
  var inv = array<f32, 3>(p.inv0, p.inv1, p.inv2);
  img[i] = (v - mean[ch]) * inv[ch];
}
{{end}}
