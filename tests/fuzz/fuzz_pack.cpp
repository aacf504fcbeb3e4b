// libFuzzer harness over mlakv's C API on the reference backend (built by tests/fuzz/CMakeLists.txt,
// run by scripts/fuzz.sh). One input drives:
//   mlakv_dispatch_table_set / _get / _reset (sometimes, before the calls; always _reset at the end),
//   mlakv_pack_fp8_plan and mlakv_pack_fp8 on one call built from the input, then follow-up calls that
//   hit the per-thread plan cache (c_api/mlakv.cpp: identical args; args that differ only in data
//   pointers, scales, scale pointers, amax pointers or stream), or in the scale granularity.
//
// Memory: every tensor, scale and amax pointer points into one 64 KiB arena with PROT_NONE pages on
// both sides (or is NULL, or a wild value); the argument struct is placed so that its last byte abuts a
// PROT_NONE page. mlakv_pack_fp8 is only called when the plan call rejected the arguments, or when
// every operand's bytes (computed here from shapes, strides and dtype) lie inside the arena.
//
// Checks (any failure prints the call and aborts, so libFuzzer keeps the input):
//   - plan and pack return the same status; the plan call never changes the arena;
//   - rejected: the arena is byte-identical to its snapshot, mlakv_last_error() is non-empty and
//     mlakv_status_string() of the status is a known one (not "MLAKV_ERR_UNKNOWN...");
//   - accepted: the arena equals the snapshot with every output byte written by an independent
//     oracle (tests/test_util.h: widening and FP8 encoding from the format definitions; per-head
//     multipliers read from the scale arrays' bytes in the snapshot: head j of k_out, its k_nope part
//     and its copy of k_pe, uses k[j]) and every amax float replaced by the value computed here from
//     mlakv.h's rule (m = the largest |x| over the non-NaN inputs widened to fp32, +0 if none, -0 as
//     +0; stored = max(old, m) compared as int32 bit patterns; per tensor: k over all of k_nope and
//     k_pe, v over all of v; per head j: k over head j of k_nope and all of k_pe, v over head j of v);
//     nothing else changed (0.2's amax arrays accumulate: follow-ups do not re-poison them);
//   - an accepted, non-empty plan names the granularity and the amax arrays ("scales=per-head
//     amax=k,v", as tests/test_scales.cpp checks);
//   - the status is one the arguments allow (analyze() below): every argument error that the
//     header / README / the contract of the validation rework defines as one is a "must" (the call
//     must be rejected, with one of the must statuses: their order is not specified), things this
//     harness cannot decide are a "may". Overlap and row aliasing of the outputs are decided by brute
//     force over the arena's bytes whenever every operand lies in the arena; there, OVERLAP means a
//     real shared byte between an output (k_out, v_out, k_amax, v_amax) and any other operand (the
//     scale arrays are read-only operands: they may share bytes with the inputs and with each other),
//     STRIDE (with sane strides) two rows of one output sharing a byte, and the status 22 ("could not
//     prove disjoint") is never allowed. So an accepted call's amax arrays share no byte with anything.
//   0.2 fields (docs/RELIABILITY.md): scale_granularity not 0/1 or reserved != 0 is INVALID_ARGUMENT
//   (also for an empty call); per head, a NULL scale array is NULL_POINTER; scale and amax arrays
//   (1 float, or h per head) not 4-byte aligned are ALIGNMENT; an empty call reads and writes none.
//   Contract of the validation rework this is written against: an empty call (s = 0 or h = 0)
//   checks struct_size, enums, dtypes, ranks, non-negative extents, that shapes agree, head dims
//   (1..2^20) and that an explicit backend is compiled in; not pointers, not strides; it writes
//   nothing and returns MLAKV_OK. A tensor whose byte span exceeds 2^57 bytes, or a byte offset that
//   overflows int64, is MLAKV_ERR_SIZE_OVERFLOW.
//
// Counts (executions, calls, accepted, rejections by status) are printed to stderr at exit.
// MLAKV_FUZZ_TRACE=1: each call's status (and mlakv_last_error()) is printed (to see what a seed does).
// MLAKV_FUZZ_KEEP_GOING=1 (triage): each distinct failed check is printed once, its input saved as
// finding-<n> in the working directory, and fuzzing goes on (scripts/fuzz.sh still fails).
// Follow-up kinds (kind % 4): 0 the same args; 1 data pointers moved (mask bits 0-4 pick tensors, bit 5
// deltas x 32, bit 6 one delta for all); 2 scales (kind bits 2, 3) and scale pointers (bits 4, 5: moved
// by sd[], or NULL for sd = 0); 3 both, and a new stream (also kind bit 6); kind bit 7: the next
// follow-up starts from this call; mask bit 7: first switch the table (to one whose only row matches
// no call here, or back to the built-in one). Independently of the kind, amode bits 0, 1 move k_amax /
// v_amax by ad[0] / ad[1] (x 4 with bit 3; ad = 0: NULL; from NULL: to arena + (u16) ad), bit 2 flips
// the scale granularity between per tensor and per head (a new geometry: validated from scratch).
//
// ---- input format (little-endian; reading past the end gives zeros, so a short input is a small
// valid bf16 -> e4m3fn call); tests/fuzz/gen_corpus.py writes the seed corpus in this format ----------
//   u8  ctl0        bits 0-1 table mode (0 none, 1 raw text = the input's tail, 2 rows from tokens,
//                   3 rows from tokens + a catch-all row); bits 2-4 follow-up calls (0-7)
//   u8  ctl1        bit 0 small-buffer plan check; bit 1 table API on other backends / NULL text;
//                   bit 2 NULL args; bit 3 table round trip (get -> set -> get); bit 4 the
//                   mlakv_pack_args_init* functions with struct_size
//   u8  in_dtype    %3: bf16 fp16 fp32          u8 out_dtype  %4: e4m3fn e5m2 e4m3fnuz e5m2fnuz
//   u8  dims_mode   %4: 0 (128,64,128); 1 1+d%24 each; 2 multiples of 8; 3 raw u16s
//   u16 d0, d1, d2
//   u8  s, u8 h     b < 128: s = (b + 2) % 9, h = (b + 3) % 17; else b - 128
//   u8  layout      bit 0 k_nope|v interleaved in one buffer; 1 k_out|v_out interleaved; 2 inputs
//                   head-major; 3 k_pe [s,1,D]; 4 pad the token stride; 5 pad the head stride;
//                   6 inputs broadcast over tokens (token stride 0); 7 outputs head-major
//   u8  pad_t, pad_h   (elements, %64)
//   u8  place       %4: 0 sequential, 64-byte aligned gaps; 1 sequential, byte gaps; 2 explicit
//                   offsets; 3 explicit 64-byte aligned offsets; %8 == 4: nested (k_out and v_out
//                   rows in the head padding of k_nope's rows; g[3] >= 0x8000: one byte further)
//   u16 g[7]        gaps / offsets of: k_nope (or kv), k_pe, v, k_out (or out), v_out, k scale, v scale
//   u8  scale_mode  bit 0 k through a pointer; bit 1 v through a pointer (per tensor; per head always);
//                   bit 2 host float NaN (else -7) where a pointer is used
//   u8  ksel, u32 kraw, u8 vsel, u32 vraw       the multipliers (scale_value)
//   u8  backend_sel %8: 1 AUTO, 2 CUDA, 3 HIP, 4 raw, else REFERENCE;  u32 backend_raw
//   u8  misc        bits 0-1 pdl (3: raw); 2 TRUST_POINTERS; 3 raw flags; 4 raw device; 5 stream
//   u32 pdl_raw, u32 flags_raw, u32 device_raw, u64 stream_raw
//   u8  ss_mode     %8: 1 smaller; 2 larger, zero tail; 3 larger, one non-zero tail byte; 4 wild
//                   (ss_k 0xFFFF: 2^20, 0xFFFE: 64 KiB + 8, zero tail); else exact;
//   u16 ss_k, u16 ss_pos, u8 ss_byte
//   u8  fill_byte, u8 value_mode, u64 seed       arena contents
//   ---- the 0.2 fields (all zero: per tensor, reserved 0, no amax) ----
//   u8  v02         bits 0-2 scale_granularity: 0, 2, 4 per tensor; 1, 3, 5 per head; 6 gran_raw;
//                   7 kWild32[gran_raw % 16]; bit 3 k_amax; bit 4 v_amax; bits 5-6 both set: reserved =
//                   res_raw (1 where that is 0); bit 7 undersized arrays: room for one float in the layout
//   u32 gran_raw, u32 res_raw
//   u8  psv         per-head scale values (h for k, h for v; a generator seeded from seed): %8: 0 distinct
//                   powers of two; 1 the per-tensor values (ksel/kraw, vsel/vraw); 2 kScaleSpecial; 3 random
//                   bits; 4 fval (any kind); 5 powers of two, every 4th one special (0, -0, negative, NaN,
//                   +-inf, subnormal, max); 6 2^[-40, 40) x random mantissa and sign; 7 negative powers of two
//   u8  amax_init   initial amax floats: %8: 0 zeros; 1 random bits; 2 negative; 3 NaNs (either sign, any
//                   payload); 4 powers of two 2^[-12, 12); 5 each one of 1-4, +inf, -0; 6 +inf, FLT_MAX, -0,
//                   the smallest subnormal; 7 left as the fill byte
//   4 x {u8 sel, u16 pos}   where the k scale, v scale, k_amax, v_amax arrays go (1 float, h per head):
//                   sel %8: 0-3 in the layout (after the tensors, as place says: gaps / offsets g[5], g[6]
//                   for the scales, pos for the amax arrays); 4 NULL; 5 inside operand ((sel >> 3) & 15) % 9
//                   (0-8: k_nope k_pe v k_out v_out k_scale v_scale k_amax v_amax) at byte pos % its span,
//                   rounded down to 4 unless sel bit 7; 6 arena + pos rounded down to 4; 7 arena + pos.
//                   Scale arrays exist per head, or per tensor where scale_mode says (and sel % 8 != 4);
//                   amax arrays where v02 says (and sel % 8 != 4)
//   ----
//   u8  nmut (%9), then nmut x {u8 field (% 68), u8 sub, u64 value}  (64 scale_granularity, 65 reserved,
//                   66 k_amax, 67 v_amax)
//   follow-ups x {u8 kind, u8 mask, u16 d[5], u16 sd[2], u8 ksel, u32 kraw, u8 vsel, u32 vraw, u8 amode,
//                 u16 ad[2]}
//   table: mode 1: the rest as text; modes 2, 3: u8 nrows (1 + %6), nrows x 8 token bytes
#include <mlakv/mlakv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using i128 = __int128;
using Mask = uint64_t;

constexpr size_t kArena = 64 * 1024;
constexpr size_t kArgs = sizeof(mlakv_pack_args);
constexpr size_t kStructCap = size_t(1) << 20;  // struct sizes up to this get a full (zeroed) buffer
constexpr size_t kStructSure = 64 * 1024;       // ... and up to this must be accepted when zero-tailed
// struct sizes of past releases (tests/abi/mlakv.abi "past" lines): accepted, the fields past them get
// their defaults (effective() below: a 0.1 size means per-tensor scales and no amax, whatever the
// harness put in the 0.2 fields).
#ifndef MLAKV_PACK_ARGS_SIZE_0_1
#error "fuzz_pack.cpp fuzzes the 0.2 fields of mlakv_pack_args: it needs mlakv.h 0.2 or later"
#endif
constexpr size_t kMinArgs = MLAKV_PACK_ARGS_SIZE_0_1;
constexpr size_t kPastSizes[] = {MLAKV_PACK_ARGS_SIZE_0_1, kArgs};
constexpr i128 kSpanMax = i128(1) << 57;
// One past the last address. A span that ends exactly there does not run past the end of the address
// space, but c_api/validate.cpp rejects it as SIZE_OVERFLOW (bytes > UINTPTR_MAX - base): allowed
// either way (no such memory exists: the harness only ever sees it from wild pointers).
constexpr i128 kTopEnd = i128(UINTPTR_MAX) + 1;
constexpr int kStatusUnproven = 22;  // "could not prove disjoint" (being added)
constexpr int64_t kMaxHeadDim = int64_t(1) << 20;
// operands: the five tensors, the scale arrays (read), the amax arrays (written)
constexpr int kOps = 9;
enum { kKNope, kKPe, kV, kKOut, kVOut, kKScale, kVScale, kKAmax, kVAmax };
const char* const kOpName[kOps] = {"k_nope", "k_pe", "v", "k_out", "v_out", "k_scale_inv_ptr", "v_scale_inv_ptr",
                                   "k_amax", "v_amax"};
bool is_output(int i) { return i == kKOut || i == kVOut || i == kKAmax || i == kVAmax; }
using OpBits = uint16_t;  // one bit per operand
constexpr OpBits kAllOps = OpBits((1u << kOps) - 1);

Mask bit(int st) { return (st >= 0 && st < 64) ? Mask(1) << st : 0; }

// Saturating 128-bit arithmetic for geometry from fuzzed int64s: anything beyond +-2^100 is "huge"
// (far past 2^64), so values are clamped there and sums of a few never overflow.
constexpr i128 kHuge = i128(1) << 100;
i128 clamp(i128 v) { return v > kHuge ? kHuge : v < -kHuge ? -kHuge : v; }
i128 smul(i128 a, i128 b) {
  i128 r;
  if (__builtin_mul_overflow(a, b, &r)) return ((a < 0) != (b < 0)) ? -kHuge : kHuge;
  return clamp(r);
}
i128 sadd(i128 a, i128 b) { return clamp(a + b); }  // (|a|, |b| <= 2^100: no overflow)

// ---- status names and counts ---------------------------------------------------------------------------
std::string status_name(int st) {
  std::string s = mlakv_status_string(st);
  s = s.substr(0, s.find(':'));
  if (s.rfind("MLAKV_ERR_", 0) == 0) s = s.substr(10);
  if (s.rfind("MLAKV_", 0) == 0) s = s.substr(6);
  return s;
}

struct Counters {
  uint64_t execs = 0, calls = 0, packed = 0, plan_only = 0, accepted = 0, accepted_empty = 0, verified = 0,
           followups = 0, table_ok = 0, table_parse = 0;
  // non-empty accepted calls with per-head scales / with an amax array (and of those, verified byte for
  // byte), amax floats verified, accepted calls whose scale arrays share bytes with an input or each other
  uint64_t ph_accepted = 0, ph_verified = 0, amax_accepted = 0, amax_verified = 0, amax_floats = 0,
           scale_shared = 0;
  uint64_t by_status[65] = {};  // [64]: any other value
  void count(int st) { by_status[(st >= 0 && st < 64) ? st : 64]++; }
  ~Counters() {
    std::fprintf(stderr,
                 "fuzz_pack: %" PRIu64 " executions, %" PRIu64 " calls (%" PRIu64 " through mlakv_pack_fp8, %" PRIu64
                 " plan only), %" PRIu64 " accepted (%" PRIu64 " empty, %" PRIu64 " outputs verified byte for byte), %" PRIu64
                 " follow-up calls, tables set: %" PRIu64 " ok, %" PRIu64 " parse errors; per-head scales: %" PRIu64
                 " accepted (%" PRIu64 " verified); amax: %" PRIu64 " accepted (%" PRIu64 " verified, %" PRIu64
                 " amax floats); %" PRIu64 " accepted with scale arrays sharing bytes with inputs or each other; rejected:",
                 execs, calls, packed, plan_only, accepted, accepted_empty, verified, followups, table_ok, table_parse,
                 ph_accepted, ph_verified, amax_accepted, amax_verified, amax_floats, scale_shared);
    bool any = false;
    for (int st = 1; st < 65; ++st)
      if (by_status[st]) {
        std::fprintf(stderr, "%s %d %s %" PRIu64, any ? "," : "", st, st < 64 ? status_name(st).c_str() : "other",
                     by_status[st]);
        any = true;
      }
    std::fprintf(stderr, "%s\n", any ? "" : " none");
  }
};
Counters g_count;

// ---- guarded memory --------------------------------------------------------------------------------------
uint8_t* map_guarded(size_t usable) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  usable = (usable + page - 1) / page * page;
  void* m = mmap(nullptr, usable + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { std::perror("fuzz_pack: mmap"); std::abort(); }
  uint8_t* base = static_cast<uint8_t*>(m);
  if (mprotect(base, page, PROT_NONE) || mprotect(base + page + usable, page, PROT_NONE)) {
    std::perror("fuzz_pack: mprotect");
    std::abort();
  }
  return base + page;
}

struct Mem {
  uint8_t* arena;
  uint8_t* sregion;  // the argument struct lives at the end of it, abutting the guard page
  size_t sregion_size = kStructCap + 4096;
  std::vector<uint8_t> snap = std::vector<uint8_t>(kArena), want = std::vector<uint8_t>(kArena);
  bool compiled[4] = {};  // by backend code: compiled into this build
  Mem() : arena(map_guarded(kArena)), sregion(map_guarded(kStructCap + 4096)) {
    for (int i = 0; i < mlakv_backend_count(); ++i) {
      mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
      if (mlakv_backend_get_info(i, &info) == MLAKV_OK && info.backend >= 0 && info.backend < 4)
        compiled[info.backend] = info.compiled != 0;
    }
  }
};
Mem& mem() {
  static Mem m;
  return m;
}
uintptr_t arena_addr() { return reinterpret_cast<uintptr_t>(mem().arena); }
// byte offset of an address from the arena's start (any address; 128-bit, no overflow)
i128 arena_off(uintptr_t p) { return i128(p) - i128(arena_addr()); }
void* at_off(size_t off) { return reinterpret_cast<void*>(arena_addr() + off); }

// ---- the input ---------------------------------------------------------------------------------------------
struct In {
  const uint8_t* p;
  size_t n, i = 0;
  uint8_t u8() { return i < n ? p[i++] : 0; }
  uint16_t u16() { uint16_t v = u8(); return uint16_t(v | uint16_t(u8()) << 8); }
  uint32_t u32() { uint32_t v = u16(); return v | uint32_t(u16()) << 16; }
  uint64_t u64() { uint64_t v = u32(); return v | uint64_t(u32()) << 32; }
  size_t left() const { return i < n ? n - i : 0; }
};

const int64_t kWild64[] = {0, 1, -1, 2, 3, 7, 8, 16, 64, 128, 192, 256, -2, -8, -128, INT64_MAX, INT64_MIN,
                           INT64_MAX / 2, int64_t(3) << 61, int64_t(1) << 57, (int64_t(1) << 57) + 1,
                           (int64_t(1) << 57) - 1, int64_t(1) << 56, int64_t(1) << 20, (int64_t(1) << 20) + 1,
                           int64_t(1) << 31, (int64_t(1) << 31) - 1, int64_t(1) << 32, -(int64_t(1) << 31),
                           int64_t(1) << 62, (int64_t(1) << 62) + 1, int64_t(1) << 40, int64_t(1) << 48, 65536,
                           65535, 4096, int64_t(1) << 60, -(int64_t(1) << 60)};
const int32_t kWild32[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -2, 100, INT32_MAX, INT32_MIN, 0x10000, 1 << 20};
const float kScaleSpecial[] = {1.0f, 0.0f, -0.0f, -1.0f, 2.0f, 0.5f, std::numeric_limits<float>::quiet_NaN(),
                               -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::min(),
                               std::numeric_limits<float>::denorm_min(), 1e-40f, std::numeric_limits<float>::max(),
                               1.0f / 0.0375f, 1.0f / 0.021f, 448.0f, 1.0f / 448.0f, 57344.0f, 3.0f, 1e30f, 1e-30f,
                               240.0f, 0.999999940f, 1.00000012f, 0.0625f, 1.5f, -3.25f};

int64_t i64val(uint8_t sub, uint64_t v, int64_t cur) {
  switch (sub & 3) {
    case 0: return int64_t(int8_t(v));
    case 1: return kWild64[v % (sizeof kWild64 / sizeof kWild64[0])];
    case 2: return int64_t(v);
    default: return int64_t(uint64_t(cur) + uint64_t(int64_t(int8_t(v))));
  }
}
int32_t i32val(uint8_t sub, uint64_t v, int32_t cur) {
  switch (sub & 3) {
    case 0: return int32_t(int8_t(v));
    case 1: return kWild32[v % (sizeof kWild32 / sizeof kWild32[0])];
    case 2: return int32_t(uint32_t(v));
    default: return int32_t(uint32_t(cur) + uint32_t(int32_t(int8_t(v))));
  }
}
float fval(uint8_t sub, uint64_t v) {
  switch (sub & 3) {
    case 0: return kScaleSpecial[v % (sizeof kScaleSpecial / sizeof kScaleSpecial[0])];
    case 1: return tu::bits_f32(uint32_t(v));
    case 2: return float(int8_t(v)) / 4.0f;
    default: return std::ldexp(1.0f + float(v >> 8 & 0xFF) / 256.0f, int(int8_t(v)) % 140);
  }
}
float scale_value(uint8_t sel, uint32_t raw) { return fval(sel, sel & 4 ? raw : raw % 97); }
void* ptrval(uint8_t sub, uint64_t v, void* cur) {
  switch (sub & 3) {
    case 0: return nullptr;
    case 1: return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(cur) + uintptr_t(int64_t(int16_t(v))));
    case 2: return at_off(v % kArena);
    default: {
      const uintptr_t a = arena_addr();
      const uintptr_t wild[] = {1, 2, 8, 0x1000, UINTPTR_MAX, UINTPTR_MAX - 1, UINTPTR_MAX - 0xFFF,
                                uintptr_t(1) << 47, a - 64, a + kArena, a + kArena - 1, a - 1,
                                UINTPTR_MAX - 3, UINTPTR_MAX - 7, a + kArena - 4, a - 4};
      return reinterpret_cast<void*>(wild[v % (sizeof wild / sizeof wild[0])]);
    }
  }
}

// mutation fields: 5 tensors x 11, the scalars (55-63), scale_granularity (64), reserved (65), k_amax (66),
// v_amax (67)
constexpr int kMutFields = 68;

// ---- one call ---------------------------------------------------------------------------------------------
struct Call {
  mlakv_pack_args a;     // every field (the library sees struct_size bytes of it)
  size_t S = kArgs;      // struct_size
  bool trail_set = false;  // one non-zero byte past this header's struct (S > kArgs)
  size_t trail_pos = 0;
  uint8_t trail_byte = 0;
  // what fill_arena writes at the scale pointers (1 float, or h per head) and at the amax pointers (the
  // initial amax floats' bits) before the first call
  std::vector<float> kmem = {1.0f}, vmem = {1.0f};
  std::vector<uint32_t> kamax0, vamax0;
};

mlakv_tensor* tensors(mlakv_pack_args& a, int i) {
  mlakv_tensor* t[5] = {&a.k_nope, &a.k_pe, &a.v, &a.k_out, &a.v_out};
  return t[i];
}
const mlakv_tensor& tensor(const mlakv_pack_args& a, int i) {
  return *tensors(const_cast<mlakv_pack_args&>(a), i);
}
uintptr_t op_ptr(const mlakv_pack_args& a, int i) {
  if (i < 5) return reinterpret_cast<uintptr_t>(tensor(a, i).data);
  switch (i) {
    case kKScale: return reinterpret_cast<uintptr_t>(a.k_scale_inv_ptr);
    case kVScale: return reinterpret_cast<uintptr_t>(a.v_scale_inv_ptr);
    case kKAmax: return reinterpret_cast<uintptr_t>(a.k_amax);
    default: return reinterpret_cast<uintptr_t>(a.v_amax);
  }
}
bool per_head(const mlakv_pack_args& a) { return a.scale_granularity == MLAKV_SCALE_PER_HEAD; }
// floats in each scale / amax array as the library reads them: 1, or h per head (-1: h unknown)
int64_t aux_count(const mlakv_pack_args& a) {
  if (!per_head(a)) return 1;
  return a.k_nope.ndim >= 2 && a.k_nope.ndim <= MLAKV_MAX_RANK && a.k_nope.shape[1] >= 0 ? a.k_nope.shape[1] : -1;
}

bool in_dtype_ok(int32_t d) { return d == MLAKV_DTYPE_BF16 || d == MLAKV_DTYPE_FP16 || d == MLAKV_DTYPE_FP32; }
bool fp8_dtype_ok(int32_t d) { return d >= MLAKV_DTYPE_E4M3FN && d <= MLAKV_DTYPE_E5M2FNUZ; }
int esize_of(int32_t d) { return (d >= 1 && d <= 7) ? tu::dtype_size(d) : 4; }

// The struct as the library sees it: S bytes (at least the 8 of struct_size) ending at a guard page;
// past S up to the 8-byte boundary, 0xEE (a library reading them would see non-zero "new fields").
struct StructBuf {
  const mlakv_pack_args* p;
  std::vector<uint8_t> bytes;  // what was written, to check the library wrote nothing
};
StructBuf write_struct(const Call& c) {
  Mem& m = mem();
  const size_t S = c.S;
  size_t B, head;
  if (S < kArgs) { head = S < 8 ? 8 : S; B = (head + 7) & ~size_t(7); }
  else if (S <= kStructCap) { head = kArgs; B = (S + 7) & ~size_t(7); }
  else { head = kArgs; B = kArgs; }  // a wild size: the library must not read past its own struct
  uint8_t* p = m.sregion + m.sregion_size - B;
  mlakv_pack_args tmp = c.a;
  tmp.struct_size = S;
  std::memcpy(p, &tmp, head);
  if (S >= kArgs && S <= kStructCap) {
    std::memset(p + kArgs, 0, S - kArgs);
    if (c.trail_set && S > kArgs) p[kArgs + c.trail_pos % (S - kArgs)] = c.trail_byte | 1;
    std::memset(p + S, 0xEE, B - S);
  } else if (S < kArgs) {
    std::memset(p + head, 0xEE, B - head);
  }
  StructBuf sb;
  sb.p = reinterpret_cast<const mlakv_pack_args*>(p);
  sb.bytes.assign(p, p + B);
  return sb;
}
bool struct_intact(const StructBuf& sb) { return std::memcmp(sb.p, sb.bytes.data(), sb.bytes.size()) == 0; }

// ---- geometry as the harness computes it ------------------------------------------------------------------
struct Geo {
  bool known = false;     // rank 1..4 and every extent >= 0
  bool empty = false;     // some extent is 0: no bytes
  int es = 1;
  i128 lo = 0, hi = 0;    // element offsets of the lowest and highest elements (non-empty)
  bool in_arena = false;  // no bytes, or all of them inside the arena (pointer non-NULL)
  i128 blo = 0, bhi = 0;  // byte range relative to the arena, [blo, bhi)
  i128 span() const { return empty ? 0 : smul(sadd(hi, -lo) + 1, es); }
};
Geo geo_tensor(const mlakv_tensor& t) {
  Geo g;
  g.es = esize_of(t.dtype);
  if (t.ndim < 1 || t.ndim > MLAKV_MAX_RANK) return g;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0) return g;
    if (t.shape[d] == 0) g.empty = true;
  }
  g.known = true;
  if (g.empty) { g.in_arena = true; return g; }
  for (int d = 0; d < t.ndim; ++d) {
    const i128 o = smul(i128(t.shape[d]) - 1, t.strides[d]);
    i128& acc = o < 0 ? g.lo : g.hi;
    acc = sadd(acc, o);
  }
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.data);
  g.blo = sadd(arena_off(p), smul(g.lo, g.es));
  g.bhi = sadd(arena_off(p), smul(g.hi + 1, g.es));
  g.in_arena = p && g.blo >= 0 && g.bhi <= i128(kArena);
  return g;
}
// A scale or amax array of n floats (n < 0: unknown).
Geo geo_aux(uintptr_t p, int64_t n) {
  Geo g;
  g.es = 4;
  if (n < 0) return g;
  g.known = true;
  if (!p || n == 0) { g.empty = true; g.in_arena = true; return g; }
  g.hi = n - 1;
  g.blo = arena_off(p);
  g.bhi = sadd(g.blo, smul(n, 4));
  g.in_arena = g.blo >= 0 && g.bhi <= i128(kArena);
  return g;
}
Geo geo_op(const mlakv_pack_args& a, int i) {
  return i < 5 ? geo_tensor(tensor(a, i)) : geo_aux(op_ptr(a, i), aux_count(a));
}

// ---- byte ownership over the arena (brute force) ----------------------------------------------------------
struct ByteMap {
  std::vector<uint32_t> stamp = std::vector<uint32_t>(kArena, 0);
  std::vector<OpBits> bits = std::vector<OpBits>(kArena, 0);
  std::vector<int32_t> row[2] = {std::vector<int32_t>(kArena), std::vector<int32_t>(kArena)};
  uint32_t gen = 0;
  void clear() {
    if (++gen == 0) { std::fill(stamp.begin(), stamp.end(), 0u); gen = 1; }
  }
  OpBits& at(size_t i) {
    if (stamp[i] != gen) { stamp[i] = gen; bits[i] = 0; row[0][i] = row[1][i] = -1; }
    return bits[i];
  }
  OpBits get(size_t i) const { return stamp[i] == gen ? bits[i] : 0; }
};
ByteMap& bytemap() {
  static ByteMap b;
  return b;
}
constexpr i128 kBruteLimit = i128(1) << 22;

// Marks every byte of a tensor's elements (dims of stride 0 or extent 1 collapsed: same bytes).
// false if too many elements to enumerate.
bool mark_input(const mlakv_tensor& t, const Geo& g, OpBits b) {
  if (g.empty) return true;
  int64_t n[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0};
  int k = 0;
  i128 count = 1;
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] > 1 && t.strides[d] != 0) { n[k] = t.shape[d]; st[k] = t.strides[d]; count = smul(count, n[k]); ++k; }
  if (smul(count, g.es) > kBruteLimit) return false;
  ByteMap& bm = bytemap();
  const i128 base = arena_off(reinterpret_cast<uintptr_t>(t.data));
  for (int64_t i0 = 0; i0 < n[0]; ++i0)
    for (int64_t i1 = 0; i1 < n[1]; ++i1)
      for (int64_t i2 = 0; i2 < n[2]; ++i2)
        for (int64_t i3 = 0; i3 < n[3]; ++i3) {
          const i128 off = base + (i128(i0) * st[0] + i128(i1) * st[1] + i128(i2) * st[2] + i128(i3) * st[3]) * g.es;
          for (int e = 0; e < g.es; ++e) bm.at(size_t(off + e)) |= b;
        }
  return true;
}

// ---- what the arguments allow ------------------------------------------------------------------------------
struct Verdict {
  Mask must = 0, may = 0;
  std::string notes;
  bool nonempty = false, empty = false;  // definitely (all ranks valid, extents agree on it)
  bool in_arena = false;                 // every operand's bytes in the arena: mlakv_pack_fp8 may be called
  bool brute = false, overlap = false, alias[2] = {false, false};
  bool scale_shared = false;  // (brute force) a scale array shares bytes with an input or the other one
  std::string overlap_what;   // (brute force) the first shared byte found: whose
  Geo g[kOps];
  void need(int st, const std::string& why) { must |= bit(st); notes += "\n    must " + status_name(st) + ": " + why; }
  void maybe(int st) { may |= bit(st); }
  bool allows(int st) const {
    if (st < 0 || st >= 64) return false;
    if (!must) return st == MLAKV_OK || (may & bit(st));
    return st != MLAKV_OK && ((must | may) & bit(st));
  }
};

std::string mask_text(Mask m) {
  std::string s;
  for (int st = 0; st < 64; ++st)
    if (m & bit(st)) s += (s.empty() ? "" : " ") + status_name(st) + "(" + std::to_string(st) + ")";
  return s.empty() ? "-" : s;
}

// The call as the library sees it: with a past release's struct_size, the fields past it are defaults.
Call effective(const Call& c) {
  Call e = c;
  if (c.S >= kMinArgs && c.S < kArgs) {
    const mlakv_pack_args init = MLAKV_PACK_ARGS_INIT;
    std::memcpy(reinterpret_cast<uint8_t*>(&e.a) + c.S, reinterpret_cast<const uint8_t*>(&init) + c.S, kArgs - c.S);
  }
  return e;
}

Verdict analyze(const Call& c, bool table_set) {
  Verdict v;
  const mlakv_pack_args& a = c.a;
  Mem& m = mem();
  for (int i = 0; i < kOps; ++i) v.g[i] = geo_op(a, i);
  v.in_arena = true;
  for (int i = 0; i < kOps; ++i) v.in_arena = v.in_arena && v.g[i].known && v.g[i].in_arena;

  // struct_size
  bool past = false;
  for (size_t p : kPastSizes) past |= c.S == p;
  if (c.S < kMinArgs) { v.need(MLAKV_ERR_STRUCT_SIZE, "struct_size " + std::to_string(c.S) + " < " + std::to_string(kMinArgs)); return v; }
  if (c.S < kArgs && !past) { v.maybe(MLAKV_ERR_STRUCT_SIZE); v.maybe(MLAKV_ERR_INVALID_ARGUMENT); }  // between releases' sizes
  if (c.S > kStructCap) { v.need(MLAKV_ERR_STRUCT_SIZE, "struct_size " + std::to_string(c.S) + " is no struct size"); return v; }
  if (c.trail_set && c.S > kArgs) v.need(MLAKV_ERR_STRUCT_SIZE, "a non-zero byte past this header's struct");
  if (c.S > kStructSure) v.maybe(MLAKV_ERR_STRUCT_SIZE);

  // enums, flags, device
  if (a.backend < MLAKV_BACKEND_AUTO || a.backend > MLAKV_BACKEND_HIP) v.need(MLAKV_ERR_NO_SUCH_BACKEND, "backend " + std::to_string(a.backend));
  else if (a.backend != MLAKV_BACKEND_AUTO && !m.compiled[a.backend]) v.need(MLAKV_ERR_BACKEND_UNAVAILABLE, "backend " + std::to_string(a.backend) + " not compiled in");
  if (a.pdl < MLAKV_PDL_AUTO || a.pdl > MLAKV_PDL_OFF) v.need(MLAKV_ERR_INVALID_ARGUMENT, "pdl " + std::to_string(a.pdl));
  if (a.flags & ~MLAKV_FLAGS_KNOWN) v.need(MLAKV_ERR_INVALID_ARGUMENT, "unknown flag bits");
  if (a.device != 0) v.maybe(MLAKV_ERR_DEVICE);
  // the 0.2 fields (checked with the enums, for empty calls too)
  if (a.scale_granularity != MLAKV_SCALE_PER_TENSOR && a.scale_granularity != MLAKV_SCALE_PER_HEAD)
    v.need(MLAKV_ERR_INVALID_ARGUMENT, "scale_granularity " + std::to_string(a.scale_granularity));
  if (a.reserved) { v.need(MLAKV_ERR_INVALID_ARGUMENT, "reserved is not 0"); v.maybe(MLAKV_ERR_STRUCT_SIZE); }

  // dtypes
  const int32_t idt = a.k_nope.dtype, odt = a.k_out.dtype;
  if (!in_dtype_ok(idt)) v.need(MLAKV_ERR_DTYPE, "k_nope dtype " + std::to_string(idt));
  if (a.k_pe.dtype != idt || a.v.dtype != idt) v.need(MLAKV_ERR_DTYPE, "input dtypes differ");
  if (!fp8_dtype_ok(odt)) v.need(MLAKV_ERR_DTYPE, "k_out dtype " + std::to_string(odt));
  if (a.v_out.dtype != odt) v.need(MLAKV_ERR_DTYPE, "output dtypes differ");
  const bool dtypes_ok = in_dtype_ok(idt) && a.k_pe.dtype == idt && a.v.dtype == idt && fp8_dtype_ok(odt) && a.v_out.dtype == odt;

  // ranks, extents
  bool ranks_ok = true;
  for (int i = 0; i < 5; ++i) {
    const mlakv_tensor& t = tensor(a, i);
    const bool ok = i == 1 ? (t.ndim == 2 || t.ndim == 3) : t.ndim == 3;
    if (!ok) { v.need(MLAKV_ERR_RANK, std::string(kOpName[i]) + " ndim " + std::to_string(t.ndim)); ranks_ok = false; continue; }
    for (int d = 0; d < t.ndim; ++d)
      if (t.shape[d] < 0) v.need(MLAKV_ERR_SHAPE, std::string(kOpName[i]) + " negative extent");
  }
  if (!ranks_ok) {  // the library may look at other tensors' shapes first
    v.maybe(MLAKV_ERR_SHAPE); v.maybe(MLAKV_ERR_UNSUPPORTED_DIMS); v.maybe(MLAKV_ERR_SIZE_OVERFLOW);
    v.maybe(MLAKV_ERR_STRIDE); v.maybe(MLAKV_ERR_NULL_POINTER); v.maybe(MLAKV_ERR_ALIGNMENT);
    v.maybe(MLAKV_ERR_OVERLAP); v.maybe(kStatusUnproven);
    return v;
  }

  // shapes agree, head dims
  const int64_t s = a.k_nope.shape[0], h = a.k_nope.shape[1], dn = a.k_nope.shape[2], dv = a.v.shape[2];
  const bool pe3 = a.k_pe.ndim == 3;
  const int64_t dr = a.k_pe.shape[pe3 ? 2 : 1];
  if (a.k_pe.shape[0] != s || a.v.shape[0] != s || a.k_out.shape[0] != s || a.v_out.shape[0] != s) v.need(MLAKV_ERR_SHAPE, "token counts differ");
  if (pe3 && a.k_pe.shape[1] != 1) v.need(MLAKV_ERR_SHAPE, "3-D k_pe is not [s, 1, D]");
  if (a.v.shape[1] != h || a.k_out.shape[1] != h || a.v_out.shape[1] != h) v.need(MLAKV_ERR_SHAPE, "head counts differ");
  for (int64_t d : {dn, dr, dv})
    if (d < 1 || d > kMaxHeadDim) v.need(MLAKV_ERR_UNSUPPORTED_DIMS, "head dim " + std::to_string(d));
  if (i128(a.k_out.shape[2]) != i128(dn) + dr) v.need(MLAKV_ERR_SHAPE, "k_out last dim != D_nope + D_rope");
  if (a.v_out.shape[2] != dv) v.need(MLAKV_ERR_SHAPE, "v_out last dim != D_v");

  const int64_t sv[5] = {a.k_nope.shape[0], a.k_pe.shape[0], a.v.shape[0], a.k_out.shape[0], a.v_out.shape[0]};
  const int64_t hv[4] = {a.k_nope.shape[1], a.v.shape[1], a.k_out.shape[1], a.v_out.shape[1]};
  bool all_s0 = true, all_h0 = true, all_pos = true;
  for (int64_t x : sv) { all_s0 &= x == 0; all_pos &= x > 0; }
  for (int64_t x : hv) { all_h0 &= x == 0; all_pos &= x > 0; }
  v.empty = all_s0 || all_h0;
  v.nonempty = all_pos;
  if (s >= 0 && h >= 0 && dn >= 0 && dr >= 0 && dv >= 0 && smul(smul(smul(s, h), i128(dn) + dr + dv), 4) > kSpanMax)
    v.maybe(MLAKV_ERR_SIZE_OVERFLOW);

  if (v.empty) {
    // pointers and strides are not checked; only k_pe (h = 0, s > 0) has bytes at all
    const Geo& g = v.g[1];
    if (g.known && !g.empty) {
      const uintptr_t p = op_ptr(a, 1);
      if (g.span() > kSpanMax || (p && sadd(i128(p), smul(g.hi + 1, g.es)) > i128(UINTPTR_MAX) + 1)) v.maybe(MLAKV_ERR_SIZE_OVERFLOW);
    }
    return v;
  }
  // facts about pointers, strides, sizes: musts for a call that is surely non-empty, else mays
  auto fact = [&](int st, const std::string& why) {
    if (v.nonempty) v.need(st, why); else v.maybe(st);
  };
  if (table_set) v.maybe(MLAKV_ERR_NO_TABLE_ROW);
  for (int i = 0; i < 5; ++i) {
    const mlakv_tensor& t = tensor(a, i);
    const Geo& g = v.g[i];
    const uintptr_t p = op_ptr(a, i);
    const std::string nm = kOpName[i];
    if (!p) fact(MLAKV_ERR_NULL_POINTER, nm + ".data is NULL");
    const bool dt_ok = i < 3 ? in_dtype_ok(t.dtype) : fp8_dtype_ok(t.dtype);
    if (p && dt_ok && p % uintptr_t(tu::dtype_size(t.dtype))) fact(MLAKV_ERR_ALIGNMENT, nm + " misaligned");
    if (!dt_ok) { v.maybe(MLAKV_ERR_ALIGNMENT); v.maybe(MLAKV_ERR_SIZE_OVERFLOW); }
    for (int d = 0; d < t.ndim; ++d) {
      if (t.strides[d] < 0) {
        if (t.shape[d] > 1) fact(MLAKV_ERR_STRIDE, nm + " negative stride in dim " + std::to_string(d));
        else v.maybe(MLAKV_ERR_STRIDE);
      }
    }
    const int last = t.ndim - 1;
    if (t.shape[last] > 1 && t.strides[last] != 1) fact(MLAKV_ERR_STRIDE, nm + " inner stride " + std::to_string(t.strides[last]));
    if (g.known && !g.empty) {
      if (g.span() > kSpanMax) fact(MLAKV_ERR_SIZE_OVERFLOW, nm + " spans more than 2^57 bytes");
      const i128 end = sadd(i128(p), smul(g.hi + 1, g.es));
      if (p && end > kTopEnd) fact(MLAKV_ERR_SIZE_OVERFLOW, nm + " runs past the address space");
      else if (p && end == kTopEnd) v.maybe(MLAKV_ERR_SIZE_OVERFLOW);
      if (p && sadd(i128(p), smul(g.lo, g.es)) < 0) v.maybe(MLAKV_ERR_SIZE_OVERFLOW);
    }
  }
  // scale and amax arrays: 1 float each, or h per head
  const int64_t n_aux = aux_count(a);
  for (int i = kKScale; i <= kVAmax; ++i) {
    const uintptr_t p = op_ptr(a, i);
    const std::string nm = kOpName[i];
    if (!p) {
      if (per_head(a) && (i == kKScale || i == kVScale)) fact(MLAKV_ERR_NULL_POINTER, nm + " is NULL with per-head scales");
      continue;
    }
    if (p % 4) fact(MLAKV_ERR_ALIGNMENT, nm + " misaligned");
    if (n_aux > 0) {
      const i128 end = sadd(i128(p), smul(n_aux, 4));
      if (end > kTopEnd) fact(MLAKV_ERR_SIZE_OVERFLOW, nm + " runs past the address space");
      else if (end == kTopEnd) v.maybe(MLAKV_ERR_SIZE_OVERFLOW);
    }
  }

  // overlap and aliasing, by brute force over the arena
  bool extents_ok = true;
  for (int i = 0; i < 5; ++i) extents_ok &= v.g[i].known;
  if (!(v.in_arena && dtypes_ok && extents_ok)) {
    v.maybe(MLAKV_ERR_STRIDE); v.maybe(MLAKV_ERR_OVERLAP);
    if (!v.in_arena) v.maybe(kStatusUnproven);
    return v;
  }
  // more output elements than arena bytes, each row's bytes distinct: two rows share a byte
  for (int o = 0; o < 2; ++o) {
    const mlakv_tensor& t = tensor(a, 3 + o);
    if (!v.g[3 + o].empty && smul(smul(t.shape[0], t.shape[1]), t.shape[2]) > i128(kArena) &&
        (t.shape[2] <= 1 || t.strides[2] == 1))
      v.alias[o] = true;
  }
  // Every operand's bytes get its bit: the inputs and the scale arrays (read-only: they may share bytes
  // with each other) first, then the outputs (k_amax, v_amax, k_out, v_out), each checked against every
  // bit already there, so that any byte an output shares with any other operand is found.
  ByteMap& bm = bytemap();
  bm.clear();
  bool feasible = !v.alias[0] && !v.alias[1];
  for (int i = 0; i < 3; ++i) feasible &= mark_input(tensor(a, i), v.g[i], OpBits(1u << i));
  auto shared = [&](int mine, OpBits b, size_t off) {
    if (v.overlap) return;
    v.overlap = true;
    int other = 0;
    while (!((b >> other) & 1) || other == mine) ++other;
    v.overlap_what = std::string(kOpName[mine]) + " and " + kOpName[other] + " share arena+" + std::to_string(off);
  };
  for (int i : {kKScale, kVScale, kKAmax, kVAmax}) {
    const Geo& g = v.g[i];
    if (g.empty || !feasible) continue;
    const OpBits mine = OpBits(1u << i);
    for (i128 x = g.blo; x < g.bhi; ++x) {
      OpBits& b = bm.at(size_t(x));
      if (b & ~mine) {
        if (is_output(i)) shared(i, b, size_t(x));
        else v.scale_shared = true;
      }
      b |= mine;
    }
  }
  for (int o = 0; o < 2 && feasible; ++o) {
    const mlakv_tensor& t = tensor(a, 3 + o);
    const Geo& g = v.g[3 + o];
    if (g.empty) continue;
    const int64_t n0 = t.shape[0], n1 = t.shape[1], n2 = t.shape[2];
    if (smul(smul(n0, n1), n2) > kBruteLimit) { feasible = false; break; }
    const OpBits mine = OpBits(1u << (3 + o)), others = OpBits(kAllOps & ~mine);
    const i128 base = arena_off(reinterpret_cast<uintptr_t>(t.data));
    for (int64_t t0 = 0; t0 < n0; ++t0)
      for (int64_t h0 = 0; h0 < n1; ++h0) {
        const int32_t id = int32_t(t0 * n1 + h0);
        for (int64_t i = 0; i < n2; ++i) {
          const size_t off = size_t(base + i128(t0) * t.strides[0] + i128(h0) * t.strides[1] + i128(i) * t.strides[2]);
          OpBits& b = bm.at(off);
          if (b & others) shared(3 + o, b, off);
          if ((b & mine) && bm.row[o][off] != id) v.alias[o] = true;
          b |= mine;
          bm.row[o][off] = id;
        }
      }
  }
  if (v.alias[0] || v.alias[1]) fact(MLAKV_ERR_STRIDE, std::string("rows of ") + (v.alias[0] ? "k_out" : "v_out") + " share bytes");
  if (!feasible) {
    v.maybe(MLAKV_ERR_OVERLAP);
    if (!v.alias[0] && !v.alias[1]) v.maybe(MLAKV_ERR_STRIDE);
    return v;
  }
  v.brute = true;
  if (v.overlap) fact(MLAKV_ERR_OVERLAP, "an output shares a byte with another operand: " + v.overlap_what);
  return v;
}

// ---- the oracle ------------------------------------------------------------------------------------------
const tu::Fp8Oracle& fp8_oracle(mlakv_dtype d) {
  static const tu::Fp8Oracle os[4] = {tu::Fp8Oracle(MLAKV_DTYPE_E4M3FN), tu::Fp8Oracle(MLAKV_DTYPE_E5M2),
                                      tu::Fp8Oracle(MLAKV_DTYPE_E4M3FNUZ), tu::Fp8Oracle(MLAKV_DTYPE_E5M2FNUZ)};
  return os[d - MLAKV_DTYPE_E4M3FN];
}

// The oracle's encode, memoised (direct-mapped on the fp32 bits): the same answers, faster.
struct EncodeMemo {
  static constexpr size_t kSlots = 1 << 16;
  std::vector<uint64_t> slot[4];  // (bits << 8 | code) + 1; 0 = empty
  EncodeMemo() { for (auto& s : slot) s.assign(kSlots, 0); }
  uint8_t encode(mlakv_dtype d, float p) {
    const uint32_t b = tu::f32_bits(p);
    uint64_t& e = slot[d - MLAKV_DTYPE_E4M3FN][(b ^ (b >> 16) * 0x9E37u) & (kSlots - 1)];
    if (e && uint32_t((e - 1) >> 8) == b) return uint8_t((e - 1) & 0xFF);
    const uint8_t code = fp8_oracle(d).encode(p);
    e = ((uint64_t(b) << 8) | code) + 1;
    return code;
  }
};
EncodeMemo& encode_memo() {
  static EncodeMemo* m = new EncodeMemo();
  return *m;
}

uint32_t read_raw(const std::vector<uint8_t>& a, i128 off, int es) {
  uint32_t r = 0;
  std::memcpy(&r, a.data() + size_t(off), size_t(es));
  return r;
}

float snap_f32(i128 off) {
  float f;
  std::memcpy(&f, mem().snap.data() + size_t(off), 4);
  return f;
}

// The amax rule of mlakv.h, from its text: |x| of every non-NaN input widened to fp32 (-0 becomes +0),
// the largest as a float (+0 when there is none), combined with the stored float as int32 bit patterns.
struct AmaxAcc {
  float m = 0.0f;
  void see(float x) {
    if (std::isnan(x)) return;
    const float y = std::fabs(x);
    if (y > m) m = y;
  }
};
uint32_t amax_store(uint32_t old_bits, float m) {
  const int32_t o = int32_t(old_bits), n = int32_t(tu::f32_bits(m));
  return uint32_t(o > n ? o : n);
}

// want = snap with every output byte of the (accepted, non-empty, in-arena) call written and every amax
// float accumulated; the written output offsets (not the amax arrays) go to *written. Returns the number of
// amax floats.
int64_t expected_arena(const mlakv_pack_args& a, std::vector<uint32_t>* written) {
  Mem& m = mem();
  m.want = m.snap;
  EncodeMemo& q = encode_memo();
  const mlakv_dtype odt = a.k_out.dtype;
  const mlakv_dtype dt = a.k_nope.dtype;
  const int es = tu::dtype_size(dt);
  const int64_t s = a.k_nope.shape[0], h = a.k_nope.shape[1], dn = a.k_nope.shape[2], dv = a.v.shape[2];
  const bool ph = per_head(a);
  // the multipliers of each head: per head from the arrays' bytes, per tensor the pointer's float or the
  // host float
  std::vector<float> km(static_cast<size_t>(h)), vm(static_cast<size_t>(h));
  for (int64_t j = 0; j < h; ++j) {
    const i128 e = ph ? i128(j) * 4 : 0;
    km[size_t(j)] = a.k_scale_inv_ptr ? snap_f32(arena_off(op_ptr(a, kKScale)) + e) : a.k_scale_inv;
    vm[size_t(j)] = a.v_scale_inv_ptr ? snap_f32(arena_off(op_ptr(a, kVScale)) + e) : a.v_scale_inv;
  }
  auto X = [&](i128 off) { return tu::widen(dt, read_raw(m.snap, off, es)); };
  auto Q = [&](i128 off, float mul) { return q.encode(odt, X(off) * mul); };
  const int last_pe = a.k_pe.ndim - 1;
  const int64_t dr = a.k_pe.shape[last_pe];
  const i128 kn = arena_off(op_ptr(a, 0)), kp = arena_off(op_ptr(a, 1)), vv = arena_off(op_ptr(a, 2)),
             ko = arena_off(op_ptr(a, 3)), vo = arena_off(op_ptr(a, 4));
  const int64_t* ks_ = a.k_nope.strides;
  const int64_t* ps = a.k_pe.strides;
  const int64_t* vs_ = a.v.strides;
  const int64_t* os = a.k_out.strides;
  const int64_t* ws = a.v_out.strides;
  auto kn_at = [&](int64_t t, int64_t hh, int64_t i) { return kn + (i128(t) * ks_[0] + i128(hh) * ks_[1] + i128(i) * ks_[2]) * es; };
  auto kp_at = [&](int64_t t, int64_t i) { return kp + (i128(t) * ps[0] + i128(i) * ps[last_pe]) * es; };
  auto v_at = [&](int64_t t, int64_t hh, int64_t i) { return vv + (i128(t) * vs_[0] + i128(hh) * vs_[1] + i128(i) * vs_[2]) * es; };
  written->clear();
  for (int64_t t = 0; t < s; ++t)
    for (int64_t hh = 0; hh < h; ++hh) {
      const float kmul = km[size_t(hh)], vmul = vm[size_t(hh)];
      for (int64_t i = 0; i < dn + dr; ++i) {
        const i128 in = i < dn ? kn_at(t, hh, i) : kp_at(t, i - dn);
        const size_t off = size_t(ko + i128(t) * os[0] + i128(hh) * os[1] + i128(i) * os[2]);
        m.want[off] = Q(in, kmul);
        written->push_back(uint32_t(off));
      }
      for (int64_t i = 0; i < dv; ++i) {
        const size_t off = size_t(vo + i128(t) * ws[0] + i128(hh) * ws[1] + i128(i) * ws[2]);
        m.want[off] = Q(v_at(t, hh, i), vmul);
        written->push_back(uint32_t(off));
      }
    }

  // amax: per head j over head j's elements (and, for K, all of k_pe); per tensor over everything
  const int64_t n = ph ? h : 1;
  int64_t floats = 0;
  for (int which = 0; which < 2; ++which) {
    const uintptr_t p = op_ptr(a, which ? kVAmax : kKAmax);
    if (!p) continue;
    AmaxAcc pe;  // k_pe counts for every head
    if (!which)
      for (int64_t t = 0; t < s; ++t)
        for (int64_t i = 0; i < dr; ++i) pe.see(X(kp_at(t, i)));
    for (int64_t j = 0; j < n; ++j) {
      AmaxAcc acc = which ? AmaxAcc() : pe;
      for (int64_t hh = ph ? j : 0; hh < (ph ? j + 1 : h); ++hh)
        for (int64_t t = 0; t < s; ++t) {
          if (which) for (int64_t i = 0; i < dv; ++i) acc.see(X(v_at(t, hh, i)));
          else for (int64_t i = 0; i < dn; ++i) acc.see(X(kn_at(t, hh, i)));
        }
      const size_t off = size_t(arena_off(p) + i128(j) * 4);
      uint32_t old_bits;
      std::memcpy(&old_bits, m.snap.data() + off, 4);
      const uint32_t nb = amax_store(old_bits, acc.m);
      std::memcpy(m.want.data() + off, &nb, 4);
      ++floats;
    }
  }
  return floats;
}

// ---- reporting ---------------------------------------------------------------------------------------------
std::string ptr_text(uintptr_t p) {
  char b[64];
  const i128 off = arena_off(p);
  if (!p) return "NULL";
  if (off >= -4096 && off <= i128(kArena) + 4096) std::snprintf(b, sizeof b, "arena%+lld", (long long)off);
  else std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)p);
  return b;
}
std::string float_text(float f) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g (0x%08x)", double(f), tu::f32_bits(f));
  return b;
}
std::string call_text(const Call& c) {
  const mlakv_pack_args& a = c.a;
  std::string s = "  struct_size " + std::to_string(c.S) + " (this header: " + std::to_string(kArgs) + ")" +
                  (c.trail_set ? ", non-zero tail byte" : "") + "\n";
  for (int i = 0; i < 5; ++i) {
    const mlakv_tensor& t = tensor(a, i);
    s += "  " + std::string(kOpName[i]) + ": data " + ptr_text(op_ptr(a, i)) + " dtype " + std::to_string(t.dtype) + " (" +
         tu::dtype_name(t.dtype) + ") ndim " + std::to_string(t.ndim) + " shape [";
    for (int d = 0; d < 4; ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
    s += "] strides [";
    for (int d = 0; d < 4; ++d) s += (d ? ", " : "") + std::to_string(t.strides[d]);
    s += "]\n";
  }
  s += "  k_scale_inv " + float_text(a.k_scale_inv) + " v_scale_inv " + float_text(a.v_scale_inv) + "\n";
  s += "  k_scale_inv_ptr " + ptr_text(op_ptr(a, 5)) + " v_scale_inv_ptr " + ptr_text(op_ptr(a, 6)) + "\n";
  s += "  backend " + std::to_string(a.backend) + " device " + std::to_string(a.device) + " stream " +
       ptr_text(reinterpret_cast<uintptr_t>(a.stream)) + " pdl " + std::to_string(a.pdl) + " flags " + std::to_string(a.flags) + "\n";
  s += "  scale_granularity " + std::to_string(a.scale_granularity) + " reserved " + std::to_string(a.reserved) +
       " k_amax " + ptr_text(reinterpret_cast<uintptr_t>(a.k_amax)) + " v_amax " + ptr_text(reinterpret_cast<uintptr_t>(a.v_amax)) + "\n";
  // the floats at the scale and amax pointers before the call (up to 8 of each)
  const int64_t n = aux_count(a);
  for (int i = kKScale; i <= kVAmax; ++i) {
    const Geo g = geo_aux(op_ptr(a, i), n < 0 ? 0 : n);
    if (g.empty || !g.in_arena) continue;
    s += "  " + std::string(kOpName[i]) + " before the call:";
    for (i128 x = g.blo; x < g.bhi && x < g.blo + 32; x += 4) {
      float f;
      std::memcpy(&f, mem().snap.data() + size_t(x), 4);
      s += " " + float_text(f);
    }
    s += g.bhi - g.blo > 32 ? " ...\n" : "\n";
  }
  return s;
}

struct Ctx {
  bool table_set = false;
  std::string table_text;
  const char* label = "first call";
  int step = 0;
};

// Triage mode (MLAKV_FUZZ_KEEP_GOING=1): each distinct failure (first call or follow-up, its message up to
// the first ':' without numbers, the status) is printed once and its input saved as finding-<n> in the
// working directory; fuzzing goes on.
constexpr int kNotCalled = -100000;  // st_pack of a call mlakv_pack_fp8 was not called for
struct KeepGoing {};
struct Findings {
  bool keep_going = std::getenv("MLAKV_FUZZ_KEEP_GOING") && std::strcmp(std::getenv("MLAKV_FUZZ_KEEP_GOING"), "0") != 0;
  std::vector<std::string> seen;
  const uint8_t* input = nullptr;
  size_t input_size = 0;
  uint64_t total = 0;
  ~Findings() {
    if (keep_going) std::fprintf(stderr, "fuzz_pack: %zu distinct findings (%" PRIu64 " inputs failed a check)\n", seen.size(), total);
  }
};
Findings g_findings;

[[noreturn]] void fail(const Ctx& x, const Call* c, const Verdict* v, int st_plan, int st_pack, const std::string& what) {
  Findings& f = g_findings;
  bool fresh = true;
  if (f.keep_going) {
    f.total++;
    // key: where, the message up to its first ':' without numbers, and the status
    std::string key = std::string(x.label) + ": ";
    for (char ch : what.substr(0, what.find_first_of(":\n"))) if (ch < '0' || ch > '9') key += ch;
    key += " -> " + std::to_string(st_pack == kNotCalled ? st_plan : st_pack);
    for (const std::string& k : f.seen) fresh &= k != key;
    if (!fresh) throw KeepGoing{};
    f.seen.push_back(key);
    const std::string name = "finding-" + std::to_string(f.seen.size());
    if (FILE* out = std::fopen(name.c_str(), "wb")) {
      std::fwrite(f.input, 1, f.input_size, out);
      std::fclose(out);
    }
    std::fprintf(stderr, "\nfuzz_pack: FINDING %zu (input saved as %s)", f.seen.size(), name.c_str());
  }
  std::fprintf(stderr, "\nfuzz_pack: CHECK FAILED (%s, step %d): %s\n", x.label, x.step, what.c_str());
  if (c) std::fprintf(stderr, "%s", call_text(*c).c_str());
  std::fprintf(stderr, "  plan status %d (%s), pack status %d (%s)\n", st_plan, status_name(st_plan).c_str(), st_pack,
               st_pack < -1000 ? "not called" : status_name(st_pack).c_str());
  std::fprintf(stderr, "  mlakv_last_error: \"%s\"\n", mlakv_last_error());
  if (v)
    std::fprintf(stderr, "  harness: must {%s} may {%s} nonempty %d empty %d in_arena %d brute %d overlap %d alias %d/%d%s\n",
                 mask_text(v->must).c_str(), mask_text(v->may).c_str(), v->nonempty, v->empty, v->in_arena, v->brute,
                 v->overlap, v->alias[0], v->alias[1], v->notes.c_str());
  if (x.table_set) std::fprintf(stderr, "  dispatch table set to:\n%s\n", x.table_text.c_str());
  if (f.keep_going) throw KeepGoing{};
  std::abort();
}

void check_arena(const Ctx& x, const Call& c, const Verdict& v, int sp, int sk, const std::vector<uint8_t>& want,
                 const char* what) {
  const uint8_t* got = mem().arena;
  if (std::memcmp(got, want.data(), kArena) == 0) return;
  size_t i = 0;
  while (got[i] == want[i]) ++i;
  size_t n = 0;
  for (size_t j = 0; j < kArena; ++j) n += got[j] != want[j];
  std::string owners;
  for (int o = 0; o < kOps; ++o)
    if (!v.g[o].empty && v.g[o].known && i128(i) >= v.g[o].blo && i128(i) < v.g[o].bhi) owners += std::string(" ") + kOpName[o];
  char b[256];
  std::snprintf(b, sizeof b, "%s: %zu bytes differ, first at arena+%zu: got 0x%02x, want 0x%02x (before the call 0x%02x; in the span of:%s)",
                what, n, i, got[i], want[i], mem().snap[i], owners.empty() ? " nothing" : owners.c_str());
  fail(x, &c, &v, sp, sk, b);
}

// Plan, then (when allowed) pack, with every check. Returns the status; *written gets the output bytes
// written by an accepted mlakv_pack_fp8 (empty otherwise).
int check_call(const Call& c, Ctx& x, std::vector<uint32_t>* written) {
  Mem& m = mem();
  written->clear();
  const Call ec = effective(c);  // as the library sees it
  const Verdict v = analyze(ec, x.table_set);
  const StructBuf sb = write_struct(c);
  std::memcpy(m.snap.data(), m.arena, kArena);
  g_count.calls++;

  // the plan: same validation, writes nothing to the arena and nothing to buf on rejection
  char buf[1024 + 16];
  std::memset(buf, 0x5A, sizeof buf);
  size_t needed = 0;
  int sp = mlakv_pack_fp8_plan(sb.p, buf, 1024, &needed);
  std::string text;
  for (int k = 1024; k < 1024 + 16; ++k)
    if (buf[k] != 0x5A) fail(x, &c, &v, sp, kNotCalled, "mlakv_pack_fp8_plan wrote past buf_size");
  if (sp == MLAKV_ERR_BUFFER_TOO_SMALL) {
    if (needed <= 1024) fail(x, &c, &v, sp, kNotCalled, "plan: BUFFER_TOO_SMALL with needed " + std::to_string(needed));
    std::vector<char> big(needed + 16, 0x5A);
    size_t needed2 = 0;
    sp = mlakv_pack_fp8_plan(sb.p, big.data(), needed, &needed2);
    if (sp == MLAKV_OK) text.assign(big.data());
    if (sp == MLAKV_OK && needed2 != needed) fail(x, &c, &v, sp, kNotCalled, "plan: needed changed between calls");
  } else if (sp == MLAKV_OK) {
    text.assign(buf);
    if (text.size() + 1 != needed) fail(x, &c, &v, sp, kNotCalled, "plan: *needed is not strlen + 1");
  } else {
    for (int k = 0; k < 1024; ++k)
      if (buf[k] != 0x5A) fail(x, &c, &v, sp, kNotCalled, "mlakv_pack_fp8_plan wrote to buf on rejection");
  }
  if (sp != MLAKV_OK) {
    if (!*mlakv_last_error()) fail(x, &c, &v, sp, kNotCalled, "plan rejected with an empty mlakv_last_error()");
  } else if (text.rfind("backend=reference", 0) != 0 && text.rfind("empty call", 0) != 0) {
    fail(x, &c, &v, sp, kNotCalled, "plan text is neither the reference backend's nor an empty call's: " + text);
  } else if (text.rfind("backend=reference", 0) == 0 &&
             text.find(x.table_set ? " table=set" : " table=built-in") == std::string::npos) {
    fail(x, &c, &v, sp, kNotCalled, std::string("the plan does not name the table in force (") +
         (x.table_set ? "set" : "built-in") + "): " + text);
  } else if (text.rfind("backend=reference", 0) == 0) {
    const mlakv_pack_args& e = ec.a;
    const std::string want = std::string(" scales=") + (per_head(e) ? "per-head" : "per-tensor") + " amax=" +
                             (e.k_amax ? (e.v_amax ? "k,v" : "k") : e.v_amax ? "v" : "none") + " ";
    if (text.find(want) == std::string::npos)
      fail(x, &c, &v, sp, kNotCalled, "the plan does not say" + want + "(the granularity and amax arrays of the call): " + text);
  }
  check_arena(x, c, v, sp, kNotCalled, m.snap, "mlakv_pack_fp8_plan changed the arena");
  if (!struct_intact(sb)) fail(x, &c, &v, sp, kNotCalled, "mlakv_pack_fp8_plan changed the argument struct");

  // the call itself, where its memory is the arena's (or it is rejected anyway)
  int sk = kNotCalled;
  if (sp != MLAKV_OK || v.in_arena) {
    sk = mlakv_pack_fp8(sb.p);
    g_count.packed++;
  } else {
    g_count.plan_only++;
  }
  const int st = sk == kNotCalled ? sp : sk;
  g_count.count(st);
  static const bool trace = std::getenv("MLAKV_FUZZ_TRACE") && std::strcmp(std::getenv("MLAKV_FUZZ_TRACE"), "0") != 0;
  if (trace)
    std::fprintf(stderr, "fuzz_pack: %s %d: %s%s%s%s\n", x.label, x.step, status_name(st).c_str(), sk == kNotCalled ? " (plan only)" : "",
                 st != MLAKV_OK ? ": " : "", st != MLAKV_OK ? mlakv_last_error() : "");
  const bool arena_same = std::memcmp(m.arena, m.snap.data(), kArena) == 0;
  const std::string arena_note = arena_same ? " (the arena is unchanged)" : " (and the arena changed)";
  if (sk != kNotCalled && !struct_intact(sb)) fail(x, &c, &v, sp, sk, "mlakv_pack_fp8 changed the argument struct");
  if (sk != kNotCalled && sk != sp) fail(x, &c, &v, sp, sk, "mlakv_pack_fp8 and mlakv_pack_fp8_plan disagree" + arena_note);
  if (st != MLAKV_OK) {
    if (!*mlakv_last_error()) fail(x, &c, &v, sp, sk, "rejected with an empty mlakv_last_error()" + arena_note);
    if (std::strncmp(mlakv_status_string(st), "MLAKV_ERR_UNKNOWN", 17) == 0)
      fail(x, &c, &v, sp, sk, "rejected with a status mlakv_status_string() does not know" + arena_note);
  }
  if (!v.allows(st)) {
    std::string why = "status " + std::to_string(st) + " (" + status_name(st) + ") is not one the arguments allow";
    if (st == MLAKV_OK) why = "accepted arguments that must be rejected";
    else if (!v.must) why = "rejected valid arguments with " + std::to_string(st) + " (" + status_name(st) + ")";
    fail(x, &c, &v, sp, sk, why + (sk == kNotCalled ? " (plan only)" : arena_note));
  }
  if (sk != kNotCalled) {
    if (sk != MLAKV_OK) {
      check_arena(x, c, v, sp, sk, m.snap, "rejected, but the arena changed");
    } else if (v.nonempty && v.brute) {
      const int64_t floats = expected_arena(ec.a, written);
      check_arena(x, c, v, sp, sk, m.want, "accepted, wrong output bytes, wrong amax floats or bytes written outside the outputs");
      g_count.verified++;
      if (per_head(ec.a)) g_count.ph_verified++;
      if (floats) { g_count.amax_verified++; g_count.amax_floats += uint64_t(floats); }
    } else {
      check_arena(x, c, v, sp, sk, m.snap, "accepted an empty call, but the arena changed");
    }
  }
  if (st == MLAKV_OK) {
    g_count.accepted++;
    if (v.empty) g_count.accepted_empty++;
    if (!v.empty && per_head(ec.a)) g_count.ph_accepted++;
    if (!v.empty && (ec.a.k_amax || ec.a.v_amax)) g_count.amax_accepted++;
    if (v.scale_shared) g_count.scale_shared++;
  }
  return st;
}

// ---- arena contents ------------------------------------------------------------------------------------------
uint32_t special_raw(mlakv_dtype dt, uint32_t k) {
  static const uint32_t bf16[] = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0x0001, 0x8001, 0x007F,
                                  0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0x43E0, 0x43E8, 0x4760, 0x4770, 0x4370, 0x3B00};
  static const uint32_t fp16[] = {0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x0001, 0x8001, 0x03FF,
                                  0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0x5F00, 0x5F40, 0x7B00, 0x7B80, 0x5B80, 0x1800};
  static const uint32_t fp32[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
                                  0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000,
                                  0x43E00000, 0x43E80000, 0x47600000, 0x47700000, 0x43700000, 0x3B000000};
  switch (dt) {
    case MLAKV_DTYPE_BF16: return bf16[k % 20];
    case MLAKV_DTYPE_FP16: return fp16[k % 20];
    default: return fp32[k % 20];
  }
}

// One value of category `cat` (see gen_raw) for an input dtype, from the format definitions.
uint32_t make_raw(mlakv_dtype dt, tu::Rng& r, int cat) {
  const uint32_t pick = r.u32();
  const bool neg = (pick >> 8) & 1;
  auto from = [&](double v) { return tu::to_raw(dt, neg ? -v : v); };
  const tu::Fp8Oracle& f = fp8_oracle(tu::kFp8Dtypes[(pick >> 9) & 3]);
  const std::vector<double>& vals = f.positive_values();
  switch (cat) {
    case 1: return special_raw(dt, r.u32());
    case 2: return from(vals[r.below(vals.size())]);
    case 3: {  // halfway between neighbours (above the max: halfway to the next step)
      const size_t i = r.below(vals.size());
      const double hi = i + 1 < vals.size() ? vals[i + 1] : vals[i] + (vals[i] - vals[i - 1]);
      return from((vals[i] + hi) / 2);
    }
    case 4: return from(f.max_finite() * (1.0 + double(int(r.below(33)) - 16) / 64.0));
    case 5: return from(double(int(r.below(2001)) - 1000) / 64.0);
    case 6: return from(f.min_subnormal() * double(r.below(17)) / 4.0);
    default: return from(std::ldexp(1.0 + double(r.below(1u << 20)) / double(1u << 20), int(r.below(61)) - 30));
  }
}

// Pools of values per (input dtype, category), made once (rounding to fp16 is a table search: too slow
// to do per element); categories: 0 random bits (not pooled), 1 special encodings (+-0, +-inf, NaNs,
// subnormals, max), 2 exact fp8 values, 3 ties between neighbouring fp8 values, 4 around each fp8 max,
// 5 small multiples of 1/64, 6 the fp8 subnormal range in quarter steps, 7 random magnitudes 2^+-30.
constexpr int kPool = 1024;
struct Pools {
  uint32_t v[3][8][kPool];
  Pools() {
    tu::Rng r(0x6d6c616bu);
    for (int d = 0; d < 3; ++d)
      for (int c = 1; c < 8; ++c)
        for (int i = 0; i < kPool; ++i) v[d][c][i] = make_raw(tu::kInputDtypes[d], r, c);
  }
};
const Pools& pools() {
  static const Pools* p = new Pools();
  return *p;
}

uint32_t gen_raw(mlakv_dtype dt, tu::Rng& r, int mode) {
  const uint32_t pick = r.u32();
  static const int edge[8] = {1, 2, 3, 4, 6, 1, 3, 4}, ties[4] = {3, 6, 2, 4};
  int cat;
  switch (mode & 3) {
    case 0: cat = int(pick % 8); break;
    case 1: cat = edge[pick % 8]; break;
    case 2: cat = (pick % 4) ? 0 : 1; break;
    default: cat = ties[pick % 4]; break;
  }
  if (cat == 0) return dt == MLAKV_DTYPE_FP32 ? r.u32() : (r.u32() & 0xFFFFu);
  return pools().v[dt - MLAKV_DTYPE_BF16][cat][(pick >> 8) % kPool];
}

void fill_arena(const Call& c, uint8_t fill, int mode, uint64_t seed) {
  uint8_t* ar = mem().arena;
  std::memset(ar, fill, kArena);
  tu::Rng r(seed);
  for (int i = 0; i < 3; ++i) {
    const mlakv_tensor& t = tensor(c.a, i);
    const Geo g = geo_tensor(t);
    if (!g.known || g.empty) continue;
    const mlakv_dtype dt = in_dtype_ok(t.dtype) ? t.dtype : MLAKV_DTYPE_BF16;
    const int es = tu::dtype_size(dt);
    i128 x = g.blo;
    if (x < 0) x += ((-x + es - 1) / es) * es;
    const i128 end = g.bhi < i128(kArena) ? g.bhi : i128(kArena);
    for (; x + es <= end; x += es) {
      const uint32_t raw = gen_raw(dt, r, mode);
      std::memcpy(ar + size_t(x), &raw, size_t(es));
    }
  }
  // then the scale arrays (over any input bytes they share), then the amax arrays' initial floats; each
  // float that lies in the arena (a mutated pointer may have moved an array partly out of it)
  auto put = [&](uintptr_t p, const void* src, size_t n) {
    if (!p) return;
    const i128 o = arena_off(p);
    for (size_t k = 0; k < n; ++k)
      if (o + i128(4 * k) >= 0 && o + i128(4 * k) + 4 <= i128(kArena))
        std::memcpy(ar + size_t(o + i128(4 * k)), static_cast<const uint8_t*>(src) + 4 * k, 4);
  };
  put(op_ptr(c.a, kKScale), c.kmem.data(), c.kmem.size());
  put(op_ptr(c.a, kVScale), c.vmem.data(), c.vmem.size());
  put(op_ptr(c.a, kKAmax), c.kamax0.data(), c.kamax0.size());
  put(op_ptr(c.a, kVAmax), c.vamax0.data(), c.vamax0.size());
}

// A per-head multiplier of head j (psv: the input's mode; see the input format).
float head_scale(tu::Rng& r, uint8_t psv, int64_t j, bool v, float per_tensor) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  static const float special[] = {0.0f, -0.0f, -1.5f, std::numeric_limits<float>::quiet_NaN(), inf, -inf,
                                  std::numeric_limits<float>::denorm_min(), 1e-40f, std::numeric_limits<float>::max()};
  switch (psv % 8) {
    case 0: return v ? std::ldexp(1.0f, 2 - int(j % 5)) : std::ldexp(1.0f, int(j % 7) - 3);
    case 1: return per_tensor;
    case 2: return kScaleSpecial[r.below(sizeof kScaleSpecial / sizeof kScaleSpecial[0])];
    case 3: return tu::bits_f32(r.u32());
    case 4: { const uint64_t x = r.next(); return fval(uint8_t(x), x >> 8); }
    case 5:
      if (j % 4 == 3) return special[r.below(sizeof special / sizeof special[0])];
      return std::ldexp(1.0f, int(r.below(13)) - 6);
    case 6: {
      const float m = std::ldexp(1.0f + float(r.below(1u << 23)) / float(1u << 23), int(r.below(80)) - 40);
      return (r.u32() & 1) ? -m : m;
    }
    default: return -std::ldexp(1.0f, int(r.below(13)) - 6);
  }
}

// An initial amax float's bits (mode: the input's amax_init % 8, below 7).
uint32_t amax_start(tu::Rng& r, int mode) {
  if (mode == 5) {
    const int pick = int(r.below(6));
    if (pick == 4) return 0x7F800000u;  // +inf
    if (pick == 5) return 0x80000000u;  // -0
    mode = 1 + pick;
  }
  switch (mode) {
    case 0: return 0;
    case 1: return r.u32();
    case 2: {  // negative: -0, -inf, a negative NaN, or a negative finite value
      const uint32_t k = r.u32() % 8;
      if (k == 0) return 0x80000000u;
      if (k == 1) return 0xFF800000u;
      if (k == 2) return 0xFFFFFFFFu;  // a negative NaN (int32 -1)
      return tu::f32_bits(-std::ldexp(1.0f + float(r.below(256)) / 256.0f, int(r.below(40)) - 20));
    }
    case 3: return (r.u32() & 0x80000000u) | 0x7F800000u | ((r.u32() & 0x7FFFFFu) | 1u);  // NaN, either sign
    case 4: return tu::f32_bits(std::ldexp(1.0f, int(r.below(24)) - 12));
    default: {
      static const uint32_t v[] = {0x7F800000u, 0x7F7FFFFFu, 0x80000000u, 0x00000001u};
      return v[r.below(4)];
    }
  }
}

// ---- building the call from the input ------------------------------------------------------------------
struct Setup {
  uint8_t ctl0, ctl1, fill_byte, value_mode;
  uint64_t seed;
};

Call build(In& in, Setup* su) {
  Call c;
  mlakv_pack_args& a = c.a;
  mlakv_pack_args_init(&a);
  su->ctl0 = in.u8();
  su->ctl1 = in.u8();
  const mlakv_dtype idt = tu::kInputDtypes[in.u8() % 3];
  const mlakv_dtype odt = tu::kFp8Dtypes[in.u8() % 4];
  const uint8_t dims_mode = in.u8();
  const uint16_t d0 = in.u16(), d1 = in.u16(), d2 = in.u16();
  int64_t dn, dr, dv;
  switch (dims_mode % 4) {
    case 0: dn = 128; dr = 64; dv = 128; break;
    case 1: dn = 1 + d0 % 24; dr = 1 + d1 % 24; dv = 1 + d2 % 24; break;
    case 2: dn = 8 * (1 + d0 % 16); dr = 8 * (1 + d1 % 8); dv = 8 * (1 + d2 % 16); break;
    default: dn = d0; dr = d1; dv = d2; break;
  }
  const int64_t dk = dn + dr;
  const uint8_t sb = in.u8(), hb = in.u8();  // zero bytes: s = 2, h = 3
  const int64_t s = sb < 128 ? (sb + 2) % 9 : sb - 128, h = hb < 128 ? (hb + 3) % 17 : hb - 128;
  const uint8_t layout = in.u8();
  const int64_t pad_t = (layout & 16) ? in.u8() % 64 : (in.u8(), 0);
  int64_t pad_h = (layout & 32) ? in.u8() % 64 : (in.u8(), 0);
  const uint8_t place = in.u8();
  const int es = tu::dtype_size(idt);
  // nested: k_out and v_out rows live in the padding after each k_nope row (one buffer, three lattices
  // of the same byte strides), k_pe and v elsewhere
  const bool nested = place % 8 == 4;
  if (nested) pad_h += (dk + dv + es - 1) / es;
  uint16_t g[7];
  for (uint16_t& x : g) x = in.u16();
  const uint8_t scale_mode = in.u8();
  const uint8_t ksel = in.u8();
  const uint32_t kraw = in.u32();
  const uint8_t vsel = in.u8();
  const uint32_t vraw = in.u32();
  const uint8_t backend_sel = in.u8();
  const uint32_t backend_raw = in.u32();
  const uint8_t misc = in.u8();
  const uint32_t pdl_raw = in.u32(), flags_raw = in.u32(), device_raw = in.u32();
  const uint64_t stream_raw = in.u64();
  const uint8_t ss_mode = in.u8();
  const uint16_t ss_k = in.u16(), ss_pos = in.u16();
  const uint8_t ss_byte = in.u8();
  su->fill_byte = in.u8();
  su->value_mode = in.u8();
  su->seed = in.u64();
  // the 0.2 fields
  const uint8_t v02 = in.u8();
  const uint32_t gran_raw = in.u32(), res_raw = in.u32();
  const uint8_t psv = in.u8(), amax_init = in.u8();
  uint8_t aux_sel[4];
  uint16_t aux_pos[4];
  for (int k = 0; k < 4; ++k) { aux_sel[k] = in.u8(); aux_pos[k] = in.u16(); }
  int32_t gran;
  switch (v02 & 7) {
    case 0: case 2: case 4: gran = MLAKV_SCALE_PER_TENSOR; break;
    case 1: case 3: case 5: gran = MLAKV_SCALE_PER_HEAD; break;
    case 6: gran = int32_t(gran_raw); break;
    default: gran = kWild32[gran_raw % (sizeof kWild32 / sizeof kWild32[0])]; break;
  }
  const bool ph = gran == MLAKV_SCALE_PER_HEAD;
  // the scale and amax arrays (k scale, v scale, k amax, v amax): which exist, and their floats
  const bool has_aux[4] = {(ph || (scale_mode & 1)) && aux_sel[0] % 8 != 4, (ph || (scale_mode & 2)) && aux_sel[1] % 8 != 4,
                           (v02 & 8) && aux_sel[2] % 8 != 4, (v02 & 16) && aux_sel[3] % 8 != 4};

  // strides (elements) of an [s, h, row] view with `pitch` elements per row slot
  auto strides3 = [&](int64_t pitch, bool head_major, int64_t* st, int64_t* sh) {
    if (!head_major) { *sh = pitch + pad_h; *st = h * (pitch + pad_h) + pad_t; }
    else { *st = pitch + pad_h; *sh = s * (pitch + pad_h) + pad_t; }
  };
  auto elems3 = [&](int64_t st, int64_t sh, int64_t row) -> int64_t {
    return (s && h) ? (s - 1) * st + (h - 1) * sh + row : 0;
  };
  const bool kv_i = (layout & 1) && !nested, out_i = (layout & 2) && !nested, in_hm = layout & 4, pe3 = layout & 8, bcast = layout & 64,
             out_hm = layout & 128;
  int64_t kn_st, kn_sh, v_st, v_sh, ko_st, ko_sh, vo_st, vo_sh;
  strides3(kv_i ? dn + dv : dn, in_hm, &kn_st, &kn_sh);
  strides3(kv_i ? dn + dv : dv, in_hm, &v_st, &v_sh);
  if (bcast) kn_st = v_st = 0;
  strides3(out_i ? dk + dv : dk, out_hm, &ko_st, &ko_sh);
  strides3(out_i ? dk + dv : dv, out_hm, &vo_st, &vo_sh);
  if (nested) { ko_st = vo_st = kn_st * es; ko_sh = vo_sh = kn_sh * es; }
  const int64_t pe_st = bcast ? 0 : dr + pad_t;
  // buffer sizes in bytes, in placement order (the scale and amax arrays placed elsewhere take none)
  const int64_t n_aux = ph ? h : 1;
  int64_t bytes[kOps];
  bytes[0] = elems3(kn_st, kn_sh, kv_i ? dn + dv : dn) * es;
  bytes[1] = s ? ((s - 1) * pe_st + dr) * es : 0;
  bytes[2] = kv_i ? 0 : elems3(v_st, v_sh, dv) * es;
  bytes[3] = nested ? 0 : elems3(ko_st, ko_sh, out_i ? dk + dv : dk);
  bytes[4] = out_i || nested ? 0 : elems3(vo_st, vo_sh, dv);
  for (int k = 0; k < 4; ++k) bytes[5 + k] = has_aux[k] && aux_sel[k] % 8 < 4 ? 4 * ((v02 & 128) ? 1 : n_aux) : 0;
  const uint16_t gap[kOps] = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], aux_pos[2], aux_pos[3]};
  uintptr_t off[kOps];
  uint64_t cursor = 0;
  for (int i = 0; i < kOps; ++i) {
    switch (place % 4) {
      case 0: cursor = (cursor + uint64_t(gap[i] % 8) * 64 + 63) & ~uint64_t(63); off[i] = uintptr_t(cursor); break;
      case 1: cursor += gap[i] % 64; off[i] = uintptr_t(cursor); break;
      case 2: off[i] = gap[i] % kArena; break;
      default: off[i] = (gap[i] % kArena) & ~uintptr_t(63); break;
    }
    if (place % 4 < 2) cursor += uint64_t(bytes[i]);
  }
  auto P = [&](uintptr_t o) { return reinterpret_cast<void*>(arena_addr() + o); };
  a.k_nope = tu::tensor3(P(off[0]), idt, s, h, dn, kn_st, kn_sh);
  a.v = tu::tensor3(kv_i ? P(off[0] + uintptr_t(dn * es)) : P(off[2]), idt, s, h, dv, v_st, v_sh);
  a.k_pe = pe3 ? tu::tensor3(P(off[1]), idt, s, 1, dr, pe_st, dr) : tu::tensor2(P(off[1]), idt, s, dr, pe_st);
  if (nested) off[3] = off[0] + uintptr_t(dn * es) + (g[3] >> 15);  // (+1: may run into the next row)
  a.k_out = tu::tensor3(P(off[3]), odt, s, h, dk, ko_st, ko_sh);
  a.v_out = tu::tensor3(out_i || nested ? P(off[3] + uintptr_t(dk)) : P(off[4]), odt, s, h, dv, vo_st, vo_sh);

  const float kval = scale_value(ksel, kraw), vval = scale_value(vsel, vraw);
  const float host_dummy = (scale_mode & 4) ? std::numeric_limits<float>::quiet_NaN() : -7.0f;
  a.k_scale_inv = kval;
  a.v_scale_inv = vval;
  a.scale_granularity = gran;
  if ((v02 & 0x60) == 0x60) a.reserved = res_raw ? res_raw : 1u;
  // the arrays: in the layout, at arena offsets, or inside another operand (placed last, so that the
  // others are where they will be)
  auto set_aux = [&](int k, void* p) {
    switch (k) {
      case 0: a.k_scale_inv_ptr = static_cast<const float*>(p); break;
      case 1: a.v_scale_inv_ptr = static_cast<const float*>(p); break;
      case 2: a.k_amax = static_cast<float*>(p); break;
      default: a.v_amax = static_cast<float*>(p); break;
    }
  };
  for (int k = 0; k < 4; ++k) {
    if (!has_aux[k]) continue;
    const int sel = aux_sel[k] % 8;
    if (sel < 4) set_aux(k, P(off[5 + k]));
    else if (sel == 6) set_aux(k, P((aux_pos[k] % kArena) & ~uintptr_t(3)));
    else if (sel == 7) set_aux(k, P(aux_pos[k] % kArena));
  }
  for (int k = 0; k < 4; ++k) {
    if (!has_aux[k] || aux_sel[k] % 8 != 5) continue;
    const int target = ((aux_sel[k] >> 3) & 15) % kOps;
    const Geo tg = geo_op(a, target);
    uintptr_t o = aux_pos[k] % kArena;
    if (target != 5 + k && tg.known && !tg.empty && tg.in_arena) o = uintptr_t(tg.blo + i128(aux_pos[k]) % (tg.bhi - tg.blo));
    if (!(aux_sel[k] & 128)) o &= ~uintptr_t(3);
    set_aux(k, P(o));
  }
  if (a.k_scale_inv_ptr) a.k_scale_inv = host_dummy;
  if (a.v_scale_inv_ptr) a.v_scale_inv = host_dummy;
  // what the arena holds there before the call
  tu::Rng r(su->seed ^ 0x5CA1E5u);
  c.kmem.assign(size_t(n_aux), kval);
  c.vmem.assign(size_t(n_aux), vval);
  if (ph)
    for (int64_t j = 0; j < n_aux; ++j) {
      c.kmem[size_t(j)] = head_scale(r, psv, j, false, kval);
      c.vmem[size_t(j)] = head_scale(r, psv, j, true, vval);
    }
  if (amax_init % 8 != 7) {
    for (int k = 0; k < 2; ++k) {
      std::vector<uint32_t>& v = k ? c.vamax0 : c.kamax0;
      v.resize(size_t(n_aux));
      for (uint32_t& x : v) x = amax_start(r, amax_init % 8);
    }
  }

  switch (backend_sel % 8) {
    case 1: a.backend = MLAKV_BACKEND_AUTO; break;
    case 2: a.backend = MLAKV_BACKEND_CUDA; break;
    case 3: a.backend = MLAKV_BACKEND_HIP; break;
    case 4: a.backend = int32_t(backend_raw); break;
    default: a.backend = MLAKV_BACKEND_REFERENCE; break;
  }
  a.pdl = (misc & 3) == 3 ? int32_t(pdl_raw) : int32_t(misc & 3);
  a.flags = (misc & 4) ? MLAKV_FLAG_TRUST_POINTERS : 0u;
  if (misc & 8) a.flags = flags_raw;
  if (misc & 16) a.device = int32_t(device_raw);
  if (misc & 32) a.stream = reinterpret_cast<void*>(uintptr_t(stream_raw));

  switch (ss_mode % 8) {
    case 1: c.S = kArgs - 1 - ss_k % kArgs; break;
    case 2: c.S = kArgs + 1 + ss_k % 4096; break;
    case 3: c.S = kArgs + 1 + ss_k % 4096; c.trail_set = true; c.trail_pos = ss_pos; c.trail_byte = ss_byte; break;
    case 4: {  // (the two sizes the library scans a long zero tail of are single values: they are slow)
      const size_t wild[] = {SIZE_MAX, kStructCap + 1, size_t(1) << 40, 0, 2 * kArgs, 8192, 7, kMinArgs};
      c.S = ss_k == 0xFFFF ? kStructCap : ss_k == 0xFFFE ? kStructSure + 8 : wild[ss_k % (sizeof wild / sizeof wild[0])];
      break;
    }
    default: c.S = kArgs; break;
  }

  // mutations
  const int nmut = in.u8() % 9;
  for (int k = 0; k < nmut; ++k) {
    const uint8_t field = in.u8() % kMutFields, sub = in.u8();
    const uint64_t val = in.u64();
    if (field < 55) {
      mlakv_tensor& t = *tensors(a, field / 11);
      const int attr = field % 11;
      if (attr == 0) t.dtype = i32val(sub, val, t.dtype);
      else if (attr == 1) t.ndim = i32val(sub, val, t.ndim);
      else if (attr < 6) t.shape[attr - 2] = i64val(sub, val, t.shape[attr - 2]);
      else if (attr < 10) t.strides[attr - 6] = i64val(sub, val, t.strides[attr - 6]);
      else t.data = ptrval(sub, val, t.data);
      continue;
    }
    switch (field) {
      case 55: a.k_scale_inv = fval(sub, val); break;
      case 56: a.v_scale_inv = fval(sub, val); break;
      case 57: a.k_scale_inv_ptr = static_cast<const float*>(ptrval(sub, val, const_cast<float*>(a.k_scale_inv_ptr))); break;
      case 58: a.v_scale_inv_ptr = static_cast<const float*>(ptrval(sub, val, const_cast<float*>(a.v_scale_inv_ptr))); break;
      case 59: a.backend = i32val(sub, val, a.backend); break;
      case 60: a.device = i32val(sub, val, a.device); break;
      case 61: a.pdl = i32val(sub, val, a.pdl); break;
      case 62: a.flags = uint32_t(i32val(sub, val, int32_t(a.flags))); break;
      case 64: a.scale_granularity = i32val(sub, val, a.scale_granularity); break;
      case 65: a.reserved = uint32_t(i32val(sub, val, int32_t(a.reserved))); break;
      case 66: a.k_amax = static_cast<float*>(ptrval(sub, val, a.k_amax)); break;
      case 67: a.v_amax = static_cast<float*>(ptrval(sub, val, a.v_amax)); break;
      case 63: a.stream = reinterpret_cast<void*>(uintptr_t(val)); break;
      default: break;
    }
  }
  return c;
}

// ---- dispatch tables -------------------------------------------------------------------------------------
std::string table_get(mlakv_backend b, mlakv_status* st) {
  size_t needed = 0;
  *st = mlakv_dispatch_table_get(b, nullptr, 0, &needed);
  if (*st != MLAKV_ERR_BUFFER_TOO_SMALL) return "";
  std::vector<char> buf(needed + 1, 0x5A);
  *st = mlakv_dispatch_table_get(b, buf.data(), needed, nullptr);
  return *st == MLAKV_OK ? std::string(buf.data()) : "";
}

std::string table_from_tokens(In& in, bool catch_all) {
  std::string t;
  const int rows = 1 + in.u8() % 6;
  for (int r = 0; r < rows; ++r) {
    uint8_t b[8];
    for (uint8_t& x : b) x = in.u8();
    static const char* arch[] = {"arch=0-0", "arch=0", "arch=1-99", "arch=0-*", "arch=-1", "arch=0-100000", "", "arch=5-2"};
    t += arch[b[0] % 8];
    const int slo = b[1] % 6, shi = b[2] % 12;
    t += " s=" + std::to_string(slo) + (shi == 11 ? "-*" : shi == 10 ? "" : "-" + std::to_string(slo + shi));
    const int xlo = b[3] % 20, xhi = b[4] % 40;
    t += " sxh=" + std::to_string(xlo) + (xhi == 39 ? "-*" : "-" + std::to_string(xlo + xhi));
    static const char* dims[] = {" dims=any", " dims=x8", " dims=ds", "", " dims=z"};
    t += dims[b[5] % 5];
    static const char* var[] = {" variant=vector", " variant=strided", " variant=flat", "", " variant=vector variant=strided"};
    t += var[b[6] % 5];
    const uint8_t e = b[7];
    if (e & 1) t += " threads=128";
    if (e & 2) t += " lanes=8 split=1";
    if (e & 4) t += " l2=0-*";
    if (e & 8) t += " l2=1-5";
    if (e & 32) t += " unroll=9";
    if (e & 64) t += " sh=1-*";
    if (e & 16) t += "  # note " + std::to_string(r);
    t += "\n";
    if (e & 128) t += "\n# a comment line\n";
  }
  if (catch_all) t += "arch=0-0 s=1-* sxh=1-* dims=any variant=strided  # catch-all\n";
  return t;
}

void set_table(In& in, Ctx& x, int mode, uint8_t ctl1) {
  mlakv_status st;
  const std::string before = table_get(MLAKV_BACKEND_REFERENCE, &st);
  if (st != MLAKV_OK) fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_dispatch_table_get(REFERENCE) failed");
  std::string text;
  if (mode == 1) {
    const size_t n = std::min<size_t>(in.left(), 4096);
    text.assign(reinterpret_cast<const char*>(in.p + in.i), n);
    in.i += n;
    text = text.c_str();  // up to the first NUL, as the library sees it
  } else {
    text = table_from_tokens(in, mode == 3);
  }
  x.table_text = text;
  st = mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, text.c_str());
  if (st == MLAKV_OK) {
    g_count.table_ok++;
    x.table_set = true;
    const std::string after = table_get(MLAKV_BACKEND_REFERENCE, &st);
    if (st != MLAKV_OK) fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_dispatch_table_get after a set failed");
    if (ctl1 & 8) {  // the printed table parses back to itself
      st = mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, after.c_str());
      if (st != MLAKV_OK) fail(x, nullptr, nullptr, st, kNotCalled, "the table mlakv_dispatch_table_get printed does not parse: " + after);
      const std::string again = table_get(MLAKV_BACKEND_REFERENCE, &st);
      if (again != after) fail(x, nullptr, nullptr, st, kNotCalled, "table text changed on a round trip:\n" + after + "---\n" + again);
    }
  } else if (st == MLAKV_ERR_TABLE_PARSE) {
    g_count.table_parse++;
    if (!*mlakv_last_error()) fail(x, nullptr, nullptr, st, kNotCalled, "TABLE_PARSE with an empty mlakv_last_error()");
    const std::string after = table_get(MLAKV_BACKEND_REFERENCE, &st);
    if (after != before) fail(x, nullptr, nullptr, st, kNotCalled, "a table that did not parse changed the table");
  } else {
    fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_dispatch_table_set returned " + status_name(st) + " for text:\n" + text);
  }
}

// The table API with backends that have no table in this build, NULL text, small buffers.
void table_api_edges(Ctx& x, uint32_t raw) {
  Mem& m = mem();
  const int32_t ids[] = {MLAKV_BACKEND_AUTO, MLAKV_BACKEND_CUDA, MLAKV_BACKEND_HIP, int32_t(raw | 4u), -1};
  for (int32_t b : ids) {
    if (b >= 0 && b < 4 && m.compiled[b] && b != MLAKV_BACKEND_AUTO) continue;
    const int want = (b == MLAKV_BACKEND_CUDA || b == MLAKV_BACKEND_HIP) ? MLAKV_ERR_BACKEND_UNAVAILABLE : MLAKV_ERR_NO_SUCH_BACKEND;
    char buf[64];
    size_t needed = 0;
    const int r[3] = {mlakv_dispatch_table_set(b, "arch=0-0 variant=vector\n"), mlakv_dispatch_table_get(b, buf, sizeof buf, &needed),
                      mlakv_dispatch_table_reset(b)};
    for (int st : r)
      if (st != want) fail(x, nullptr, nullptr, st, kNotCalled, "table API on backend " + std::to_string(b) + ": " + status_name(st) + ", want " + status_name(want));
  }
  int st = mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, nullptr);
  if (st != MLAKV_ERR_NULL_POINTER) fail(x, nullptr, nullptr, st, kNotCalled, "table_set(NULL text) is not NULL_POINTER");
  char buf[40];
  const size_t small = raw % 32;
  std::memset(buf, 0x5A, sizeof buf);
  size_t needed = 0;
  st = mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, buf, small, &needed);
  if (st != MLAKV_ERR_BUFFER_TOO_SMALL || needed <= small) fail(x, nullptr, nullptr, st, kNotCalled, "table_get into a small buffer");
  for (size_t k = small; k < sizeof buf; ++k)
    if (buf[k] != 0x5A) fail(x, nullptr, nullptr, st, kNotCalled, "table_get wrote past buf_size");
  if (small && buf[0] != '\0') fail(x, nullptr, nullptr, st, kNotCalled, "table_get into a small buffer left no empty string");
}

// mlakv_pack_args_init_sized (ABI 0.2): fills exactly struct_size bytes (defaults, zeros past this
// header's struct), or nothing with STRUCT_SIZE below the 0.1 size or above 1 MiB; the 0.1 spelling
// (the function, not the macro) fills exactly 456 bytes. Buffers end at a guard page.
void check_init(Ctx& x, size_t S) {
  Mem& m = mem();
  const size_t B = S <= kStructCap ? ((S + 7) & ~size_t(7)) : kArgs;
  uint8_t* p = m.sregion + m.sregion_size - B;
  if (B > 64 * 1024) return;  // (a 1 MiB fill per input is too slow to do often)
  std::memset(p, 0xC3, B);
  mlakv_pack_args ref = MLAKV_PACK_ARGS_INIT;
  ref.struct_size = S;
  const int st = mlakv_pack_args_init_sized(reinterpret_cast<mlakv_pack_args*>(p), S);
  const bool ok_size = S >= MLAKV_PACK_ARGS_SIZE_0_1 && S <= kStructCap;
  if (st != (ok_size ? MLAKV_OK : MLAKV_ERR_STRUCT_SIZE))
    fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_pack_args_init_sized(" + std::to_string(S) + ") returned " + status_name(st));
  for (size_t i = 0; i < B; ++i) {
    const uint8_t want = !ok_size || i >= S ? 0xC3 : i < kArgs ? reinterpret_cast<const uint8_t*>(&ref)[i] : 0;
    if (p[i] != want)
      fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_pack_args_init_sized(" + std::to_string(S) + "): byte " +
           std::to_string(i) + " is " + tu::hex(p[i]) + ", want " + tu::hex(want));
  }
  uint8_t* q = m.sregion + m.sregion_size - MLAKV_PACK_ARGS_SIZE_0_1;
  std::memset(q, 0xC3, MLAKV_PACK_ARGS_SIZE_0_1);
  (mlakv_pack_args_init)(reinterpret_cast<mlakv_pack_args*>(q));
  ref.struct_size = MLAKV_PACK_ARGS_SIZE_0_1;
  if (std::memcmp(q, &ref, MLAKV_PACK_ARGS_SIZE_0_1) != 0)
    fail(x, nullptr, nullptr, 0, kNotCalled, "mlakv_pack_args_init (0.1) did not fill the 0.1 layout with its defaults");
}

int one_input(const uint8_t* data, size_t size);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_count.execs++;
  g_findings.input = data;
  g_findings.input_size = size;
  try {
    return one_input(data, size);
  } catch (const KeepGoing&) {
    mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE);
    return 0;
  }
}

namespace {

int one_input(const uint8_t* data, size_t size) {
  Mem& m = mem();
  In in{data, size};
  Setup su{};
  Call c = build(in, &su);
  Ctx x;

  // follow-up steps and the table come after the mutations
  struct Step { uint8_t kind, mask; int16_t d[5], sd[2]; uint8_t ksel; uint32_t kraw; uint8_t vsel; uint32_t vraw, amode; int16_t ad[2]; };
  const int nsteps = (su.ctl0 >> 2) & 7;
  Step steps[7];
  for (int k = 0; k < nsteps; ++k) {
    Step& s = steps[k];
    s.kind = in.u8();
    s.mask = in.u8();
    for (int16_t& d : s.d) d = int16_t(in.u16());
    for (int16_t& d : s.sd) d = int16_t(in.u16());
    s.ksel = in.u8(); s.kraw = in.u32(); s.vsel = in.u8(); s.vraw = in.u32();
    s.amode = in.u8();
    for (int16_t& d : s.ad) d = int16_t(in.u16());
  }
  if (su.ctl0 & 3) set_table(in, x, su.ctl0 & 3, su.ctl1);
  if (su.ctl1 & 2) table_api_edges(x, uint32_t(su.seed));
  if (su.ctl1 & 16) check_init(x, c.S);
  if (su.ctl1 & 4) {
      int st = mlakv_pack_fp8(nullptr);
    if (st != MLAKV_ERR_NULL_POINTER) fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_pack_fp8(NULL)");
    char buf[8];
    st = mlakv_pack_fp8_plan(nullptr, buf, sizeof buf, nullptr);
    if (st != MLAKV_ERR_NULL_POINTER) fail(x, nullptr, nullptr, st, kNotCalled, "mlakv_pack_fp8_plan(NULL)");
  }

  fill_arena(c, su.fill_byte, su.value_mode, su.seed);
  std::vector<uint32_t> written;
  const int st = check_call(c, x, &written);

  // a small plan buffer: BUFFER_TOO_SMALL, nothing past buf_size
  if ((su.ctl1 & 1) && st == MLAKV_OK) {
    const StructBuf sb = write_struct(c);
    char buf[48];
    std::memset(buf, 0x5A, sizeof buf);
    const size_t small = su.seed % 32;
    size_t needed = 0;
    const int sp = mlakv_pack_fp8_plan(sb.p, buf, small, &needed);
    if (sp != MLAKV_ERR_BUFFER_TOO_SMALL || needed <= small) fail(x, &c, nullptr, sp, kNotCalled, "plan into a small buffer");
    for (size_t k = small; k < sizeof buf; ++k)
      if (buf[k] != 0x5A) fail(x, &c, nullptr, sp, kNotCalled, "plan wrote past buf_size");
  }

  // follow-ups: the per-thread plan cache (same args; new pointers / scales / stream)
  for (int k = 0; k < nsteps; ++k) {
    const Step& s = steps[k];
    x.label = "follow-up";
    x.step = k + 1;
    if (s.mask & 128) {  // switch the table between two calls: cached plans must notice
      const char* no_row = "arch=0-0 s=1000000-* sxh=1-* dims=any variant=strided  # rows no call here matches\n";
      const int ts = x.table_set ? mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE)
                                 : mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, no_row);
      if (ts != MLAKV_OK) fail(x, nullptr, nullptr, ts, kNotCalled, "switching the table between calls failed");
      x.table_set = !x.table_set;
      x.table_text = x.table_set ? no_row : "";
    }
    for (uint32_t off : written) m.arena[off] = uint8_t(~m.arena[off]);  // re-poison the last outputs
    Call n = c;
    const int kind = s.kind % 4;
    if (kind == 1 || kind == 3) {  // move data pointers
      for (int i = 0; i < 5; ++i) {
        if (!(s.mask >> i & 1)) continue;
        int64_t d = (s.mask & 64) ? s.d[0] : s.d[i];
        if (s.mask & 32) d *= 32;  // keeps every alignment the plan depends on
        mlakv_tensor& t = *tensors(n.a, i);
        t.data = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(t.data) + uintptr_t(d));
      }
    }
    if (kind == 2 || kind == 3) {  // scales and scale pointers
      if (s.kind & 4) n.a.k_scale_inv = scale_value(s.ksel, s.kraw);
      if (s.kind & 8) n.a.v_scale_inv = scale_value(s.vsel, s.vraw);
      if (s.kind & 16)
        n.a.k_scale_inv_ptr = s.sd[0] == 0 ? nullptr : reinterpret_cast<const float*>(
            reinterpret_cast<uintptr_t>(n.a.k_scale_inv_ptr ? n.a.k_scale_inv_ptr : static_cast<const float*>(at_off(0))) + uintptr_t(int64_t(s.sd[0])));
      if (s.kind & 32)
        n.a.v_scale_inv_ptr = s.sd[1] == 0 ? nullptr : reinterpret_cast<const float*>(
            reinterpret_cast<uintptr_t>(n.a.v_scale_inv_ptr ? n.a.v_scale_inv_ptr : static_cast<const float*>(at_off(0))) + uintptr_t(int64_t(s.sd[1])));
    }
    if (kind == 3 || (s.kind & 64)) n.a.stream = reinterpret_cast<void*>(uintptr_t(s.kraw) * 8);
    // amax pointers (only pointers differ: the plan cache's rebind path) and the granularity (a new
    // geometry); the amax arrays keep what earlier calls accumulated there
    for (int k = 0; k < 2; ++k) {
      if (!(s.amode >> k & 1)) continue;
      float*& p = k ? n.a.v_amax : n.a.k_amax;
      const int64_t d = (s.amode & 8) ? int64_t(s.ad[k]) * 4 : int64_t(s.ad[k]);
      if (s.ad[k] == 0) p = nullptr;
      else if (!p) p = static_cast<float*>(at_off(uint16_t(s.ad[k]) % kArena));
      else p = reinterpret_cast<float*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(d));
    }
    if ((s.amode & 4) && (n.a.scale_granularity == MLAKV_SCALE_PER_TENSOR || n.a.scale_granularity == MLAKV_SCALE_PER_HEAD))
      n.a.scale_granularity = n.a.scale_granularity == MLAKV_SCALE_PER_HEAD ? MLAKV_SCALE_PER_TENSOR : MLAKV_SCALE_PER_HEAD;
    g_count.followups++;
    std::vector<uint32_t> w;
    check_call(n, x, &w);
    written.swap(w);  // what this call wrote (nothing if rejected): poisoned before the next
    if (s.kind & 128) c = n;  // chain from the new call
  }

  const int rs = mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE);
  if (rs != MLAKV_OK) fail(x, &c, nullptr, rs, kNotCalled, "mlakv_dispatch_table_reset(REFERENCE) failed");
  return 0;
}

}  // namespace
