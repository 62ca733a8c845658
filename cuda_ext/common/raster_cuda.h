// Launchers of the CUDA rasterizer kernels (cuda_ext/common/raster_kernels.cu), on raw device
// pointers; instantiated for float and double. Shapes as in cuda_ext/torch/raster_cuda.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace d4e {

// zbuf: B*H*W keys initialised to all ones; idbuf: B*H*W ints initialised to INT_MAX; rast zeroed.
template <typename T>
void launch_rasterize_fwd(const T* pos, const int* tri, unsigned long long* zbuf, int* idbuf, T* rast, int64_t B,
                          int64_t V, int64_t F, int H, int W, cudaStream_t stream);
// gpos zeroed (B, V, 4).
template <typename T>
void launch_rasterize_bwd(const T* pos, const int* tri, const T* rast, const T* grad, T* gpos, int64_t B, int64_t V,
                          int64_t F, int H, int W, cudaStream_t stream);
// out zeroed (B, H, W, C).
template <typename T>
void launch_interpolate_fwd(const T* attr, const T* rast, const int* tri, T* out, int64_t Ba, int64_t B, int64_t V,
                            int64_t F, int64_t npix_b, int64_t C, cudaStream_t stream);
// gattr zeroed (Ba, V, C), grast zeroed (B, H, W, 4).
template <typename T>
void launch_interpolate_bwd(const T* attr, const T* rast, const int* tri, const T* gout, T* gattr, T* grast, int64_t Ba,
                            int64_t B, int64_t V, int64_t F, int64_t npix_b, int64_t C, cudaStream_t stream);

}  // namespace d4e
