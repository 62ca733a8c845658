// D4E rasterizer, CUDA kernels (float and double) + bindings. Same entry points and semantics as
// raster_cpu.cpp; the per-pixel math is shared through cuda_ext/common/raster_common.h.
//
// Visibility: one thread per (batch, triangle) walks the triangle's pixel bbox. Pass 1 takes the
// atomic minimum of an order-preserving 64-bit key of the depth; pass 2 takes, among the
// triangles whose depth equals that minimum, the atomic minimum triangle id (the same tie rule as
// the CPU kernel and the reference: smallest depth, then lowest id). A per-pixel resolve kernel
// then writes (b0, b1, z/w, id + 1). Gradients scatter with atomicAdd.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <climits>
#include <vector>

#include "raster_common.h"

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
    for (int j = t.c0; j <= t.c1; ++j) {
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
  d4e::tri_load(t, pos + b * V * 4, tri + (int64_t)f * 3, H, W);
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
  const int f = int(rast[p * 4 + 3]) - 1;
  if (f < 0 || f >= F) return;
  const T* g = grad + p * 4;
  if (g[0] == T(0) && g[1] == T(0) && g[2] == T(0)) return;
  const int64_t b = p / ((int64_t)H * W);
  const int i = int((p / W) % H), j = int(p % W);
  const int* tf = tri + (int64_t)f * 3;
  Tri<T> t;
  d4e::tri_load(t, pos + b * V * 4, tf, H, W);
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
  const int f = int(r[3]) - 1;
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
  const int f = int(r[3]) - 1;
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

void check_cuda(const torch::Tensor& pos, const torch::Tensor& tri) {
  TORCH_CHECK(pos.is_cuda() && tri.is_cuda(), "CUDA kernel needs CUDA tensors");
  TORCH_CHECK(pos.dim() == 3 && pos.size(2) == 4, "pos must be (B, V, 4)");
  TORCH_CHECK(tri.dim() == 2 && tri.size(1) == 3 && tri.scalar_type() == torch::kInt32, "tri must be (F, 3) int32");
}

torch::Tensor rasterize_fwd(torch::Tensor pos, torch::Tensor tri, int64_t H, int64_t W) {
  check_cuda(pos, tri);
  const c10::cuda::CUDAGuard guard(pos.device());
  pos = pos.contiguous();
  tri = tri.contiguous();
  const int64_t B = pos.size(0), V = pos.size(1), F = tri.size(0);
  auto rast = torch::zeros({B, H, W, 4}, pos.options());
  if (B * F * H * W == 0) return rast;
  auto zbuf = torch::full({B, H, W}, -1, pos.options().dtype(torch::kInt64));  // all ones = +inf key
  auto idbuf = torch::full({B, H, W}, INT_MAX, pos.options().dtype(torch::kInt32));
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_fwd_cuda", [&] {
    auto* z = reinterpret_cast<unsigned long long*>(zbuf.data_ptr<int64_t>());
    for (int pass = 0; pass < 2; ++pass) {
      raster_pass<scalar_t><<<blocks(B * F), kThreads, 0, stream>>>(pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), z,
                                                                    idbuf.data_ptr<int>(), B, V, F, int(H), int(W), pass);
    }
    raster_resolve<scalar_t><<<blocks(B * H * W), kThreads, 0, stream>>>(
        pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), idbuf.data_ptr<int>(), rast.data_ptr<scalar_t>(), B, V, int(H),
        int(W));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return rast;
}

torch::Tensor rasterize_bwd(torch::Tensor pos, torch::Tensor tri, torch::Tensor rast, torch::Tensor grad) {
  check_cuda(pos, tri);
  const c10::cuda::CUDAGuard guard(pos.device());
  pos = pos.contiguous();
  tri = tri.contiguous();
  rast = rast.contiguous();
  grad = grad.contiguous().to(pos.scalar_type());
  const int64_t B = pos.size(0), V = pos.size(1), H = rast.size(1), W = rast.size(2);
  auto gpos = torch::zeros_like(pos);
  if (B * H * W == 0 || tri.size(0) == 0) return gpos;
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_bwd_cuda", [&] {
    raster_grad<scalar_t><<<blocks(B * H * W), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), rast.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
        gpos.data_ptr<scalar_t>(), B, V, tri.size(0), int(H), int(W));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return gpos;
}

torch::Tensor interpolate_fwd(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri) {
  TORCH_CHECK(attr.is_cuda() && rast.is_cuda() && tri.is_cuda(), "CUDA kernel needs CUDA tensors");
  const c10::cuda::CUDAGuard guard(attr.device());
  attr = attr.contiguous();
  rast = rast.contiguous().to(attr.scalar_type());
  tri = tri.contiguous();
  const int64_t B = rast.size(0), H = rast.size(1), W = rast.size(2), C = attr.size(2);
  auto out = torch::zeros({B, H, W, C}, attr.options());
  if (B * H * W * C == 0 || tri.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_fwd_cuda", [&] {
    interp_fwd<scalar_t><<<blocks(B * H * W), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(), out.data_ptr<scalar_t>(),
        attr.size(0), B, attr.size(1), tri.size(0), H * W, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::vector<torch::Tensor> interpolate_bwd(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                           torch::Tensor gout) {
  TORCH_CHECK(attr.is_cuda() && rast.is_cuda() && tri.is_cuda(), "CUDA kernel needs CUDA tensors");
  const c10::cuda::CUDAGuard guard(attr.device());
  attr = attr.contiguous();
  rast = rast.contiguous().to(attr.scalar_type());
  tri = tri.contiguous();
  gout = gout.contiguous().to(attr.scalar_type());
  const int64_t B = rast.size(0), H = rast.size(1), W = rast.size(2), C = attr.size(2);
  auto gattr = torch::zeros_like(attr);
  auto grast = torch::zeros({B, H, W, 4}, attr.options());
  if (B * H * W * C == 0 || tri.size(0) == 0) return {gattr, grast};
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_bwd_cuda", [&] {
    interp_bwd<scalar_t><<<blocks(B * H * W), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(), gout.data_ptr<scalar_t>(),
        gattr.data_ptr<scalar_t>(), grast.data_ptr<scalar_t>(), attr.size(0), B, attr.size(1), tri.size(0), H * W, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gattr, grast};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "D4E differentiable rasterizer, CUDA kernels";
  m.def("rasterize_fwd", &rasterize_fwd, "rasterize (CUDA)");
  m.def("rasterize_bwd", &rasterize_bwd, "rasterize gradient w.r.t. pos (CUDA)");
  m.def("interpolate_fwd", &interpolate_fwd, "interpolate (CUDA)");
  m.def("interpolate_bwd", &interpolate_bwd, "interpolate gradient (CUDA)");
}
