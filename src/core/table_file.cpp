#include "core/table_file.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace mlakv {
namespace {

constexpr size_t kMaxFileBytes = size_t(1) << 20;
constexpr size_t kMaxLineBytes = 4096;
constexpr size_t kMaxRows = 4096;

bool parse_int(const std::string& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.empty() || v.size() > 12) return false;
  int64_t x = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  if (x < lo || x > hi) return false;
  *out = x;
  return true;
}

}  // namespace

std::string table_device_name(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    out += ok ? c : '_';
  }
  return out.substr(0, 128);
}

std::string TableDevice::line() const {
  return "device backend=" + backend + " arch=" + std::to_string(arch) + " units=" + std::to_string(units) +
         " l2=" + std::to_string(l2_mib) + " name=" + name;
}

std::string TableDevice::file_name() const {
  return backend + "-" + name + "-arch" + std::to_string(arch) + "-" + std::to_string(units) + "u-" +
         std::to_string(l2_mib) + "mib.table";
}

bool read_table_file(const std::string& path, std::string* text, std::string* why) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *why = path + ": cannot be opened";
    return false;
  }
  text->clear();
  char buf[65536];
  size_t n;
  bool ok = true;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    if (text->size() + n > kMaxFileBytes) {
      *why = path + ": larger than " + std::to_string(kMaxFileBytes) + " bytes: not a table file";
      ok = false;
      break;
    }
    text->append(buf, n);
  }
  if (ok && std::ferror(f)) {
    *why = path + ": read error";
    ok = false;
  }
  std::fclose(f);
  if (!ok) return false;
  size_t line_len = 0;
  for (unsigned char c : *text) {
    if (c == '\n') {
      line_len = 0;
      continue;
    }
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F || c >= 0x80) {
      *why = path + ": not a text file (byte " + std::to_string(int(c)) + ")";
      return false;
    }
    if (++line_len > kMaxLineBytes) {
      *why = path + ": a line longer than " + std::to_string(kMaxLineBytes) + " bytes";
      return false;
    }
  }
  return true;
}

bool parse_table_file(const std::string& text, const DispatchTable& parser, TableDevice* device,
                      std::vector<DispatchRow>* rows, std::string* why) {
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  auto next = [&]() -> bool {  // the next line that is not blank or a comment
    while (std::getline(in, line)) {
      ++lineno;
      const size_t b = line.find_first_not_of(" \t\r");
      if (b != std::string::npos && line[b] != '#') return true;
    }
    return false;
  };
  if (!next() || line.rfind("mlakv-table 1", 0) != 0 || line.find_first_not_of(" \t\r", 13) != std::string::npos) {
    *why = "line " + std::to_string(lineno) + ": expected the header 'mlakv-table 1'";
    return false;
  }
  if (!next() || line.rfind("device ", 0) != 0) {
    *why = "line " + std::to_string(lineno) + ": expected 'device backend=... arch=... units=... l2=... name=...'";
    return false;
  }
  TableDevice d;
  std::istringstream toks(line.substr(7));
  std::string tok;
  int seen = 0;
  while (toks >> tok) {
    const size_t eq = tok.find('=');
    const std::string k = eq == std::string::npos ? tok : tok.substr(0, eq), v = eq == std::string::npos ? "" : tok.substr(eq + 1);
    int64_t x = 0;
    bool ok = true;
    if (k == "backend") { ok = v == "cuda" || v == "hip"; d.backend = v; seen |= 1; }
    else if (k == "arch") { ok = parse_int(v, 1, 100000, &x); d.arch = int(x); seen |= 2; }
    else if (k == "units") { ok = parse_int(v, 1, 100000, &x); d.units = int(x); seen |= 4; }
    else if (k == "l2") { ok = parse_int(v, 0, 1 << 20, &x); d.l2_mib = x; seen |= 8; }
    else if (k == "name") { ok = !v.empty() && v == table_device_name(v); d.name = v; seen |= 16; }
    else ok = false;
    if (!ok) {
      *why = "line " + std::to_string(lineno) + ": bad device field '" + tok + "'";
      return false;
    }
  }
  if (seen != 31) {
    *why = "line " + std::to_string(lineno) + ": the device line needs backend=, arch=, units=, l2= and name=";
    return false;
  }
  std::string rest;
  for (std::string l; std::getline(in, l);) rest += l + "\n";
  std::vector<DispatchRow> parsed;
  if (!parser.parse_rows(rest, &parsed, why, lineno + 1)) return false;
  if (parsed.empty()) {
    *why = "the file has no rows";
    return false;
  }
  if (parsed.size() > kMaxRows) {
    *why = "more than " + std::to_string(kMaxRows) + " rows";
    return false;
  }
  *device = d;
  *rows = std::move(parsed);
  return true;
}

std::string table_cache_dir() {
  if (const char* d = std::getenv("MLAKV_TABLE_DIR")) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME")) if (*x) return std::string(x) + "/mlakv";
  if (const char* h = std::getenv("HOME")) if (*h) return std::string(h) + "/.cache/mlakv";
  return "";
}

}  // namespace mlakv
