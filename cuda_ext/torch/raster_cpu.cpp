// D4E rasterizer, CPU kernels (multi-threaded with at::parallel_for, float and double) + bindings.
//
//   rasterize_fwd(pos (B,V,4), tri (F,3) int32, H, W) -> rast (B,H,W,4)
//   rasterize_bwd(pos, tri, rast, grad_rast (B,H,W,4)) -> grad_pos (B,V,4)
//   interpolate_fwd(attr (Ba,V,C), rast, tri) -> out (B,H,W,C)                     (Ba = B or 1)
//   interpolate_bwd(attr, rast, tri, grad_out) -> (grad_attr (Ba,V,C), grad_rast (B,H,W,4))
//
// Rules and formulas: cuda_ext/common/raster_common.h and d4e/render/raster/reference.py.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "raster_common.h"

namespace {

using d4e::Tri;

constexpr int kBand = 8;  // rows per work unit of the visibility pass

void check_inputs(const torch::Tensor& pos, const torch::Tensor& tri) {
  TORCH_CHECK(pos.dim() == 3 && pos.size(2) == 4, "pos must be (B, V, 4)");
  TORCH_CHECK(tri.dim() == 2 && tri.size(1) == 3, "tri must be (F, 3)");
  TORCH_CHECK(tri.scalar_type() == torch::kInt32, "tri must be int32");
  TORCH_CHECK(!pos.is_cuda() && !tri.is_cuda(), "CPU kernel got CUDA tensors");
}

template <typename T>
void rasterize_fwd_impl(const T* pos, const int* tri, T* rast, int64_t B, int64_t V, int64_t F, int H, int W) {
  std::vector<Tri<T>> tris(B * F);
  at::parallel_for(0, B * F, 1024, [&](int64_t s, int64_t e) {
    for (int64_t k = s; k < e; ++k) {
      int64_t b = k / F, f = k % F;
      d4e::tri_load(tris[k], pos + b * V * 4, tri + f * 3, H, W);
    }
  });
  std::vector<T> xs(W), ys(H);  // pixel-centre tables (same values as d4e::pixel_center)
  for (int j = 0; j < W; ++j) xs[j] = d4e::pixel_center<T>(j, W);
  for (int i = 0; i < H; ++i) ys[i] = d4e::pixel_center<T>(i, H);
  const int64_t nband = (H + kBand - 1) / kBand;
  at::parallel_for(0, B * nband, 1, [&](int64_t s, int64_t e) {
    std::vector<T> depth(kBand * W);
    std::vector<int> id(kBand * W);
    for (int64_t u = s; u < e; ++u) {
      const int64_t b = u / nband;
      const int y0 = int(u % nband) * kBand, y1 = std::min(H, y0 + kBand);  // rows [y0, y1)
      std::fill(depth.begin(), depth.end(), std::numeric_limits<T>::infinity());
      std::fill(id.begin(), id.end(), -1);
      const Tri<T>* tb = tris.data() + b * F;
      for (int64_t f = 0; f < F; ++f) {
        const Tri<T>& t = tb[f];
        if (!t.valid || t.r1 < y0 || t.r0 >= y1) continue;
        const int ra = std::max(t.r0, y0), rb = std::min(t.r1, y1 - 1);
        for (int i = ra; i <= rb; ++i) {
          const T py = ys[i];
          T* drow = depth.data() + (i - y0) * W;
          int* irow = id.data() + (i - y0) * W;
          int ca, cb;
          d4e::row_span(t, py, W, ca, cb);
          for (int j = ca; j <= cb; ++j) {
            T e0, e1, e2, A, d;
            if (d4e::cover(t, xs[j], py, e0, e1, e2, A, d) && d < drow[j]) {
              drow[j] = d;
              irow[j] = int(f);
            }
          }
        }
      }
      for (int i = y0; i < y1; ++i) {
        const T py = ys[i];
        for (int j = 0; j < W; ++j) {
          const int f = id[(i - y0) * W + j];
          T* o = rast + ((b * H + i) * W + j) * 4;
          if (f < 0) {
            o[0] = o[1] = o[2] = o[3] = T(0);
            continue;
          }
          const Tri<T>& t = tb[f];
          T e0, e1, e2, A, d, b0, b1;
          d4e::cover(t, xs[j], py, e0, e1, e2, A, d);
          d4e::bary(t, e0, e1, e2, b0, b1);
          o[0] = b0;
          o[1] = b1;
          o[2] = d;
          o[3] = T(f + 1);
        }
      }
    }
  });
}

torch::Tensor rasterize_fwd(torch::Tensor pos, torch::Tensor tri, int64_t H, int64_t W) {
  check_inputs(pos, tri);
  pos = pos.contiguous();
  tri = tri.contiguous();
  if (pos.size(0) == 0 || tri.size(0) == 0 || H == 0 || W == 0) return torch::zeros({pos.size(0), H, W, 4}, pos.options());
  auto rast = torch::empty({pos.size(0), H, W, 4}, pos.options());  // every pixel is written
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_fwd", [&] {
    rasterize_fwd_impl<scalar_t>(pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), rast.data_ptr<scalar_t>(),
                                 pos.size(0), pos.size(1), tri.size(0), int(H), int(W));
  });
  return rast;
}

// Work split into `nchunk` pixel ranges, each accumulating into its own buffer slice (no races).
inline int64_t num_chunks(int64_t npix) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (npix + 4095) / 4096));
}

template <typename T>
void rasterize_bwd_impl(const T* pos, const int* tri, const T* rast, const T* grad, T* gbuf, int64_t B, int64_t V,
                        int64_t F, int H, int W, int64_t nchunk) {
  const int64_t npix = B * H * W, per = (npix + nchunk - 1) / nchunk;
  at::parallel_for(0, nchunk, 1, [&](int64_t s, int64_t e) {
    for (int64_t c = s; c < e; ++c) {
      T* g = gbuf + c * B * V * 4;
      for (int64_t p = c * per; p < std::min(npix, (c + 1) * per); ++p) {
        const T* r = rast + p * 4;
        const int f = int(r[3] + T(0.5)) - 1;  // ids are stored exactly; round for safety
        if (f < 0 || f >= F) continue;
        const T* gr = grad + p * 4;
        if (gr[0] == T(0) && gr[1] == T(0) && gr[2] == T(0)) continue;
        const int64_t b = p / (int64_t(H) * W);
        const int i = int((p / W) % H), j = int(p % W);
        Tri<T> t;
        const int* tf = tri + f * 3;
        d4e::tri_load_proj(t, pos + b * V * 4, tf);
        T gv[3][4];
        d4e::bary_grad(t, d4e::pixel_center<T>(j, W), d4e::pixel_center<T>(i, H), gr[0], gr[1], gr[2], gv);
        for (int k = 0; k < 3; ++k) {
          T* dst = g + (b * V + tf[k]) * 4;
          for (int q = 0; q < 4; ++q) dst[q] += gv[k][q];
        }
      }
    }
  });
}

torch::Tensor rasterize_bwd(torch::Tensor pos, torch::Tensor tri, torch::Tensor rast, torch::Tensor grad) {
  check_inputs(pos, tri);
  pos = pos.contiguous();
  tri = tri.contiguous();
  rast = rast.contiguous();
  grad = grad.contiguous().to(pos.scalar_type());
  const int64_t B = pos.size(0), V = pos.size(1), H = rast.size(1), W = rast.size(2);
  const int64_t nchunk = num_chunks(B * H * W);
  auto gbuf = torch::zeros({nchunk, B, V, 4}, pos.options());
  if (B * H * W > 0 && tri.size(0) > 0) {
    AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_bwd", [&] {
      rasterize_bwd_impl<scalar_t>(pos.data_ptr<scalar_t>(), tri.data_ptr<int>(), rast.data_ptr<scalar_t>(),
                                   grad.data_ptr<scalar_t>(), gbuf.data_ptr<scalar_t>(), B, V, tri.size(0), int(H),
                                   int(W), nchunk);
    });
  }
  return nchunk == 1 ? gbuf[0] : gbuf.sum(0);
}

template <typename T>
void interpolate_fwd_impl(const T* attr, const T* rast, const int* tri, T* out, int64_t Ba, int64_t B, int64_t V,
                          int64_t F, int64_t npix_b, int64_t C) {
  at::parallel_for(0, B * npix_b, 2048, [&](int64_t s, int64_t e) {
    for (int64_t p = s; p < e; ++p) {
      const T* r = rast + p * 4;
      const int f = int(r[3] + T(0.5)) - 1;  // ids are stored exactly; round for safety
      T* o = out + p * C;
      if (f < 0 || f >= F) continue;
      const int64_t b = Ba == 1 ? 0 : p / npix_b;
      const int* tf = tri + f * 3;
      const T* a0 = attr + (b * V + tf[0]) * C;
      const T* a1 = attr + (b * V + tf[1]) * C;
      const T* a2 = attr + (b * V + tf[2]) * C;
      const T b0 = r[0], b1 = r[1], b2 = T(1) - b0 - b1;
      for (int64_t c = 0; c < C; ++c) o[c] = b0 * a0[c] + b1 * a1[c] + b2 * a2[c];
    }
  });
}

torch::Tensor interpolate_fwd(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri) {
  TORCH_CHECK(attr.dim() == 3 && rast.dim() == 4 && rast.size(3) == 4, "bad attr/rast shapes");
  attr = attr.contiguous();
  rast = rast.contiguous().to(attr.scalar_type());
  tri = tri.contiguous();
  const int64_t B = rast.size(0), H = rast.size(1), W = rast.size(2), C = attr.size(2);
  auto out = torch::zeros({B, H, W, C}, attr.options());
  if (B * H * W * C == 0 || tri.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_fwd", [&] {
    interpolate_fwd_impl<scalar_t>(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(),
                                   out.data_ptr<scalar_t>(), attr.size(0), B, attr.size(1), tri.size(0), H * W, C);
  });
  return out;
}

template <typename T>
void interpolate_bwd_impl(const T* attr, const T* rast, const int* tri, const T* gout, T* gbuf, T* grast, int64_t Ba,
                          int64_t B, int64_t V, int64_t F, int64_t npix_b, int64_t C, int64_t nchunk) {
  const int64_t npix = B * npix_b, per = (npix + nchunk - 1) / nchunk;
  at::parallel_for(0, nchunk, 1, [&](int64_t s, int64_t e) {
    for (int64_t ch = s; ch < e; ++ch) {
      T* g = gbuf + ch * Ba * V * C;
      for (int64_t p = ch * per; p < std::min(npix, (ch + 1) * per); ++p) {
        const T* r = rast + p * 4;
        const int f = int(r[3] + T(0.5)) - 1;  // ids are stored exactly; round for safety
        if (f < 0 || f >= F) continue;
        const int64_t b = Ba == 1 ? 0 : p / npix_b;
        const int* tf = tri + f * 3;
        const T* a0 = attr + (b * V + tf[0]) * C;
        const T* a1 = attr + (b * V + tf[1]) * C;
        const T* a2 = attr + (b * V + tf[2]) * C;
        T* g0 = g + (b * V + tf[0]) * C;
        T* g1 = g + (b * V + tf[1]) * C;
        T* g2 = g + (b * V + tf[2]) * C;
        const T* go = gout + p * C;
        const T b0 = r[0], b1 = r[1], b2 = T(1) - b0 - b1;
        T gb0 = 0, gb1 = 0;
        for (int64_t c = 0; c < C; ++c) {
          const T y = go[c];
          g0[c] += b0 * y;
          g1[c] += b1 * y;
          g2[c] += b2 * y;
          gb0 += y * (a0[c] - a2[c]);
          gb1 += y * (a1[c] - a2[c]);
        }
        grast[p * 4 + 0] = gb0;
        grast[p * 4 + 1] = gb1;
      }
    }
  });
}

std::vector<torch::Tensor> interpolate_bwd(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                           torch::Tensor gout) {
  attr = attr.contiguous();
  rast = rast.contiguous().to(attr.scalar_type());
  tri = tri.contiguous();
  gout = gout.contiguous().to(attr.scalar_type());
  const int64_t B = rast.size(0), H = rast.size(1), W = rast.size(2), C = attr.size(2);
  const int64_t Ba = attr.size(0), V = attr.size(1);
  const int64_t nchunk = num_chunks(B * H * W);
  auto gbuf = torch::zeros({nchunk, Ba, V, C}, attr.options());
  auto grast = torch::zeros({B, H, W, 4}, attr.options());
  if (B * H * W * C > 0 && tri.size(0) > 0) {
    AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_bwd", [&] {
      interpolate_bwd_impl<scalar_t>(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int>(),
                                     gout.data_ptr<scalar_t>(), gbuf.data_ptr<scalar_t>(), grast.data_ptr<scalar_t>(),
                                     Ba, B, V, tri.size(0), H * W, C, nchunk);
    });
  }
  return {nchunk == 1 ? gbuf[0] : gbuf.sum(0), grast};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "D4E differentiable rasterizer, CPU kernels";
  m.def("rasterize_fwd", &rasterize_fwd, "rasterize (CPU)");
  m.def("rasterize_bwd", &rasterize_bwd, "rasterize gradient w.r.t. pos (CPU)");
  m.def("interpolate_fwd", &interpolate_fwd, "interpolate (CPU)");
  m.def("interpolate_bwd", &interpolate_bwd, "interpolate gradient (CPU)");
}
