// SMSR sparse convolution for CPUs with AVX2 and FMA: an implicit GEMM over the active pixels.
//
// For every active pixel j, out[j, :] = sum over the 9 taps k of
//     dense_src[dense_nbr[j, k], :] @ w_dense[k] + sparse_src[sparse_nbr[j, k], :] @ w_sparse[k]
// where a negative dense index stands for a pixel beyond the image (zero). The neighbour rows are read
// through their indices while the products run, so no im2col or strip is ever written: the gather costs
// nothing beyond the loads a GEMM does anyway. Output channels are processed 16 at a time (the weights are
// zero-padded to a multiple of 16), pixels 6 at a time, so 12 accumulators stay in registers.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace {

constexpr int kPix = 6;

// The pixel blocks [b0, b1), each 6 active pixels (the last one repeats its final pixel).
void conv_blocks(int64_t b0, int64_t b1, int64_t n, int dc, int sc, int o, const float* ds, int64_t ds_stride,
                 const int32_t* dn, const float* wd, const float* ss, int64_t ss_stride, const int32_t* sn,
                 const float* ws, const float* zeros, float* res) {
  const float* rows[kPix];
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t j0 = b * kPix;
    const int valid = static_cast<int>(std::min<int64_t>(kPix, n - j0));
    for (int ob = 0; ob < o; ob += 16) {
      __m256 acc[kPix][2];
      for (int i = 0; i < kPix; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
      for (int src = 0; src < 2; ++src) {
        const int channels = src ? sc : dc;
        if (channels == 0) continue;
        for (int k = 0; k < 9; ++k) {
          for (int i = 0; i < kPix; ++i) {
            const int64_t j = (j0 + std::min(i, valid - 1)) * 9 + k;
            if (src) {
              rows[i] = ss + static_cast<int64_t>(sn[j]) * ss_stride;
            } else {
              const int32_t r = dn[j];
              rows[i] = r < 0 ? zeros : ds + r * ds_stride;
            }
          }
          const float* w = (src ? ws : wd) + static_cast<int64_t>(k) * channels * o + ob;
          for (int c = 0; c < channels; ++c) {
            const __m256 w0 = _mm256_loadu_ps(w + c * o);
            const __m256 w1 = _mm256_loadu_ps(w + c * o + 8);
            for (int i = 0; i < kPix; ++i) {
              const __m256 a = _mm256_broadcast_ss(rows[i] + c);
              acc[i][0] = _mm256_fmadd_ps(a, w0, acc[i][0]);
              acc[i][1] = _mm256_fmadd_ps(a, w1, acc[i][1]);
            }
          }
        }
      }
      // all 6 rows (the output has rows up to a multiple of 6): a store loop bounded by `valid` would index
      // acc at run time and make the compiler keep the accumulators in memory (three times slower, measured)
      for (int i = 0; i < kPix; ++i) {
        _mm256_storeu_ps(res + (j0 + i) * o + ob, acc[i][0]);
        _mm256_storeu_ps(res + (j0 + i) * o + ob + 8, acc[i][1]);
      }
    }
  }
}

}  // namespace

torch::Tensor sparse_conv(torch::Tensor dense_src, torch::Tensor dense_nbr, torch::Tensor w_dense,
                          torch::Tensor sparse_src, torch::Tensor sparse_nbr, torch::Tensor w_sparse) {
  TORCH_CHECK(dense_src.dtype() == torch::kFloat32 && sparse_src.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(dense_nbr.dtype() == torch::kInt32 && sparse_nbr.dtype() == torch::kInt32, "int32 indices");
  TORCH_CHECK(dense_nbr.is_contiguous() && sparse_nbr.is_contiguous() && dense_nbr.size(1) == 9, "(N, 9) indices");
  TORCH_CHECK((dense_src.size(1) == 0 || dense_src.stride(1) == 1) && (sparse_src.size(1) == 0 || sparse_src.stride(1) == 1),
              "rows must be contiguous");
  TORCH_CHECK(w_dense.is_contiguous() && w_sparse.is_contiguous(), "weights must be contiguous");
  const int64_t n = dense_nbr.size(0);
  const int dc = static_cast<int>(dense_src.size(1));
  const int sc = static_cast<int>(sparse_src.size(1));
  const int o = static_cast<int>(w_dense.size(2));
  TORCH_CHECK(o % 16 == 0 && w_sparse.size(2) == o, "output channels must be padded to a multiple of 16");
  TORCH_CHECK(w_dense.size(0) == 9 && w_dense.size(1) == dc && w_sparse.size(1) == sc, "weights and sources differ");
  auto out = torch::empty({(n + kPix - 1) / kPix * kPix, o}, dense_src.options());
  if (n == 0) return out;
  const std::vector<float> zeros(std::max(dc, 1), 0.0f);
  const float* ds = dense_src.data_ptr<float>();
  const float* ss = sparse_src.data_ptr<float>();
  const int64_t ds_stride = dense_src.stride(0), ss_stride = sparse_src.stride(0);
  const int32_t* dn = dense_nbr.data_ptr<int32_t>();
  const int32_t* sn = sparse_nbr.data_ptr<int32_t>();
  const float* wd = w_dense.data_ptr<float>();
  const float* ws = w_sparse.data_ptr<float>();
  const float* zp = zeros.data();
  float* res = out.data_ptr<float>();
  at::parallel_for(0, (n + kPix - 1) / kPix, 8, [=](int64_t b0, int64_t b1) {
    conv_blocks(b0, b1, n, dc, sc, o, ds, ds_stride, dn, wd, ss, ss_stride, sn, ws, zp, res);
  });
  return out.narrow(0, 0, n);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sparse_conv", &sparse_conv, "SMSR implicit-GEMM sparse 3x3 convolution over active pixels");
}
