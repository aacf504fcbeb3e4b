// Dispatch table files: a table measured on one device (mlakv-tune), applied to that device only.
//
//   # free comments (date, driver, mlakv version, how it was measured)
//   mlakv-table 1
//   device backend=cuda arch=90 units=132 l2=60 name=NVIDIA_H200
//   arch=90-90 s=1-* sxh=1-512 dims=x8 variant=flat threads=128 ...   (rows: mlakv_dispatch_table_get's format)
//
// The device line names what the table was measured on; a device whose backend, arch, unit count
// (SMs / CUs), L2 size (MiB) and name (spaces written as '_') are not all equal ignores the file.
// Reading is strict: at most 1 MiB, text only, lines of at most 4096 bytes, at most 4096 rows, every
// row through the backend table's parser (known keys, values in range), and the header exact.
#pragma once
#include <stdint.h>

#include <string>
#include <vector>

#include "core/dispatch.h"

namespace mlakv {

struct TableDevice {
  std::string backend;  // "cuda", "hip"
  int arch = 0;
  int units = 0;        // multiprocessors / compute units
  int64_t l2_mib = 0;
  std::string name;     // spaces written as '_'

  bool operator==(const TableDevice& o) const {
    return backend == o.backend && arch == o.arch && units == o.units && l2_mib == o.l2_mib && name == o.name;
  }
  std::string line() const;  // "device backend=... name=..."
  std::string file_name() const;  // "cuda-NVIDIA_H200-arch90-132u-60mib.table": the cache directory's name for it
};

// A device name as the file writes it: spaces and anything outside [A-Za-z0-9._-] become '_'.
std::string table_device_name(const std::string& name);

// Reads the file at path into *text, refusing what is not a small text file. false + *why.
bool read_table_file(const std::string& path, std::string* text, std::string* why);

// Parses a table file's text: the header into *device, the rows (through parser) into *rows.
bool parse_table_file(const std::string& text, const DispatchTable& parser, TableDevice* device,
                      std::vector<DispatchRow>* rows, std::string* why);

// Where per-device table files are looked for: MLAKV_TABLE_DIR, else $XDG_CACHE_HOME/mlakv, else
// $HOME/.cache/mlakv ("" if none of those is set).
std::string table_cache_dir();

}  // namespace mlakv
