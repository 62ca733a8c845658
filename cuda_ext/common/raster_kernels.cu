// D4E rasterizer, CUDA kernels and their launchers (float and double). Plain CUDA, no torch
// headers (fast to compile); cuda_ext/torch/raster_cuda.cpp binds them to torch tensors.
// The per-pixel math is shared with the CPU kernel through raster_common.h.
//
// Visibility: one thread per (batch, triangle) walks the triangle's pixel bbox. Pass 1 takes the
// atomic minimum of an order-preserving 64-bit key of the depth; pass 2 takes, among the
// triangles whose depth equals that minimum, the atomic minimum triangle id (the same tie rule as
// the CPU kernel and the reference: smallest depth, then lowest id). A per-pixel resolve kernel
// then writes (b0, b1, z/w, id + 1). Gradients scatter with atomicAdd.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "raster_common.h"
#include "raster_cuda.h"

namespace {

using d4e::Tri;

constexpr int kThreads = 256;

__device__ __forceinline__ unsigned long long depth_key(double d) {
  unsigned long long u = (unsigned long long)__double_as_longlong(d);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

template <typename T>
__global__ void raster_pass(const T* __restrict__ pos, const int* __restrict__ tri, unsigned long long* zbuf,
                            int* idbuf, int64_t B, int64_t V, int64_t F, int H, int W, int pass) {
  const int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (k >= B * F) return;
  const int64_t b = k / F, f = k % F;
  Tri<T> t;
  d4e::tri_load(t, pos + b * V * 4, tri + f * 3, H, W);
  if (!t.valid) return;
  for (int i = t.r0; i <= t.r1; ++i) {
    const T py = d4e::pixel_center<T>(i, H);
    int ca, cb;
    d4e::row_span(t, py, W, ca, cb);
    for (int j = ca; j <= cb; ++j) {
      T e0, e1, e2, A, d;
      if (!d4e::cover(t, d4e::pixel_center<T>(j, W), py, e0, e1, e2, A, d)) continue;
      const int64_t p = (b * H + i) * W + j;
      const unsigned long long key = depth_key(double(d));
      if (pass == 0) {
        if (key < zbuf[p]) atomicMin(zbuf + p, key);
      } else if (key == zbuf[p]) {
        atomicMin(idbuf + p, int(f));
      }
    }
  }
}

template <typename T>
__global__ void raster_resolve(const T* __restrict__ pos, const int* __restrict__ tri, const int* __restrict__ idbuf,
                               T* rast, int64_t B, int64_t V, int H, int W) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= B * H * W) return;
  const int f = idbuf[p];
  if (f == INT_MAX) return;
  const int64_t b = p / ((int64_t)H * W);
  const int i = int((p / W) % H), j = int(p % W);
  Tri<T> t;
  d4e::tri_load_proj(t, pos + b * V * 4, tri + (int64_t)f * 3);
  T e0, e1, e2, A, d, b0, b1;
  d4e::cover(t, d4e::pixel_center<T>(j, W), d4e::pixel_center<T>(i, H), e0, e1, e2, A, d);
  d4e::bary(t, e0, e1, e2, b0, b1);
  T* o = rast + p * 4;
  o[0] = b0;
  o[1] = b1;
  o[2] = d;
  o[3] = T(f + 1);
}

template <typename T>
__global__ void raster_grad(const T* __restrict__ pos, const int* __restrict__ tri, const T* __restrict__ rast,
                            const T* __restrict__ grad, T* gpos, int64_t B, int64_t V, int64_t F, int H, int W) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= B * H * W) return;
  const int f = int(rast[p * 4 + 3] + T(0.5)) - 1;
  if (f < 0 || f >= F) return;
  const T* g = grad + p * 4;
  if (g[0] == T(0) && g[1] == T(0) && g[2] == T(0)) return;
  const int64_t b = p / ((int64_t)H * W);
  const int i = int((p / W) % H), j = int(p % W);
  const int* tf = tri + (int64_t)f * 3;
  Tri<T> t;
  d4e::tri_load_proj(t, pos + b * V * 4, tf);
  T gv[3][4];
  d4e::bary_grad(t, d4e::pixel_center<T>(j, W), d4e::pixel_center<T>(i, H), g[0], g[1], g[2], gv);
  for (int k = 0; k < 3; ++k)
    for (int q = 0; q < 4; ++q) atomicAdd(gpos + (b * V + tf[k]) * 4 + q, gv[k][q]);
}

template <typename T>
__global__ void interp_fwd(const T* __restrict__ attr, const T* __restrict__ rast, const int* __restrict__ tri, T* out,
                           int64_t Ba, int64_t B, int64_t V, int64_t F, int64_t npix_b, int64_t C) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= B * npix_b) return;
  const T* r = rast + p * 4;
  const int f = int(r[3] + T(0.5)) - 1;
  if (f < 0 || f >= F) return;
  const int64_t b = Ba == 1 ? 0 : p / npix_b;
  const int* tf = tri + (int64_t)f * 3;
  const T* a0 = attr + (b * V + tf[0]) * C;
  const T* a1 = attr + (b * V + tf[1]) * C;
  const T* a2 = attr + (b * V + tf[2]) * C;
  const T b0 = r[0], b1 = r[1], b2 = T(1) - b0 - b1;
  T* o = out + p * C;
  for (int64_t c = 0; c < C; ++c) o[c] = b0 * a0[c] + b1 * a1[c] + b2 * a2[c];
}

template <typename T>
__global__ void interp_bwd(const T* __restrict__ attr, const T* __restrict__ rast, const int* __restrict__ tri,
                           const T* __restrict__ gout, T* gattr, T* grast, int64_t Ba, int64_t B, int64_t V, int64_t F,
                           int64_t npix_b, int64_t C) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= B * npix_b) return;
  const T* r = rast + p * 4;
  const int f = int(r[3] + T(0.5)) - 1;
  if (f < 0 || f >= F) return;
  const int64_t b = Ba == 1 ? 0 : p / npix_b;
  const int* tf = tri + (int64_t)f * 3;
  const T* a0 = attr + (b * V + tf[0]) * C;
  const T* a1 = attr + (b * V + tf[1]) * C;
  const T* a2 = attr + (b * V + tf[2]) * C;
  T* g0 = gattr + (b * V + tf[0]) * C;
  T* g1 = gattr + (b * V + tf[1]) * C;
  T* g2 = gattr + (b * V + tf[2]) * C;
  const T* go = gout + p * C;
  const T b0 = r[0], b1 = r[1], b2 = T(1) - b0 - b1;
  T gb0 = 0, gb1 = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T y = go[c];
    atomicAdd(g0 + c, b0 * y);
    atomicAdd(g1 + c, b1 * y);
    atomicAdd(g2 + c, b2 * y);
    gb0 += y * (a0[c] - a2[c]);
    gb1 += y * (a1[c] - a2[c]);
  }
  grast[p * 4 + 0] = gb0;
  grast[p * 4 + 1] = gb1;
}

inline unsigned blocks(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

}  // namespace

namespace d4e {

template <typename T>
void launch_rasterize_fwd(const T* pos, const int* tri, unsigned long long* zbuf, int* idbuf, T* rast, int64_t B,
                          int64_t V, int64_t F, int H, int W, cudaStream_t stream) {
  for (int pass = 0; pass < 2; ++pass)
    raster_pass<T><<<blocks(B * F), kThreads, 0, stream>>>(pos, tri, zbuf, idbuf, B, V, F, H, W, pass);
  raster_resolve<T><<<blocks(B * H * W), kThreads, 0, stream>>>(pos, tri, idbuf, rast, B, V, H, W);
}

template <typename T>
void launch_rasterize_bwd(const T* pos, const int* tri, const T* rast, const T* grad, T* gpos, int64_t B, int64_t V,
                          int64_t F, int H, int W, cudaStream_t stream) {
  raster_grad<T><<<blocks(B * H * W), kThreads, 0, stream>>>(pos, tri, rast, grad, gpos, B, V, F, H, W);
}

template <typename T>
void launch_interpolate_fwd(const T* attr, const T* rast, const int* tri, T* out, int64_t Ba, int64_t B, int64_t V,
                            int64_t F, int64_t npix_b, int64_t C, cudaStream_t stream) {
  interp_fwd<T><<<blocks(B * npix_b), kThreads, 0, stream>>>(attr, rast, tri, out, Ba, B, V, F, npix_b, C);
}

template <typename T>
void launch_interpolate_bwd(const T* attr, const T* rast, const int* tri, const T* gout, T* gattr, T* grast, int64_t Ba,
                            int64_t B, int64_t V, int64_t F, int64_t npix_b, int64_t C, cudaStream_t stream) {
  interp_bwd<T><<<blocks(B * npix_b), kThreads, 0, stream>>>(attr, rast, tri, gout, gattr, grast, Ba, B, V, F, npix_b, C);
}

#define D4E_INSTANTIATE(T)                                                                                           \
  template void launch_rasterize_fwd<T>(const T*, const int*, unsigned long long*, int*, T*, int64_t, int64_t,      \
                                        int64_t, int, int, cudaStream_t);                                            \
  template void launch_rasterize_bwd<T>(const T*, const int*, const T*, const T*, T*, int64_t, int64_t, int64_t, int, \
                                        int, cudaStream_t);                                                          \
  template void launch_interpolate_fwd<T>(const T*, const T*, const int*, T*, int64_t, int64_t, int64_t, int64_t,     \
                                          int64_t, int64_t, cudaStream_t);                                           \
  template void launch_interpolate_bwd<T>(const T*, const T*, const int*, const T*, T*, T*, int64_t, int64_t, int64_t, \
                                          int64_t, int64_t, int64_t, cudaStream_t);
D4E_INSTANTIATE(float)
D4E_INSTANTIATE(double)
#undef D4E_INSTANTIATE

}  // namespace d4e
