// Helpers shared by the mlakv tests: number formats written from their definitions (an oracle
// independent of src/core/fp8.h), a small RNG, poisoned byte buffers and tensor builders.
//
// Everything here is derived from the format definitions, not from the library:
//   - widening: bf16 is the top half of an fp32; fp16 fields are decoded with ldexp;
//   - FP8: all 256 codes are decoded to double from (exponent bits, mantissa bits, bias, fn/fnuz),
//     and encoding picks the nearest finite value with ties to the even code, saturating beyond
//     the largest finite value, NaN -> the format's NaN, and no negative zero in the fnuz formats.
#pragma once

#include <mlakv/mlakv.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace tu {

constexpr uint8_t kPoison = 0xA5;

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline std::string hex(uint64_t v, int digits = 2) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%0*llx", digits, (unsigned long long)v);
  return b;
}
inline std::string fmt_float(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g (%a)", v, v);
  return b;
}

// ---- input element types -----------------------------------------------------------------------
inline int dtype_size(mlakv_dtype d) {
  switch (d) {
    case MLAKV_DTYPE_BF16:
    case MLAKV_DTYPE_FP16: return 2;
    case MLAKV_DTYPE_FP32: return 4;
    default: return 1;
  }
}
inline const char* dtype_name(mlakv_dtype d) {
  switch (d) {
    case MLAKV_DTYPE_BF16: return "bf16";
    case MLAKV_DTYPE_FP16: return "fp16";
    case MLAKV_DTYPE_FP32: return "fp32";
    case MLAKV_DTYPE_E4M3FN: return "e4m3fn";
    case MLAKV_DTYPE_E5M2: return "e5m2";
    case MLAKV_DTYPE_E4M3FNUZ: return "e4m3fnuz";
    case MLAKV_DTYPE_E5M2FNUZ: return "e5m2fnuz";
    default: return "invalid";
  }
}
constexpr mlakv_dtype kInputDtypes[3] = {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32};
constexpr mlakv_dtype kFp8Dtypes[4] = {MLAKV_DTYPE_E4M3FN, MLAKV_DTYPE_E5M2, MLAKV_DTYPE_E4M3FNUZ,
                                       MLAKV_DTYPE_E5M2FNUZ};

// bf16 is by definition the upper 16 bits of an fp32.
inline float widen_bf16(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

// fp16 from its fields: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
inline float widen_fp16(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(double(m), -24);  // subnormal: m * 2^-24
  else
    v = std::ldexp(double(1024 + m), e - 25);  // (1 + m/1024) * 2^(e-15)
  return float(sign ? -v : v);  // exact: every fp16 value is an fp32 value
}

// Widen one raw element (bits as stored) of an input dtype.
inline float widen(mlakv_dtype d, uint32_t raw) {
  switch (d) {
    case MLAKV_DTYPE_BF16: return widen_bf16(uint16_t(raw));
    case MLAKV_DTYPE_FP16: return widen_fp16(uint16_t(raw));
    default: return bits_f32(raw);
  }
}

// ---- nearest-representable rounding over a monotone code table -------------------------------------
// vals[i] is the value of non-negative code i (ascending). Returns the code nearest to a >= 0,
// ties to the even code, saturating to the last code. Comparisons against the exact midpoint in
// double (the values are dyadic with few bits, so midpoints are exact).
inline uint32_t nearest_code(const std::vector<double>& vals, double a) {
  if (a >= vals.back()) return uint32_t(vals.size() - 1);
  const size_t j = size_t(std::upper_bound(vals.begin(), vals.end(), a) - vals.begin());  // vals[j-1] <= a < vals[j]
  const size_t i = j - 1;
  const double mid = (vals[i] + vals[j]) / 2;
  if (a < mid) return uint32_t(i);
  if (a > mid) return uint32_t(j);
  return uint32_t((i % 2 == 0) ? i : j);
}

// Value -> fp16 bits, round to nearest even, overflow to inf (IEEE), for building test inputs.
inline uint16_t to_fp16(double v) {
  static const std::vector<double> vals = [] {
    std::vector<double> t;
    for (uint32_t c = 0; c < 0x7C00; ++c) t.push_back(double(widen_fp16(uint16_t(c))));
    return t;
  }();
  if (std::isnan(v)) return 0x7E00;
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(v);
  if (a >= 65520.0) return sign | 0x7C00;  // 65504 + half an ulp rounds to inf
  return uint16_t(sign | nearest_code(vals, a));
}
// Value -> bf16 bits (double -> fp32 -> bf16, each RNE), for building test inputs.
inline uint16_t to_bf16(double v) {
  const uint32_t u = f32_bits(float(v));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
// Value -> raw element bits of an input dtype (rounded if not representable).
inline uint32_t to_raw(mlakv_dtype d, double v) {
  switch (d) {
    case MLAKV_DTYPE_BF16: return to_bf16(v);
    case MLAKV_DTYPE_FP16: return to_fp16(v);
    default: return f32_bits(float(v));
  }
}
// True if v is exactly representable in the input dtype.
inline bool exact_in(mlakv_dtype d, double v) {
  return std::isnan(v) || double(widen(d, to_raw(d, v))) == v;
}

// ---- FP8 formats from their definitions --------------------------------------------------------------
struct Fp8Def {
  mlakv_dtype dtype;
  const char* name;
  int exp_bits, mant_bits, bias;
  bool fnuz;          // no infinities, no negative zero, the single NaN is 0x80
  double max_finite;  // from MISSION.md, checked against the decoded table
  uint8_t nan_code;
};
inline const Fp8Def& fp8_def(mlakv_dtype d) {
  static const Fp8Def defs[4] = {
      {MLAKV_DTYPE_E4M3FN, "e4m3fn", 4, 3, 7, false, 448.0, 0x7F},
      {MLAKV_DTYPE_E5M2, "e5m2", 5, 2, 15, false, 57344.0, 0x7F},
      {MLAKV_DTYPE_E4M3FNUZ, "e4m3fnuz", 4, 3, 8, true, 240.0, 0x80},
      {MLAKV_DTYPE_E5M2FNUZ, "e5m2fnuz", 5, 2, 16, true, 57344.0, 0x80},
  };
  return defs[d - MLAKV_DTYPE_E4M3FN];
}

// Decodes one code. e4m3fn: S.1111.111 is NaN, no infinities (OCP). e5m2: IEEE-like, exponent
// all ones is inf (mantissa 0) or NaN. fnuz: 0x80 is the only NaN, every other code is finite.
inline double fp8_decode(const Fp8Def& f, uint8_t code) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const int sign = code >> 7;
  const int e = (code >> f.mant_bits) & ((1 << f.exp_bits) - 1);
  const int m = code & ((1 << f.mant_bits) - 1);
  const int emax = (1 << f.exp_bits) - 1;
  if (f.fnuz) {
    if (code == 0x80) return nan;
  } else if (f.exp_bits == 4) {
    if (e == emax && m == (1 << f.mant_bits) - 1) return nan;
  } else if (e == emax) {
    return m ? nan : (sign ? -HUGE_VAL : HUGE_VAL);
  }
  const double mag = e == 0 ? std::ldexp(double(m), 1 - f.bias - f.mant_bits)
                            : std::ldexp(double((1 << f.mant_bits) + m), e - f.bias - f.mant_bits);
  return sign ? -mag : mag;
}

// The independent encoder (oracle (b) of test_fp8_encoder.cpp).
class Fp8Oracle {
 public:
  explicit Fp8Oracle(mlakv_dtype d) : def_(fp8_def(d)) {
    for (int c = 0; c < 128; ++c) {
      const double v = fp8_decode(def_, uint8_t(c));
      if (!std::isfinite(v)) break;  // positive codes are monotone; the first non-finite ends them
      vals_.push_back(v);
    }
  }
  const Fp8Def& def() const { return def_; }
  const std::vector<double>& positive_values() const { return vals_; }
  double max_finite() const { return vals_.back(); }
  double min_subnormal() const { return vals_[1]; }
  uint8_t encode(float p) const {
    if (std::isnan(p)) return def_.nan_code;
    const uint32_t mag = nearest_code(vals_, std::fabs(double(p)));  // saturates (inf included)
    if (def_.fnuz && mag == 0) return 0x00;                          // no negative zero
    return uint8_t((std::signbit(p) ? 0x80u : 0u) | mag);
  }

 private:
  const Fp8Def& def_;
  std::vector<double> vals_;
};

// ---- random numbers -----------------------------------------------------------------------------------
struct Rng {  // splitmix64: fast, good enough, reproducible from one seed
  uint64_t x;
  explicit Rng(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t u32() { return uint32_t(next() >> 32); }
  // uniform in [0, n)
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo + 1))); }
  template <class T, size_t N>
  T pick(const T (&a)[N]) { return a[below(N)]; }
};

// ---- byte buffers -------------------------------------------------------------------------------------
// A byte buffer whose data() is 64-byte aligned plus `misalign` bytes, filled with `fill`.
class Buf {
 public:
  Buf() = default;
  Buf(size_t bytes, size_t misalign = 0, uint8_t fill = kPoison) { reset(bytes, misalign, fill); }
  void reset(size_t bytes, size_t misalign = 0, uint8_t fill = kPoison) {
    mem_.assign(bytes + misalign + 64, fill);
    const uintptr_t p = reinterpret_cast<uintptr_t>(mem_.data());
    start_ = size_t((64 - p % 64) % 64) + misalign;
    size_ = bytes;
  }
  uint8_t* data() { return mem_.data() + start_; }
  const uint8_t* data() const { return mem_.data() + start_; }
  size_t size() const { return size_; }
  void fill(uint8_t b) { std::memset(data(), b, size_); }
  std::vector<uint8_t> bytes() const { return std::vector<uint8_t>(data(), data() + size_); }

  // raw element access at an element index for an element size of 1, 2 or 4 bytes
  uint32_t get(int esize, int64_t idx) const {
    uint32_t v = 0;
    std::memcpy(&v, data() + idx * esize, size_t(esize));  // little-endian hosts
    return v;
  }
  void put(int esize, int64_t idx, uint32_t v) { std::memcpy(data() + idx * esize, &v, size_t(esize)); }

 private:
  std::vector<uint8_t> mem_;
  size_t start_ = 0, size_ = 0;
};

// Elements spanned by a strided [n0, n1, n2] view starting at element `off` (inner stride 1).
inline int64_t span_elems(int64_t off, int64_t n0, int64_t n1, int64_t n2, int64_t st0, int64_t st1) {
  if (n0 == 0 || n1 == 0 || n2 == 0) return off;
  return off + (n0 - 1) * st0 + (n1 - 1) * st1 + n2;
}

// Compares two byte ranges; returns the number of differing bytes and describes the first ones.
inline size_t diff_bytes(const uint8_t* got, const uint8_t* want, size_t n, std::string* first) {
  size_t bad = 0;
  std::ostringstream o;
  for (size_t i = 0; i < n; ++i)
    if (got[i] != want[i]) {
      if (bad < 4) o << " [byte " << i << ": got " << hex(got[i]) << ", want " << hex(want[i]) << "]";
      ++bad;
    }
  if (first) *first = o.str();
  return bad;
}
inline bool all_bytes(const uint8_t* p, size_t n, uint8_t b) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != b) return false;
  return true;
}

// ---- tensors ------------------------------------------------------------------------------------------
inline mlakv_tensor tensor3(void* data, mlakv_dtype dt, int64_t n0, int64_t n1, int64_t n2, int64_t st0,
                            int64_t st1, int64_t st2 = 1) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data;
  t.dtype = dt;
  t.ndim = 3;
  t.shape[0] = n0;
  t.shape[1] = n1;
  t.shape[2] = n2;
  t.strides[0] = st0;
  t.strides[1] = st1;
  t.strides[2] = st2;
  return t;
}
inline mlakv_tensor tensor2(void* data, mlakv_dtype dt, int64_t n0, int64_t n1, int64_t st0, int64_t st1 = 1) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data;
  t.dtype = dt;
  t.ndim = 2;
  t.shape[0] = n0;
  t.shape[1] = n1;
  t.strides[0] = st0;
  t.strides[1] = st1;
  return t;
}
// Pointer `elems` elements of size `esize` past p.
inline void* at(void* p, int64_t elems, int esize) { return static_cast<uint8_t*>(p) + elems * esize; }

// ---- the reference backend's dispatch table -----------------------------------------------------------
// Tables that make the reference backend use one variant for every call.
inline const char* force_variant_table(const char* variant) {
  if (std::strcmp(variant, "vector") == 0) return "arch=0-0 s=1-* sxh=1-* dims=any variant=vector  # test: rows everywhere\n";
  return "arch=0-0 s=1-* sxh=1-* dims=any variant=strided  # test: strided everywhere\n";
}
// Restores the built-in reference table when it goes out of scope.
struct TableGuard {
  TableGuard() = default;
  TableGuard(const TableGuard&) = delete;
  TableGuard& operator=(const TableGuard&) = delete;
  ~TableGuard() { mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE); }
};

inline std::string plan_text(const mlakv_pack_args& a, mlakv_status* st = nullptr) {
  char buf[1024];
  buf[0] = '\0';
  const mlakv_status s = mlakv_pack_fp8_plan(&a, buf, sizeof buf, nullptr);
  if (st) *st = s;
  return buf;
}

}  // namespace tu
