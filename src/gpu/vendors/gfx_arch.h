// AMD target names and the tables' arch numbers: gfx major*100 + minor*10 + stepping, the stepping
// a hex digit's value (gfx90a = 910, gfx942 = 942, gfx950 = 950, gfx1100 = 1100). Plain C++, shared
// by the HIP vendor header and the tests' fake device.
#pragma once
#include <string>

namespace mlakv {
namespace gpu {
namespace rt {

// "gfx942:sramecc+:xnack-" -> 942; "gfx90a" -> 910 (see the header comment); 0 if not a gfx name.
inline int gfx_arch(const char* name) {
  if (name[0] != 'g' || name[1] != 'f' || name[2] != 'x') return 0;
  int digits[8], n = 0;
  for (const char* c = name + 3; n < 8; ++c) {
    if (*c >= '0' && *c <= '9') digits[n++] = *c - '0';
    else if (*c >= 'a' && *c <= 'f') digits[n++] = *c - 'a' + 10;
    else break;
  }
  if (n < 3) return 0;
  int major = 0;
  for (int i = 0; i < n - 2; ++i) major = major * 10 + digits[i];
  return major * 100 + digits[n - 2] * 10 + digits[n - 1];
}
inline std::string arch_name(int arch) {
  // the stepping is arch % 10, except where a hex stepping carried into the tens: gfx9 has no
  // minor 1, so 910-915 are gfx90a-gfx90f (RDNA's gfx10+ steppings are decimal)
  static const char hex[] = "0123456789abcdef";
  int major = arch / 100, minor = arch / 10 % 10, step = arch % 10;
  if (arch < 1000 && minor == 1 && step <= 5) { minor = 0; step += 10; }
  return "gfx" + std::to_string(major) + std::to_string(minor) + std::string(1, hex[step]);
}

}  // namespace rt
}  // namespace gpu
}  // namespace mlakv
