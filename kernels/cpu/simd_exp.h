// kernels/cpu/simd_exp.h: e^x written once over a vector type V (simd_math.h's Avx2,
// simd_avx512.h's Avx512), relative error ~2e-7 over the float range (inputs clamped to
// [-87.3, 88.3]): x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor polynomial,
// times 2^n. Templates only, so a TU compiled for one instruction set never shares a function
// body with one compiled for another.
#pragma once

namespace minerva::cpu {

template <class V>
inline typename V::F exp_poly(typename V::F x) {
    x = V::min(V::max(x, V::set1(-87.3f)), V::set1(88.3f));
    const typename V::F n = V::round(V::mul(x, V::set1(1.44269504089f)));
    typename V::F r = V::fnmadd(n, V::set1(0.693145751953125f), x);
    r = V::fnmadd(n, V::set1(1.428606765330187e-06f), r);
    typename V::F p = V::set1(1.f / 720);
    p = V::fmadd(p, r, V::set1(1.f / 120));
    p = V::fmadd(p, r, V::set1(1.f / 24));
    p = V::fmadd(p, r, V::set1(1.f / 6));
    p = V::fmadd(p, r, V::set1(0.5f));
    p = V::fmadd(p, r, V::set1(1.f));
    p = V::fmadd(p, r, V::set1(1.f));
    return V::scale_pow2(p, n);
}

}  // namespace minerva::cpu
