// D4E rasterizer: per-triangle / per-pixel math shared by the CPU and CUDA kernels.
//
// Every formula mirrors d4e/render/raster/reference.py operation by operation (same evaluation
// order) so that the kernels agree with the reference bit for bit except at exact edge/depth ties.
//
// Conventions (docs/CONVENTIONS.md): clip-space pos (x, y, z, w); pixel (row i, col j) is sampled at
// x_ndc = (2j+1)/W - 1, y_ndc = (2i+1)/H - 1; rast = (b0, b1, z/w, tri_id + 1).
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define D4E_HD __host__ __device__ __forceinline__
#else
#define D4E_HD inline
#endif

namespace d4e {

template <typename T>
struct Tri {
  T X[3], Y[3], Z[3], w[3];  // NDC x/w, y/w, z/w and w of the three vertices
  int c0, c1, r0, r1;        // conservative pixel bbox (inclusive), clamped to the image
  bool valid;                // w > 0, finite, non-zero area, bbox on screen
};

template <typename T>
D4E_HD T pixel_center(int k, int n) {
  return T(2 * k + 1) / T(n) - T(1);
}

template <typename T>
D4E_HD bool finite_(T v) {
  return v == v && v - v == T(0);  // not NaN, not +-inf
}

// Load vertex v (pointer to 4 values x, y, z, w) into slot k of t.
template <typename T>
D4E_HD void tri_project(Tri<T>& t, int k, const T* v) {
  t.w[k] = v[3];
  t.X[k] = v[0] / v[3];
  t.Y[k] = v[1] / v[3];
  t.Z[k] = v[2] / v[3];
}

template <typename T>
D4E_HD int clamp_index(T v, int lo, int hi) {
  if (!(v >= T(lo))) return lo;  // also NaN
  if (v > T(hi)) return hi;
  return int(v);
}

// Validity and bbox of a projected triangle (after tri_project for k = 0, 1, 2).
template <typename T>
D4E_HD void tri_finish(Tri<T>& t, const T* v0, const T* v1, const T* v2, int H, int W) {
  bool ok = t.w[0] > T(0) && t.w[1] > T(0) && t.w[2] > T(0);
  for (int k = 0; k < 4; ++k) ok = ok && finite_(v0[k]) && finite_(v1[k]) && finite_(v2[k]);
  T area = (t.X[1] - t.X[0]) * (t.Y[2] - t.Y[0]) - (t.X[2] - t.X[0]) * (t.Y[1] - t.Y[0]);
  ok = ok && (area != T(0));
  T xmin = fmin(fmin(t.X[0], t.X[1]), t.X[2]), xmax = fmax(fmax(t.X[0], t.X[1]), t.X[2]);
  T ymin = fmin(fmin(t.Y[0], t.Y[1]), t.Y[2]), ymax = fmax(fmax(t.Y[0], t.Y[1]), t.Y[2]);
  T c0 = floor((xmin + T(1)) * (T(W) * T(0.5)) - T(0.5)) - T(1);
  T c1 = floor((xmax + T(1)) * (T(W) * T(0.5)) - T(0.5)) + T(1);
  T r0 = floor((ymin + T(1)) * (T(H) * T(0.5)) - T(0.5)) - T(1);
  T r1 = floor((ymax + T(1)) * (T(H) * T(0.5)) - T(0.5)) + T(1);
  t.c0 = clamp_index(c0, 0, W - 1);
  t.c1 = clamp_index(c1, -1, W - 1);
  t.r0 = clamp_index(r0, 0, H - 1);
  t.r1 = clamp_index(r1, -1, H - 1);
  if (!ok) { t.c0 = 0; t.c1 = -1; t.r0 = 0; t.r1 = -1; }
  t.valid = ok && t.c0 <= t.c1 && t.r0 <= t.r1;
}

template <typename T>
D4E_HD void tri_load(Tri<T>& t, const T* pos_b, const int* tri_f, int H, int W) {
  const T* v0 = pos_b + 4 * (long long)tri_f[0];
  const T* v1 = pos_b + 4 * (long long)tri_f[1];
  const T* v2 = pos_b + 4 * (long long)tri_f[2];
  tri_project(t, 0, v0);
  tri_project(t, 1, v1);
  tri_project(t, 2, v2);
  tri_finish(t, v0, v1, v2, H, W);
}

// Conservative column range [*c0, *c1] (inclusive, within the bbox) of row centre py that can hold
// covered pixel centres: the exact test (cover) still decides, so this only has to be a superset.
// Each edge function is linear in px, e_i = c_i + s_i px with s_i = Y_j - Y_k; the bound it implies
// is widened by its floating-point error bound plus one pixel, and ignored when ill-conditioned.
template <typename T>
D4E_HD void row_span(const Tri<T>& t, T py, int W, int& c0, int& c1) {
  const T eps = T(sizeof(T) == 4 ? 1.1920929e-7 : 2.220446049250313e-16);
  T area = (t.X[1] - t.X[0]) * (t.Y[2] - t.Y[0]) - (t.X[2] - t.X[0]) * (t.Y[1] - t.Y[0]);
  T ax = fabs(t.X[0]) + fabs(t.X[1]) + fabs(t.X[2]) + T(2), ay = fabs(t.Y[0]) + fabs(t.Y[1]) + fabs(t.Y[2]) + T(2);
  c0 = t.c0;
  c1 = t.c1;
  if (fabs(area) < T(64) * eps * ax * ay) return;  // near-degenerate: orientation may flip per pixel
  const T sg = area > T(0) ? T(1) : T(-1);
  T lo = T(-3), hi = T(3);  // NDC, beyond the screen
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    const T s = sg * (t.Y[j] - t.Y[k]);
    const T c = sg * (t.X[j] * (t.Y[k] - py) - t.X[k] * (t.Y[j] - py));
    const T tol = T(16) * eps * (fabs(t.X[j]) + fabs(t.X[k]) + T(2)) * (fabs(t.Y[j]) + fabs(t.Y[k]) + T(2));
    if (fabs(s) * T(W) <= tol * T(1e4)) continue;  // nearly horizontal edge: no useful bound
    const T root = -c / s, slack = tol / fabs(s);
    if (s > T(0)) lo = fmax(lo, root - slack);  // s px + c >= 0  <=>  px >= -c / s
    else hi = fmin(hi, root + slack);
  }
  const T half = T(W) * T(0.5);
  const T a = floor((lo + T(1)) * half - T(0.5)) - T(1), b = floor((hi + T(1)) * half - T(0.5)) + T(1);
  if (a > T(c0)) c0 = a > T(c1) ? c1 + 1 : int(a);
  if (b < T(c1)) c1 = b < T(c0) ? c0 - 1 : int(b);
}

// Projection only (no validity/bbox): for pixels already known to be covered by the triangle.
template <typename T>
D4E_HD void tri_load_proj(Tri<T>& t, const T* pos_b, const int* tri_f) {
  tri_project(t, 0, pos_b + 4 * (long long)tri_f[0]);
  tri_project(t, 1, pos_b + 4 * (long long)tri_f[1]);
  tri_project(t, 2, pos_b + 4 * (long long)tri_f[2]);
}

// Edge functions e_i = (X_j - px)(Y_k - py) - (X_k - px)(Y_j - py), j = i+1, k = i+2 (mod 3).
template <typename T>
D4E_HD void edges(const Tri<T>& t, T px, T py, T& e0, T& e1, T& e2) {
  e0 = (t.X[1] - px) * (t.Y[2] - py) - (t.X[2] - px) * (t.Y[1] - py);
  e1 = (t.X[2] - px) * (t.Y[0] - py) - (t.X[0] - px) * (t.Y[2] - py);
  e2 = (t.X[0] - px) * (t.Y[1] - py) - (t.X[1] - px) * (t.Y[0] - py);
}

// Coverage of pixel centre (px, py) and its depth z/w; true if covered with z/w in [-1, 1].
template <typename T>
D4E_HD bool cover(const Tri<T>& t, T px, T py, T& e0, T& e1, T& e2, T& A, T& d) {
  edges(t, px, py, e0, e1, e2);
  A = e0 + e1 + e2;
  bool inside = (A > T(0) && e0 >= T(0) && e1 >= T(0) && e2 >= T(0)) ||
                (A < T(0) && e0 <= T(0) && e1 <= T(0) && e2 <= T(0));
  if (!inside) return false;
  d = (e0 * t.Z[0] + e1 * t.Z[1] + e2 * t.Z[2]) / A;
  return d >= T(-1) && d <= T(1);
}

// Perspective-correct barycentrics b_i = (e_i / w_i) / sum_k (e_k / w_k).
template <typename T>
D4E_HD void bary(const Tri<T>& t, T e0, T e1, T e2, T& b0, T& b1) {
  T r0 = e0 / t.w[0], r1 = e1 / t.w[1], r2 = e2 / t.w[2];
  T S = r0 + r1 + r2;
  b0 = r0 / S;
  b1 = r1 / S;
}

// Gradient of (b0, b1, d) at pixel (px, py) w.r.t. the clip-space vertices (x, y, z, w) of t.
// g[k][c] receives dL/dpos[vertex k][c] (overwritten).
template <typename T>
D4E_HD void bary_grad(const Tri<T>& t, T px, T py, T gb0, T gb1, T gd, T g[3][4]) {
  T e[3];
  edges(t, px, py, e[0], e[1], e[2]);
  const T iA = T(1) / (e[0] + e[1] + e[2]);
  const T d = (e[0] * t.Z[0] + e[1] * t.Z[1] + e[2] * t.Z[2]) * iA;
  const T iw[3] = {T(1) / t.w[0], T(1) / t.w[1], T(1) / t.w[2]};
  const T r[3] = {e[0] * iw[0], e[1] * iw[1], e[2] * iw[2]};
  const T iS = T(1) / (r[0] + r[1] + r[2]);
  const T b0 = r[0] * iS, b1 = r[1] * iS;
  const T gb[3] = {gb0, gb1, T(0)};
  const T sgb = gb0 * b0 + gb1 * b1;
  T gX[3] = {0, 0, 0}, gY[3] = {0, 0, 0}, gZ[3], gw[3], ge[3];
  for (int i = 0; i < 3; ++i) {
    const T gr = (gb[i] - sgb) * iS;               // dL/dr_i, r_i = e_i / w_i, b_i = r_i / sum r
    ge[i] = gr * iw[i] + gd * (t.Z[i] - d) * iA;   // dL/de_i (barycentrics and depth d = sum e Z / sum e)
    gw[i] = -gr * r[i] * iw[i];                    // dL/dw_i through r_i
    gZ[i] = gd * e[i] * iA;                        // dL/dZ_i
  }
  for (int i = 0; i < 3; ++i) {  // e_i = (X_j - px)(Y_k - py) - (X_k - px)(Y_j - py)
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    gX[j] += ge[i] * (t.Y[k] - py);
    gY[k] += ge[i] * (t.X[j] - px);
    gX[k] -= ge[i] * (t.Y[j] - py);
    gY[j] -= ge[i] * (t.X[k] - px);
  }
  for (int i = 0; i < 3; ++i) {  // X = x / w, Y = y / w, Z = z / w
    g[i][0] = gX[i] * iw[i];
    g[i][1] = gY[i] * iw[i];
    g[i][2] = gZ[i] * iw[i];
    g[i][3] = gw[i] - (gX[i] * t.X[i] + gY[i] * t.Y[i] + gZ[i] * t.Z[i]) * iw[i];
  }
}

}  // namespace d4e
