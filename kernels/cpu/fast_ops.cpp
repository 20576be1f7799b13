// kernels/cpu/fast_ops.cpp: threaded element-wise ops, rope, KV store, attention, get_rows.
// matmul lives in matmul.cpp.
#include "cpu/fast_ops.h"

#include "cpu/dequant.h"
#include "cpu/ref_ops.h"

namespace minerva::cpu::fast {

void get_rows(Context& c, const Tensor& table, const Tensor& ids, const Tensor& out) { ref::get_rows(table, ids, out); }
void rms_norm(Context& c, const Tensor& x, const Tensor& w, const Tensor& out, float eps) { ref::rms_norm(x, w, out, eps); }
void rope(Context& c, const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) { ref::rope(x, pos, p, ff); }
void kv_store(Context& c, const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) {
    ref::kv_store(k, v, kc, vc, rows);
}
void attention(Context& c, const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
               const AttentionParams& p) {
    ref::attention(q, kc, vc, span, out, p);
}
void swiglu(Context& c, const Tensor& gate, const Tensor& up, const Tensor& out) { ref::swiglu(gate, up, out); }
void add(Context& c, const Tensor& x, const Tensor& y) { ref::add(x, y); }
void gather_rows(Context& c, const Tensor& x, const Tensor& rows, const Tensor& out) { ref::gather_rows(x, rows, out); }

}  // namespace minerva::cpu::fast
