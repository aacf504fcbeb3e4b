#!/usr/bin/env python3
"""Test vectors for the AMD fnuz FP8 formats, produced by ml_dtypes (an implementation independent
of mlakv), read by tests/test_fp8_encoder.cpp.

For every bf16 and every fp16 bit pattern x (65536 each) and each scale m (fp32):
    p = float32(x) * float32(m)        (one fp32 multiply, as numpy does it elementwise)
    byte = p.astype(float8_e4m3fnuz | float8_e5m2fnuz)
written as 65536 bytes, indexed by the input's bit pattern, to
    data/fnuz_<bf16|fp16>_<e4m3fnuz|e5m2fnuz>_<fp32 bits of m, 8 hex digits>.bin

ml_dtypes does not saturate (a product beyond the largest finite value, or an infinity, becomes
NaN = 0x80) while mlakv saturates: the C++ test compares only where the product is NaN or rounds
to a finite value, and checks the rest with its own oracle.

    python3 gen_fnuz_vectors.py [--out DIR]   write the files (default: data/ next to this script)
    python3 gen_fnuz_vectors.py --check DIR   exit 1 if the files in DIR differ from a fresh run
"""
import argparse
import os
import sys

import ml_dtypes
import numpy as np

# fp32 scales: 1 and the DeepSeek-style 1/0.0375 (computed in fp32, like `1.0f / 0.0375f` in C++).
SCALES = [np.float32(1.0), np.float32(1.0) / np.float32(0.0375)]
INPUTS = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}
FORMATS = {"e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "e5m2fnuz": ml_dtypes.float8_e5m2fnuz}


def vectors():
    patterns = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    for in_name, in_type in INPUTS.items():
        x = patterns.view(in_type).astype(np.float32)
        for m in SCALES:
            m = np.float32(m)
            with np.errstate(all="ignore"):
                p = (x * m).astype(np.float32)
            assert p.dtype == np.float32
            for f_name, f_type in FORMATS.items():
                with np.errstate(all="ignore"):
                    out = p.astype(f_type).view(np.uint8)
                bits = int(np.array([m], dtype=np.float32).view(np.uint32)[0])
                yield f"fnuz_{in_name}_{f_name}_{bits:08x}.bin", out.tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    ap.add_argument("--check", metavar="DIR")
    a = ap.parse_args()
    if a.check:
        bad = 0
        for name, data in vectors():
            path = os.path.join(a.check, name)
            try:
                with open(path, "rb") as f:
                    ok = f.read() == data
            except OSError:
                ok = False
            if not ok:
                print(f"{path}: differs from ml_dtypes {ml_dtypes.__version__}")
                bad += 1
        return 1 if bad else 0
    os.makedirs(a.out, exist_ok=True)
    for name, data in vectors():
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
