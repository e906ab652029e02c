// bf16_split.h: F32 vectors split into bf16 terms for the AVX-512 BF16 dot products (vdpbf16ps) of
// the attention step loop (attn_simd.inc) and the single-row matmul (matmul.c). The instruction
// multiplies bf16 pairs exactly and sums them in F32; an F32 operand x goes in as a sum of bf16
// terms: hi = bf16(x) (round to nearest even), then the same of the exact remainder x - hi, and so on,
// each term taking 8 more significant bits: two terms leave |x - hi - lo| <= 2^-18 |x|, three 2^-27.
#ifndef DV_BF16_SPLIT_H
#define DV_BF16_SPLIT_H
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#define DV_BF16_SPLIT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

// x -> *hi = bf16(x) (16 values), returns x - hi (exact in F32)
DV_BF16_SPLIT_TARGET static inline __m512 dv_bf16_split_term(__m512 x, __m256i *hi) {
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    *hi = h;
    return _mm512_sub_ps(x, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
}

// x ~ hi + lo, |x - hi - lo| <= 2^-18 |x|
DV_BF16_SPLIT_TARGET static inline void dv_bf16_split2(__m512 x, __m256i *hi, __m256i *lo) {
    *lo = (__m256i)_mm512_cvtneps_pbh(dv_bf16_split_term(x, hi));
}

// x ~ hi + mid + lo, |x - hi - mid - lo| <= 2^-27 |x|
DV_BF16_SPLIT_TARGET static inline void dv_bf16_split3(__m512 x, __m256i *hi, __m256i *mid, __m256i *lo) {
    *lo = (__m256i)_mm512_cvtneps_pbh(dv_bf16_split_term(dv_bf16_split_term(x, hi), mid));
}
#endif
#endif
