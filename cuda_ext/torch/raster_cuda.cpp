// D4E rasterizer, CUDA entry points bound to torch (same signatures and semantics as
// raster_cpu.cpp). The kernels live in cuda_ext/common/raster_kernels.cu (plain CUDA, compiled by
// nvcc without torch headers); this file is compiled by the host compiler.
//
//   rasterize_fwd(pos (B,V,4), tri (F,3) int32, H, W) -> rast (B,H,W,4)
//   rasterize_bwd(pos, tri, rast, grad_rast) -> grad_pos (B,V,4)
//   interpolate_fwd(attr (Ba,V,C), rast, tri) -> out (B,H,W,C)
//   interpolate_bwd(attr, rast, tri, grad_out) -> (grad_attr, grad_rast)
#include <torch/extension.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <climits>
#include <vector>

#include "raster_cuda.h"

namespace {

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
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_fwd_cuda", [&] {
    d4e::launch_rasterize_fwd<scalar_t>(pos.data_ptr<scalar_t>(), tri.data_ptr<int>(),
                                        reinterpret_cast<unsigned long long*>(zbuf.data_ptr<int64_t>()),
                                        idbuf.data_ptr<int>(), rast.data_ptr<scalar_t>(), B, V, F, int(H), int(W),
                                        c10::cuda::getCurrentCUDAStream());
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
    d4e::launch_rasterize_bwd<scalar_t>(pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), rast.data_ptr<scalar_t>(),
                                        grad.data_ptr<scalar_t>(), gpos.data_ptr<scalar_t>(), B, V, tri.size(0), int(H),
                                        int(W), c10::cuda::getCurrentCUDAStream());
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
    d4e::launch_interpolate_fwd<scalar_t>(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(),
                                          out.data_ptr<scalar_t>(), attr.size(0), B, attr.size(1), tri.size(0), H * W,
                                          C, c10::cuda::getCurrentCUDAStream());
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
    d4e::launch_interpolate_bwd<scalar_t>(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(),
                                          gout.data_ptr<scalar_t>(), gattr.data_ptr<scalar_t>(),
                                          grast.data_ptr<scalar_t>(), attr.size(0), B, attr.size(1), tri.size(0), H * W,
                                          C, c10::cuda::getCurrentCUDAStream());
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
