#include "core/dispatch.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <memory>
#include <thread>

namespace mlakv {

const char* dims_req_name(DimsReq r) {
  switch (r) {
    case DimsReq::Any: return "any";
    case DimsReq::X8: return "x8";
    case DimsReq::DeepSeek: return "ds";
  }
  return "?";
}

namespace {

bool aligned(const void* p, int64_t a) { return (reinterpret_cast<uintptr_t>(p) & uint64_t(a - 1)) == 0; }

// Every row start of the operand keeps an alignment of a bytes (a power of two; strides are
// validated non-negative, so masks do). in_a / out_a: for inputs and for outputs.
bool rows_aligned(const Operand& o, int64_t a) { return aligned(o.ptr, a) && (((o.st | o.sh) * o.esize) & (a - 1)) == 0; }
bool all_rows_aligned(const PackProblem& p, int64_t k_v_in, int64_t k_pe_in, int64_t out) {
  return rows_aligned(p.op[kKNope], k_v_in) && rows_aligned(p.op[kKPe], k_pe_in) && rows_aligned(p.op[kV], k_v_in) &&
         rows_aligned(p.op[kKOut], out) && rows_aligned(p.op[kVOut], out);
}

}  // namespace

bool dims_req_holds(DimsReq r, const PackProblem& p) {
  if (r == DimsReq::Any) return true;
  if ((p.d_nope | p.d_rope | p.d_v) & 7) return false;
  if (r == DimsReq::DeepSeek && !(p.d_nope == 128 && p.d_rope == 64 && p.d_v == 128)) return false;
  return all_rows_aligned(p, 16, 16, 8);  // inputs loaded 16 bytes at a time; 8-byte stores
}

bool wide_units_hold(const PackProblem& p) { return all_rows_aligned(p, 32, 16, 16); }

namespace {
std::atomic<uint64_t> g_generation{0};
}
uint64_t table_generation() { return g_generation.load(std::memory_order_acquire); }
void bump_table_generation() { g_generation.fetch_add(1, std::memory_order_acq_rel); }

// ---- readers and retirement (dispatch.h) -----------------------------------------------------------
namespace {
std::atomic<uint64_t> g_epoch{0};
std::atomic<int64_t> g_readers[2];
std::mutex g_retire_mu;
}  // namespace

ReadSection::ReadSection() {
  for (;;) {
    const uint64_t e = g_epoch.load(std::memory_order_seq_cst);
    parity_ = unsigned(e & 1);
    g_readers[parity_].fetch_add(1, std::memory_order_seq_cst);
    if (g_epoch.load(std::memory_order_seq_cst) == e) return;  // registered in the epoch it read
    g_readers[parity_].fetch_sub(1, std::memory_order_release);  // a writer flipped meanwhile: again
  }
}
ReadSection::~ReadSection() { g_readers[parity_].fetch_sub(1, std::memory_order_release); }

// Readers registered in the current epoch may hold the unpublished pointer; readers that register
// after the flip load the published one. Flip, then wait for the old epoch's readers to leave.
void wait_for_readers() {
  std::lock_guard<std::mutex> lock(g_retire_mu);
  const uint64_t e = g_epoch.load(std::memory_order_seq_cst);
  g_epoch.store(e + 1, std::memory_order_seq_cst);
  while (g_readers[e & 1].load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

DispatchTable::DispatchTable(std::vector<std::string> variant_names, RowCheck check, std::vector<DispatchRow> builtin)
    : names_(std::move(variant_names)), check_(check), builtin_(std::move(builtin)), current_(&builtin_) {}

namespace {

void put_range(std::ostringstream& o, const char* key, int64_t lo, int64_t hi) {
  o << key << '=' << lo << '-';
  if (hi == kUnbounded) o << '*'; else o << hi;
}

// ---- parsing: one entry per key ------------------------------------------------------------------------
bool parse_i64(const std::string& s, int64_t* v) {
  if (s == "*") { *v = kUnbounded; return true; }
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || x < 0) return false;
  *v = x;
  return true;
}
bool parse_range(const std::string& s, int64_t* lo, int64_t* hi) {
  const size_t dash = s.find('-');
  if (dash == std::string::npos) return parse_i64(s, lo) && *lo != kUnbounded && ((*hi = *lo), true);
  return parse_i64(s.substr(0, dash), lo) && *lo != kUnbounded && parse_i64(s.substr(dash + 1), hi) && *lo <= *hi;
}
bool parse_int(const std::string& s, int lo, int hi, int* v) {
  int64_t x;
  if (!parse_i64(s, &x) || x < lo || x > hi) return false;
  *v = int(x);
  return true;
}

struct Key {
  const char* name;
  bool (*parse)(const std::string& value, DispatchRow* r);
};
const Key kKeys[] = {
    {"arch", [](const std::string& v, DispatchRow* r) {
       int64_t lo, hi;
       if (!parse_range(v, &lo, &hi) || hi > 100000) return false;
       r->arch_min = int(lo); r->arch_max = int(hi);
       return true;
     }},
    {"s", [](const std::string& v, DispatchRow* r) { return parse_range(v, &r->s_min, &r->s_max); }},
    {"sxh", [](const std::string& v, DispatchRow* r) { return parse_range(v, &r->sxh_min, &r->sxh_max); }},
    {"l2", [](const std::string& v, DispatchRow* r) { return parse_range(v, &r->l2_min, &r->l2_max); }},
    {"amax", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->amax); }},
    {"scales", [](const std::string& v, DispatchRow* r) {
       if (v != "tensor" && v != "head") return false;
       r->scales = v == "head" ? 1 : 0;
       return true;
     }},
    {"dims", [](const std::string& v, DispatchRow* r) {
       for (int d = 0; d < kDimsReqCount; ++d)
         if (v == dims_req_name(DimsReq(d))) { r->dims = DimsReq(d); return true; }
       return false;
     }},
    {"threads", [](const std::string& v, DispatchRow* r) { return parse_int(v, 32, 1024, &r->cfg.threads) && r->cfg.threads % 32 == 0; }},
    {"block", [](const std::string& v, DispatchRow* r) { return parse_int(v, 1, 1 << 20, &r->cfg.block); }},
    {"unroll", [](const std::string& v, DispatchRow* r) { return parse_int(v, 1, 8, &r->cfg.unroll); }},
    {"waves", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 64, &r->cfg.waves); }},
    {"early", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->cfg.early); }},
    {"lanes", [](const std::string& v, DispatchRow* r) {
       return parse_int(v, 8, 32, &r->cfg.lanes) && (r->cfg.lanes == 8 || r->cfg.lanes == 16 || r->cfg.lanes == 32);
     }},
    {"split", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->cfg.split); }},
    {"evict_first", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->cfg.evict_first); }},
    {"wide", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->cfg.wide); }},
    {"lean", [](const std::string& v, DispatchRow* r) { return parse_int(v, 0, 1, &r->cfg.lean); }},
    {"order", [](const std::string& v, DispatchRow* r) {
       if (v != "tokens" && v != "heads") return false;
       r->cfg.heads_first = v == "heads" ? 1 : 0;
       return true;
     }},
    {"commit", [](const std::string& v, DispatchRow* r) {
       if (v != "block" && v != "lane") return false;
       r->cfg.lane_commit = v == "lane" ? 1 : 0;
       return true;
     }},
};
const char* renamed(const std::string& key) {  // keys of mlakv 0.1.0's first tables
  return key == "sh" ? "sxh" : key == "stream" ? "evict_first" : nullptr;
}

}  // namespace

std::string DispatchTable::row_text(const DispatchRow& r) const {
  std::ostringstream o;
  o << "arch=" << r.arch_min << '-' << r.arch_max << ' ';
  if (r.l2_min != 0 || r.l2_max != kUnbounded) {
    put_range(o, "l2", r.l2_min, r.l2_max);
    o << ' ';
  }
  put_range(o, "s", r.s_min, r.s_max);
  o << ' ';
  put_range(o, "sxh", r.sxh_min, r.sxh_max);
  if (r.amax >= 0) o << " amax=" << r.amax;
  if (r.scales >= 0) o << " scales=" << (r.scales ? "head" : "tensor");
  o << " dims=" << dims_req_name(r.dims) << " variant="
    << (r.variant >= 0 && size_t(r.variant) < names_.size() ? names_[size_t(r.variant)] : "?")
    << " threads=" << r.cfg.threads << " block=" << r.cfg.block << " unroll=" << r.cfg.unroll
    << " waves=" << r.cfg.waves << " early=" << r.cfg.early << " lanes=" << r.cfg.lanes << " split=" << r.cfg.split
    << " evict_first=" << r.cfg.evict_first << " wide=" << r.cfg.wide;
  if (r.cfg.lean) o << " lean=1";
  if (r.cfg.heads_first) o << " order=heads";
  if (r.cfg.lane_commit) o << " commit=lane";
  if (!r.note.empty()) o << "  # " << r.note;
  return o.str();
}

std::string DispatchTable::to_text() const {
  std::string out =
      "# first row that holds runs; arch = SM major*10+minor (0 = host); s and sxh = s*h are inclusive "
      "ranges\n";
  ReadSection rs;
  for (const DispatchRow& r : *current_.load(std::memory_order_acquire)) out += row_text(r) + "\n";
  return out;
}

bool DispatchTable::parse_row(const std::string& text, DispatchRow* r, bool* empty, std::string* why) const {
  std::string line = text;
  const size_t hash = line.find('#');
  if (hash != std::string::npos) {
    const size_t b = line.find_first_not_of(" \t", hash + 1);
    r->note = b == std::string::npos ? "" : line.substr(b);
    line = line.substr(0, hash);
  }
  std::istringstream toks(line);
  std::string tok;
  bool has_arch = false, has_variant = false;
  *empty = true;
  while (toks >> tok) {
    *empty = false;
    const size_t eq = tok.find('=');
    if (eq == std::string::npos) { *why = "expected key=value, got '" + tok + "'"; return false; }
    const std::string k = tok.substr(0, eq), v = tok.substr(eq + 1);
    if (k == "variant") {
      bool found = false;
      for (size_t i = 0; i < names_.size(); ++i)
        if (v == names_[i]) { r->variant = int(i); found = true; }
      if (!found) {
        std::string all;
        for (auto& n : names_) all += (all.empty() ? "" : ", ") + n;
        *why = "unknown variant '" + v + "' (this backend has: " + all + ")";
        return false;
      }
      has_variant = true;
      continue;
    }
    const Key* key = nullptr;
    for (const Key& x : kKeys)
      if (k == x.name) key = &x;
    if (!key) {
      *why = "unknown key '" + k + "'";
      if (const char* now = renamed(k)) *why += std::string(" (now '") + now + "')";
      return false;
    }
    if (!key->parse(v, r)) { *why = "bad value in '" + tok + "'"; return false; }
    has_arch |= k == "arch";
  }
  if (*empty) return true;  // blank or comment-only line
  if (!has_arch || !has_variant) { *why = "a row needs at least arch= and variant="; return false; }
  if (r->cfg.lanes == 8 && r->cfg.split) { *why = "split=1 needs lanes=16 or lanes=32"; return false; }
  if (r->cfg.wide && r->cfg.lanes != 8) { *why = "wide=1 needs lanes=8"; return false; }
  if (r->cfg.lanes == 32) r->cfg.split = 1;  // 32 lanes always split k_pe
  if (r->cfg.lean && (size_t(r->variant) >= names_.size() || names_[size_t(r->variant)] != "tile2d" ||
                      r->cfg.lanes != 16 || !r->cfg.split || r->cfg.unroll != 1 || r->cfg.evict_first ||
                      int64_t(r->cfg.threads) != int64_t(r->cfg.block) * 16)) {
    *why = "lean=1 needs variant=tile2d lanes=16 split=1 unroll=1 evict_first=0 and threads = 16 x block";
    return false;
  }
  if (r->cfg.lane_commit && (size_t(r->variant) >= names_.size() || names_[size_t(r->variant)] != "tile2d" ||
                             r->cfg.unroll != 1)) {
    *why = "commit=lane needs variant=tile2d unroll=1 (tile2d's lane-commit instance)";
    return false;
  }
  if (r->cfg.heads_first && !r->cfg.lean) {
    *why = "order=heads needs lean=1 (only tile2d's lean instance numbers its blocks heads first)";
    return false;
  }
  return !check_ || check_(*r, why);
}

bool DispatchTable::parse_rows(const std::string& text, std::vector<DispatchRow>* rows, std::string* error,
                               int first_line) const {
  std::istringstream in(text);
  std::string line, why;
  for (int lineno = first_line; std::getline(in, line); ++lineno) {
    DispatchRow r;
    bool empty = false;
    if (!parse_row(line, &r, &empty, &why)) {
      *error = "dispatch table line " + std::to_string(lineno) + ": " + why;
      return false;
    }
    if (!empty) rows->push_back(std::move(r));
  }
  return true;
}

bool DispatchTable::set_from_text(const char* text, std::string* error) {
  if (!text) { *error = "table text is NULL"; return false; }
  auto rows = std::make_unique<std::vector<DispatchRow>>();
  if (!parse_rows(text, rows.get(), error)) return false;
  if (rows->empty()) { *error = "dispatch table text has no rows"; return false; }
  replace(rows.release());
  return true;
}

void DispatchTable::reset() { replace(&builtin_); }

void DispatchTable::replace(const std::vector<DispatchRow>* rows) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::vector<DispatchRow>* old = current_.exchange(rows, std::memory_order_acq_rel);
  g_generation.fetch_add(1, std::memory_order_acq_rel);
  if (old != &builtin_) retire(old);
}

}  // namespace mlakv
