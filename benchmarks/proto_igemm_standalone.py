"""Standalone speed of an implicit-GEMM 3x3 convolution over active pixels against oneDNN's dense conv.

The smallest form of the idea behind SMSR's ``igemm`` kernel (``src/srkit/archs/smsr_cpu.cpp``): 64 -> 64
channels, one source, fixed sizes, random masks over a 240x160 map. Each output row is the sum over the 9 taps
of a neighbour row, read through an index, times the tap's weights, in blocks of 6 pixels x 16 channels held
in AVX2 registers. It prints GFLOPS for both and checks the values against the dense conv. Built with
``torch.utils.cpp_extension.load_inline`` (needs a C++ compiler and ninja).

    NT=1 python benchmarks/proto_igemm_standalone.py    # threads from NT (default 2)
"""

import os
import time

import torch
import torch.nn.functional as F
from torch.utils.cpp_extension import load_inline

torch.set_num_threads(int(os.environ.get("NT", 2)))
cpp = r'''
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

// out[j, :] = sum_k src[nbr[j, k], :] @ w[k]   (C = O = 64; w laid out [k][c][o])
torch::Tensor igemm(torch::Tensor src, torch::Tensor nbr, torch::Tensor w) {
  const int64_t n = nbr.size(0);
  const int C = 64, O = 64;
  auto out = torch::empty({n, O}, src.options());
  const float* S = src.data_ptr<float>();
  const int32_t* NB = nbr.data_ptr<int32_t>();
  const float* W = w.data_ptr<float>();
  float* OUT = out.data_ptr<float>();
  const int64_t nblk = (n + 5) / 6;
  at::parallel_for(0, nblk, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t j0 = b * 6;
      int rows = (int)std::min<int64_t>(6, n - j0);
      for (int ob = 0; ob < O / 16; ++ob) {
        __m256 acc[6][2];
        for (int i = 0; i < 6; ++i) { acc[i][0] = _mm256_setzero_ps(); acc[i][1] = _mm256_setzero_ps(); }
        for (int k = 0; k < 9; ++k) {
          const float* a[6];
          for (int i = 0; i < 6; ++i) {
            int64_t j = j0 + (i < rows ? i : rows - 1);
            a[i] = S + (int64_t)NB[j * 9 + k] * C;
          }
          const float* wk = W + (int64_t)k * C * O + ob * 16;
          for (int c = 0; c < C; ++c) {
            __m256 w0 = _mm256_loadu_ps(wk + c * O);
            __m256 w1 = _mm256_loadu_ps(wk + c * O + 8);
            for (int i = 0; i < 6; ++i) {
              __m256 av = _mm256_broadcast_ss(a[i] + c);
              acc[i][0] = _mm256_fmadd_ps(av, w0, acc[i][0]);
              acc[i][1] = _mm256_fmadd_ps(av, w1, acc[i][1]);
            }
          }
        }
        for (int i = 0; i < rows; ++i) {
          _mm256_storeu_ps(OUT + (j0 + i) * O + ob * 16, acc[i][0]);
          _mm256_storeu_ps(OUT + (j0 + i) * O + ob * 16 + 8, acc[i][1]);
        }
      }
    }
  });
  return out;
}
'''
mod = load_inline('igemm_proto2', cpp_sources=cpp, functions=['igemm'], extra_cflags=['-O3', '-mavx2', '-mfma', '-fopenmp'], extra_ldflags=['-fopenmp'], verbose=False)

def tm(f, r=15):
    f(); b = 1e9
    for _ in range(r):
        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
    return b * 1e3

h, w = 240, 160
x = torch.randn(1, 64, h, w).contiguous(memory_format=torch.channels_last)
wt = torch.randn(64, 64, 3, 3) * 0.05
dense_ms = tm(lambda: F.conv2d(x, wt, padding=1))
src = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 64), torch.zeros(1, 64)])
wk = wt.permute(2, 3, 1, 0).reshape(9, 64, 64).contiguous()
for p in [0.3, 0.5, 0.8, 1.0]:
    mask = torch.rand(h, w) < p
    flat = mask.reshape(-1).nonzero().squeeze(1)
    yy, xx = flat // w, flat % w
    idx = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y2, x2 = yy + dy, xx + dx
            ok = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
            idx.append(torch.where(ok, y2 * w + x2, h * w))
    nbr = torch.stack(idx, 1).to(torch.int32).contiguous()
    out = mod.igemm(src, nbr, wk)
    ref = F.conv2d(x, wt, padding=1).permute(0, 2, 3, 1).reshape(-1, 64)[flat]
    err = float((out - ref).abs().max())
    ms = tm(lambda: mod.igemm(src, nbr, wk))
    n = flat.numel()
    print(f"p={p}: N={n} igemm {ms:.2f} ms ({2*n*64*576/ms/1e6:.1f} GFLOPS) vs dense conv {dense_ms:.2f} ms ({2*h*w*64*576/dense_ms/1e6:.1f} GFLOPS); ratio {ms/dense_ms:.2f} for share {n/(h*w):.2f}; err {err:.1e}")
