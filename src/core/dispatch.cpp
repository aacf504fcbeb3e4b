#include "core/dispatch.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace mlakv {

const char* dims_req_name(DimsReq r) {
  switch (r) {
    case DimsReq::Any: return "any";
    case DimsReq::X8: return "x8";
    case DimsReq::X16: return "x16";
    case DimsReq::DeepSeek: return "ds";
  }
  return "?";
}

static bool aligned(const void* p, int64_t a) { return (reinterpret_cast<uintptr_t>(p) & uint64_t(a - 1)) == 0; }  // a: a power of two

// Every row start base + t*st + h*sh (strides in elements of e bytes) keeps an alignment of a bytes
// (a power of two; sizes and strides are validated non-negative, so masks do).
static bool rows_aligned(const void* base, int64_t st, int64_t sh, int64_t e, int64_t a) {
  return aligned(base, a) && (((st | sh) * e) & (a - 1)) == 0;
}

bool dims_req_holds(DimsReq r, const PackProblem& p) {
  if (r == DimsReq::Any) return true;
  const int64_t vm = r == DimsReq::X16 ? 15 : 7;  // elements per vector unit - 1 (DeepSeek: 8)
  if ((p.d_nope | p.d_rope | p.d_v) & vm) return false;
  if (r == DimsReq::DeepSeek && !(p.d_nope == 128 && p.d_rope == 64 && p.d_v == 128)) return false;
  const int64_t e = in_type_size(p.in_type);
  const int64_t in_align = 16;       // input vectors are loaded 16 bytes at a time
  const int64_t out_align = vm + 1;  // one fp8 byte per element: 8- or 16-byte stores
  return rows_aligned(p.k_nope, p.k_nope_st, p.k_nope_sh, e, in_align) && rows_aligned(p.k_pe, p.k_pe_st, 0, e, in_align) &&
         rows_aligned(p.v, p.v_st, p.v_sh, e, in_align) && rows_aligned(p.k_out, p.k_out_st, p.k_out_sh, 1, out_align) &&
         rows_aligned(p.v_out, p.v_out_st, p.v_out_sh, 1, out_align);
}

bool wide_units_hold(const PackProblem& p) {
  const int64_t e = in_type_size(p.in_type);
  return rows_aligned(p.k_nope, p.k_nope_st, p.k_nope_sh, e, 32) && rows_aligned(p.v, p.v_st, p.v_sh, e, 32) &&
         rows_aligned(p.k_out, p.k_out_st, p.k_out_sh, 1, 16) && rows_aligned(p.v_out, p.v_out_st, p.v_out_sh, 1, 16);
}

namespace {
std::atomic<uint64_t> g_generation{0};
}
uint64_t table_generation() { return g_generation.load(std::memory_order_acquire); }

DispatchTable::DispatchTable(std::vector<std::string> variant_names, std::vector<DispatchRow> builtin)
    : names_(std::move(variant_names)), builtin_(std::move(builtin)), current_(&builtin_) {}

const DispatchRow* DispatchTable::select(int arch, const PackProblem& p) const {
  const int64_t sh = p.rows();
  for (const DispatchRow& r : rows()) {
    if (arch < r.arch_min || arch > r.arch_max) continue;
    if (p.s < r.s_min || p.s > r.s_max) continue;
    if (sh < r.sh_min || sh > r.sh_max) continue;
    if (!dims_req_holds(r.dims, p)) continue;
    return &r;
  }
  return nullptr;
}

static void put_range(std::ostringstream& o, const char* key, int64_t lo, int64_t hi) {
  o << key << '=' << lo << '-';
  if (hi == kUnbounded) o << '*'; else o << hi;
}

std::string DispatchTable::row_text(const DispatchRow& r, const std::vector<std::string>& names) {
  std::ostringstream o;
  o << "arch=" << r.arch_min << '-' << r.arch_max << ' ';
  put_range(o, "s", r.s_min, r.s_max);
  o << ' ';
  put_range(o, "sh", r.sh_min, r.sh_max);
  o << " dims=" << dims_req_name(r.dims) << " variant="
    << (r.variant >= 0 && size_t(r.variant) < names.size() ? names[size_t(r.variant)] : "?")
    << " threads=" << r.cfg.threads << " block=" << r.cfg.block << " unroll=" << r.cfg.unroll
    << " waves=" << r.cfg.waves << " early=" << r.cfg.early << " lanes=" << r.cfg.lanes << " split=" << r.cfg.split << " stream=" << r.cfg.stream << " wide=" << r.cfg.wide;
  if (!r.note.empty()) o << "  # " << r.note;
  return o.str();
}

std::string DispatchTable::to_text() const {
  std::string out =
      "# first matching row wins; arch = SM major*10+minor (0 = host); s and sh = s*h are "
      "inclusive ranges\n";
  for (const DispatchRow& r : rows()) out += row_text(r, names_) + "\n";
  return out;
}

static bool parse_i64(const std::string& s, int64_t* v) {
  if (s == "*") { *v = kUnbounded; return true; }
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || x < 0) return false;
  *v = x;
  return true;
}
static bool parse_range(const std::string& s, int64_t* lo, int64_t* hi) {
  const size_t dash = s.find('-');
  if (dash == std::string::npos) return parse_i64(s, lo) && *lo != kUnbounded && ((*hi = *lo), true);
  return parse_i64(s.substr(0, dash), lo) && *lo != kUnbounded && parse_i64(s.substr(dash + 1), hi) &&
         *lo <= *hi;
}
static bool parse_small(const std::string& s, int lo, int hi, int* v) {
  int64_t x;
  if (!parse_i64(s, &x) || x < lo || x > hi) return false;
  *v = int(x);
  return true;
}

bool DispatchTable::set_from_text(const char* text, std::string* error) {
  if (!text) { *error = "table text is NULL"; return false; }
  auto rows = std::make_unique<std::vector<DispatchRow>>();
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    DispatchRow r;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) {
      size_t b = line.find_first_not_of(" \t", hash + 1);
      r.note = b == std::string::npos ? "" : line.substr(b);
      line = line.substr(0, hash);
    }
    std::istringstream toks(line);
    std::string tok;
    bool any = false, has_arch = false, has_variant = false;
    auto fail = [&](const std::string& why) {
      *error = "dispatch table line " + std::to_string(lineno) + ": " + why;
      return false;
    };
    while (toks >> tok) {
      any = true;
      const size_t eq = tok.find('=');
      if (eq == std::string::npos) return fail("expected key=value, got '" + tok + "'");
      const std::string k = tok.substr(0, eq), v = tok.substr(eq + 1);
      bool ok = true;
      if (k == "arch") {
        int64_t lo, hi;
        ok = parse_range(v, &lo, &hi) && hi <= 100000;
        if (ok) { r.arch_min = int(lo); r.arch_max = int(hi); has_arch = true; }
      } else if (k == "s") {
        ok = parse_range(v, &r.s_min, &r.s_max);
      } else if (k == "sh") {
        ok = parse_range(v, &r.sh_min, &r.sh_max);
      } else if (k == "dims") {
        ok = false;
        for (int d = 0; d <= 3; ++d)
          if (v == dims_req_name(DimsReq(d))) { r.dims = DimsReq(d); ok = true; }
      } else if (k == "variant") {
        ok = false;
        for (size_t i = 0; i < names_.size(); ++i)
          if (v == names_[i]) { r.variant = int(i); ok = true; }
        if (!ok) {
          std::string all;
          for (auto& n : names_) all += (all.empty() ? "" : ", ") + n;
          return fail("unknown variant '" + v + "' (this backend has: " + all + ")");
        }
        has_variant = true;
      } else if (k == "threads") {
        ok = parse_small(v, 32, 1024, &r.cfg.threads) && r.cfg.threads % 32 == 0;
      } else if (k == "block") {
        ok = parse_small(v, 1, 1 << 20, &r.cfg.block);
      } else if (k == "unroll") {
        ok = parse_small(v, 1, 8, &r.cfg.unroll);
      } else if (k == "waves") {
        ok = parse_small(v, 0, 64, &r.cfg.waves);
      } else if (k == "early") {
        ok = parse_small(v, 0, 1, &r.cfg.early);
      } else if (k == "stream") {
        ok = parse_small(v, 0, 1, &r.cfg.stream);
      } else if (k == "lanes") {
        ok = parse_small(v, 8, 32, &r.cfg.lanes) && (r.cfg.lanes == 8 || r.cfg.lanes == 16 || r.cfg.lanes == 32);
      } else if (k == "split") {
        ok = parse_small(v, 0, 1, &r.cfg.split);
      } else if (k == "wide") {
        ok = parse_small(v, 0, 1, &r.cfg.wide);
      } else {
        return fail("unknown key '" + k + "'");
      }
      if (!ok) return fail("bad value in '" + tok + "'");
    }
    if (!any) continue;  // blank or comment-only line
    if (!has_arch || !has_variant) return fail("a row needs at least arch= and variant=");
    if (r.cfg.lanes == 8 && r.cfg.split) return fail("split=1 needs lanes=16 or lanes=32");
    if (r.cfg.wide && r.cfg.lanes != 8) return fail("wide=1 needs lanes=8");
    if (r.cfg.lanes == 32) r.cfg.split = 1;  // 32 lanes always split k_pe
    rows->push_back(r);
  }
  if (rows->empty()) { *error = "dispatch table text has no rows"; return false; }
  std::lock_guard<std::mutex> lock(mu_);
  current_.store(rows.get(), std::memory_order_release);
  kept_.push_back(std::move(rows));
  g_generation.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

void DispatchTable::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  current_.store(&builtin_, std::memory_order_release);
  g_generation.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace mlakv
