#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_pack.cpp (tests/fuzz/corpus/, committed).

Each file is one input in the harness's format (its header comment is the reference; every field is
written here in the same order): valid DeepSeek-shaped and small calls, strided, interleaved,
head-major, broadcast, misaligned, overlapping and empty calls, struct_size variants, other backends,
scales through pointers, follow-up calls on the plan cache, and dispatch tables; and the 0.2 fields:
per-head scale arrays (values, NULL, misaligned, inside inputs, outputs or each other), amax arrays
(initial contents, NULL, misaligned, overlapping every other operand), scale_granularity and reserved
values, 0.1 struct sizes with the 0.2 fields set, and follow-ups that move the amax arrays or flip the
granularity.

    python3 tests/fuzz/gen_corpus.py [out_dir]      (default: tests/fuzz/corpus next to this file)
"""
import os
import struct
import sys

# dtypes as the harness selects them
BF16, FP16, FP32 = 0, 1, 2                        # in_dtype % 3
E4M3FN, E5M2, E4M3FNUZ, E5M2FNUZ = 0, 1, 2, 3     # out_dtype % 4
# layout bits
KV_INTERLEAVED, OUT_INTERLEAVED, IN_HEAD_MAJOR, PE_3D = 1, 2, 4, 8
PAD_T, PAD_H, BROADCAST, OUT_HEAD_MAJOR = 16, 32, 64, 128
# mutation fields: tensor i attribute a -> 11 * i + a
KN, KP, V, KO, VO = range(5)
DTYPE, NDIM, SHAPE0, STRIDE0, DATA = 0, 1, 2, 6, 10
K_SCALE_PTR, V_SCALE_PTR, GRANULARITY, RESERVED_FIELD, K_AMAX_PTR, V_AMAX_PTR = 57, 58, 64, 65, 66, 67
# operands (aux placement targets)
KSCALE, VSCALE, KAMAX, VAMAX = 5, 6, 7, 8
# the 0.2 block: v02 bits
PER_TENSOR, PER_HEAD, GRAN_RAW, GRAN_WILD = 0, 1, 6, 7
K_AMAX, V_AMAX, RESERVED, UNDERSIZED = 8, 16, 0x60, 128
# where a scale / amax array goes (aux sel % 8)
LAYOUT, NULL, INSIDE, AT, AT_RAW = 0, 4, 5, 6, 7
MISALIGN = 128  # with INSIDE: not rounded down to 4 bytes


def inside(target, misalign=False):
    return INSIDE | (target << 3) | (MISALIGN if misalign else 0)


def field(tensor, attr):
    return 11 * tensor + attr


def s_byte(s):   # the harness takes s = (b + 2) % 9 for b < 128, else b - 128
    return (s - 2) % 9 if s < 9 else 128 + s


def h_byte(h):   # h = (b + 3) % 17 for b < 128, else b - 128
    return (h - 3) % 17 if h < 17 else 128 + h


def enc(ctl0=0, ctl1=0, in_dt=BF16, out_dt=E4M3FN, dims_mode=0, d=(0, 0, 0), s=2, h=3, layout=0,
        pad_t=0, pad_h=0, place=0, g=(0,) * 7, scale_mode=0, ksel=0, kraw=0, vsel=0, vraw=0,
        backend_sel=0, backend_raw=0, misc=0, pdl_raw=0, flags_raw=0, device_raw=0, stream_raw=0,
        ss_mode=0, ss_k=0, ss_pos=0, ss_byte=0, fill_byte=0xA5, value_mode=0, seed=1,
        v02=0, gran_raw=0, res_raw=0, psv=0, amax_init=0, aux=((0, 0),) * 4, muts=(),
        follow=(), table=b""):
    b = struct.pack("<BBBBB3H", ctl0, ctl1, in_dt, out_dt, dims_mode, *d)
    b += struct.pack("<BBBBBB", s_byte(s), h_byte(h), layout, pad_t, pad_h, place)
    b += struct.pack("<7H", *g)
    b += struct.pack("<BBIBI", scale_mode, ksel, kraw, vsel, vraw)
    b += struct.pack("<BI", backend_sel, backend_raw & 0xFFFFFFFF)
    b += struct.pack("<BIIIQ", misc, pdl_raw & 0xFFFFFFFF, flags_raw & 0xFFFFFFFF, device_raw & 0xFFFFFFFF, stream_raw)
    b += struct.pack("<BHHB", ss_mode, ss_k, ss_pos, ss_byte)
    b += struct.pack("<BBQ", fill_byte, value_mode, seed)
    b += struct.pack("<BIIBB", v02, gran_raw & 0xFFFFFFFF, res_raw & 0xFFFFFFFF, psv, amax_init)
    assert len(aux) == 4
    for sel, pos in aux:
        b += struct.pack("<BH", sel, pos)
    assert len(muts) <= 8
    b += struct.pack("<B", len(muts))
    for f, sub, val in muts:
        b += struct.pack("<BBQ", f, sub, val & 0xFFFFFFFFFFFFFFFF)
    assert len(follow) == (ctl0 >> 2) & 7
    for kind, mask, ds, sds, ksel2, kraw2, vsel2, vraw2, amode, ad in follow:
        b += struct.pack("<BB5h2hBIBIB2h", kind, mask, *ds, *sds, ksel2, kraw2, vsel2, vraw2, amode, *ad)
    return b + table


def ctl(table=0, follow=0):
    return table | (follow << 2)


# amode bits: 1 move k_amax, 2 move v_amax (by ad; 0: NULL; from NULL: arena + ad), 4 flip the
# granularity, 8 ad x 4
def step(kind, mask=0, ds=(0,) * 5, sds=(0, 0), ksel=0, kraw=0, vsel=0, vraw=0, amode=0, ad=(0, 0)):
    return (kind, mask, ds, sds, ksel, kraw, vsel, vraw, amode, ad)


def aux(ks=(0, 0), vs=(0, 0), ka=(0, 0), va=(0, 0)):
    return (ks, vs, ka, va)


# mutation values: sub 0 small int8, 1 index into kWild64/kWild32/kScaleSpecial, 2 raw, 3 add int8
def mut(f, sub, val):
    return (f, sub, val)


SEEDS = {}

# ---- valid calls ------------------------------------------------------------------------------------------
for i, (idt, odt) in enumerate([(BF16, E4M3FN), (BF16, E5M2), (FP16, E4M3FNUZ), (FP32, E5M2FNUZ)]):
    SEEDS[f"deepseek_{i}"] = enc(in_dt=idt, out_dt=odt, s=2, h=4, seed=10 + i, value_mode=i)
SEEDS["deepseek_h16"] = enc(s=4, h=16, seed=20)                      # 53.7 KB of the 64 KB arena
SEEDS["deepseek_auto"] = enc(s=1, h=8, backend_sel=1, seed=21)
SEEDS["small_dims"] = enc(dims_mode=1, d=(2, 4, 6), s=3, h=2, seed=22, value_mode=1)
SEEDS["small_dims_fp32"] = enc(dims_mode=1, d=(0, 0, 0), in_dt=FP32, out_dt=E4M3FNUZ, s=8, h=16, seed=23)
SEEDS["x8_dims"] = enc(dims_mode=2, d=(3, 1, 5), s=5, h=3, seed=24, value_mode=3)
SEEDS["edge_values"] = enc(dims_mode=1, d=(20, 10, 20), s=4, h=4, value_mode=1, seed=25)
SEEDS["random_bits"] = enc(dims_mode=1, d=(15, 7, 9), in_dt=FP16, out_dt=E5M2, s=3, h=5, value_mode=2, seed=26)
# ---- strided layouts ----------------------------------------------------------------------------------------
SEEDS["kv_interleaved"] = enc(layout=KV_INTERLEAVED, s=2, h=4, seed=30)          # README's kv [s, h, 256]
SEEDS["out_interleaved"] = enc(dims_mode=1, d=(7, 3, 5), layout=OUT_INTERLEAVED | PAD_H, pad_h=3, s=4, h=3, seed=31)
SEEDS["both_interleaved_pad"] = enc(dims_mode=2, d=(1, 0, 1), layout=KV_INTERLEAVED | OUT_INTERLEAVED | PAD_T | PAD_H,
                                    pad_t=5, pad_h=9, s=3, h=4, seed=32)
SEEDS["head_major"] = enc(dims_mode=1, d=(5, 5, 5), layout=IN_HEAD_MAJOR | OUT_HEAD_MAJOR, s=4, h=5, seed=33)
SEEDS["pe_3d_broadcast"] = enc(dims_mode=1, d=(9, 2, 4), layout=PE_3D | BROADCAST, s=6, h=2, seed=34)
SEEDS["strided_variant"] = enc(dims_mode=1, d=(3, 1, 2), layout=PAD_T, pad_t=17, s=8, h=7, seed=35)
# k_out token stride smaller than h * row (rows interleave without aliasing): k_out [s=2, h=2, 12] with
# strides (12, 24): token-major rows inside a head-major buffer
SEEDS["out_strides_crossed"] = enc(dims_mode=1, d=(7, 3, 11), s=2, h=2, layout=OUT_HEAD_MAJOR, seed=36)
SEEDS["many_tokens_out_interleaved"] = enc(dims_mode=1, d=(2, 1, 3), layout=OUT_INTERLEAVED | PAD_H, pad_h=1, s=100, h=1, seed=37)
SEEDS["many_heads_head_major"] = enc(dims_mode=1, d=(3, 2, 1), layout=IN_HEAD_MAJOR | OUT_HEAD_MAJOR, s=3, h=90, seed=38)
SEEDS["nested_outputs"] = enc(dims_mode=1, d=(6, 3, 5), place=4, s=5, h=4, seed=39)
SEEDS["nested_outputs_shifted"] = enc(dims_mode=1, d=(5, 2, 4), in_dt=FP32, place=4, g=(0, 0, 0, 0x8000, 0, 0, 0), s=3, h=3, seed=47)
# ---- misaligned and overlapping --------------------------------------------------------------------------
SEEDS["misaligned_gaps"] = enc(dims_mode=1, d=(4, 4, 4), place=1, g=(1, 3, 0, 5, 7, 1, 2), s=2, h=2, scale_mode=3, seed=40)
SEEDS["overlap_out_on_in"] = enc(dims_mode=1, d=(8, 4, 8), place=3, g=(0, 1024, 2048, 0, 4096, 8192, 8256), s=2, h=3, seed=41)
SEEDS["overlap_outputs"] = enc(dims_mode=1, d=(8, 4, 8), place=2, g=(0, 1024, 2048, 4096, 4100, 8192, 8256), s=2, h=3, seed=42)
SEEDS["overlap_scale_in_out"] = enc(dims_mode=1, d=(8, 4, 8), place=2, g=(0, 1024, 2048, 4096, 6000, 4100, 8256),
                                    scale_mode=1, s=2, h=3, seed=43)
SEEDS["near_miss_gap"] = enc(dims_mode=1, d=(8, 4, 8), place=2, g=(0, 1024, 2048, 4096, 4096 + 72, 8192, 8256), s=2, h=3, seed=44)
SEEDS["self_alias_out"] = enc(dims_mode=1, d=(8, 4, 8), s=3, h=3, muts=[mut(field(KO, STRIDE0 + 1), 0, 4)], seed=45)
SEEDS["arena_end"] = enc(dims_mode=1, d=(8, 4, 8), place=2, g=(0, 1024, 2048, 65536 - 12 * 6, 4096, 0, 0), s=2, h=3, seed=46)
# different row lattices that interleave without sharing a byte: k_nope bf16 rows of 8 bytes at 0, 200
# (token stride 100 elements), k_out rows of 8 bytes at 155, 305 (token stride 150): equal modulo
# gcd(200, 150) = 50 but disjoint; v_out likewise inside v's gaps
SEEDS["interleaved_disjoint_lattices"] = enc(
    dims_mode=1, d=(3, 3, 3), s=2, h=1, place=2, g=(0, 4096, 8192, 155, 8192 + 155, 0, 0), seed=48,
    muts=[mut(field(KN, STRIDE0), 0, 100), mut(field(KO, STRIDE0), 2, 150),
          mut(field(V, STRIDE0), 0, 100), mut(field(VO, STRIDE0), 2, 150)])
SEEDS["interleaved_touching_lattices"] = enc(
    dims_mode=1, d=(3, 3, 3), s=2, h=1, place=2, g=(0, 4096, 8192, 150, 12288, 0, 0), seed=49,
    muts=[mut(field(KN, STRIDE0), 0, 100), mut(field(KO, STRIDE0), 2, 150)])
# v_out [2, 3, 1] with strides (3, 2): rows at bytes 0, 2, 4 and 3, 5, 7: not nested, yet no byte shared
SEEDS["unnested_out_strides"] = enc(dims_mode=1, d=(3, 3, 0), s=2, h=3, seed=58,
                                    muts=[mut(field(VO, STRIDE0), 0, 3), mut(field(VO, STRIDE0 + 1), 0, 2)])
# ---- empty calls -------------------------------------------------------------------------------------------
SEEDS["empty_s0"] = enc(s=0, h=4, seed=50)
SEEDS["empty_h0_null"] = enc(s=3, h=0, muts=[mut(field(KN, DATA), 0, 0), mut(field(KO, DATA), 0, 0)], seed=51)
SEEDS["empty_misaligned_negative_strides"] = enc(
    s=0, h=2, muts=[mut(field(KN, DATA), 1, 1), mut(field(V, STRIDE0), 0, 0xFF), mut(field(KO, STRIDE0 + 2), 0, 3)], seed=52)
SEEDS["empty_wild_pointers"] = enc(s=0, h=3, muts=[mut(field(KN, DATA), 3, 4), mut(field(VO, DATA), 3, 7), mut(57, 3, 1)],
                                   scale_mode=1, seed=53)
# ---- struct_size ---------------------------------------------------------------------------------------------
SEEDS["struct_smaller"] = enc(ss_mode=1, ss_k=7, seed=60)
SEEDS["struct_larger_zero"] = enc(ss_mode=2, ss_k=100, seed=61)
SEEDS["struct_larger_nonzero"] = enc(ss_mode=3, ss_k=31, ss_pos=30, ss_byte=0x40, seed=62)
SEEDS["struct_wild"] = enc(ss_mode=4, ss_k=0, seed=63)
SEEDS["struct_2p20_zero_tail"] = enc(ss_mode=4, ss_k=0xFFFF, seed=65)
SEEDS["struct_odd_size"] = enc(ss_mode=2, ss_k=2, seed=64)               # 459 bytes: not a multiple of 8
SEEDS["struct_past_size_init"] = enc(ss_mode=4, ss_k=7, ctl1=16, seed=66)               # 0.1 size (on 0.2 headers)
SEEDS["init_sized_wild"] = enc(ss_mode=2, ss_k=13, ctl1=16, seed=67)
# ---- enums, backends, flags ------------------------------------------------------------------------------
SEEDS["backend_cuda"] = enc(backend_sel=2, seed=70)
SEEDS["backend_hip_empty"] = enc(backend_sel=3, s=0, seed=71)
SEEDS["backend_invalid"] = enc(backend_sel=4, backend_raw=7, seed=72)
SEEDS["pdl_flags_device"] = enc(misc=3 | 8 | 16 | 32, pdl_raw=5, flags_raw=2, device_raw=0xFFFFFFFF, stream_raw=0x1234, seed=73)
SEEDS["trust_pointers_auto"] = enc(backend_sel=1, misc=4 | 1, seed=74)
SEEDS["bad_dtypes_ranks"] = enc(muts=[mut(field(KN, DTYPE), 2, 8), mut(field(KP, NDIM), 1, 9), mut(field(VO, DTYPE), 0, 1)], seed=75)
# ---- scales --------------------------------------------------------------------------------------------------
SEEDS["scale_pointers"] = enc(dims_mode=1, d=(6, 2, 6), scale_mode=3, ksel=0, kraw=14, vsel=0, vraw=15, s=3, h=3, seed=80)
SEEDS["scale_nan_inf"] = enc(dims_mode=1, d=(6, 2, 6), ksel=0, kraw=6, vsel=0, vraw=8, s=3, h=3, seed=81)
SEEDS["scale_subnormal_zero"] = enc(dims_mode=1, d=(6, 2, 6), ksel=0, kraw=12, vsel=0, vraw=2, s=3, h=3, value_mode=1, seed=82)
SEEDS["scale_ptr_misaligned"] = enc(dims_mode=1, d=(6, 2, 6), scale_mode=2, place=1, g=(0, 0, 0, 0, 0, 0, 3), s=3, h=3, seed=83)
# ---- size overflow and wild geometry -------------------------------------------------------------------------
SEEDS["span_over_2p57"] = enc(dims_mode=1, d=(4, 4, 4), s=2, h=2, muts=[mut(field(KN, STRIDE0), 1, 19)], seed=90)
SEEDS["huge_shape"] = enc(muts=[mut(field(KN, SHAPE0), 1, 18), mut(field(KO, STRIDE0 + 1), 1, 15)], seed=91)
SEEDS["ndim_wild"] = enc(muts=[mut(field(V, NDIM), 2, 0xFFFFFFFB), mut(field(KO, NDIM), 1, 8)], seed=92)
SEEDS["head_dim_limits"] = enc(dims_mode=3, d=(0, 1, 65535), s=1, h=1, seed=93)
# ---- follow-ups: the per-thread plan cache -------------------------------------------------------------------
SEEDS["repeat_same"] = enc(ctl0=ctl(follow=2), dims_mode=1, d=(8, 8, 8), s=2, h=2, seed=100,
                           follow=[step(0), step(0)])
SEEDS["move_pointers_aligned"] = enc(ctl0=ctl(follow=3), dims_mode=2, d=(0, 0, 0), s=2, h=2, seed=101,
                                     follow=[step(1, 0x1F | 32 | 64, (200, 0, 0, 0, 0)), step(0),
                                             step(1, 0x08 | 32, (0, 0, 0, 3, 0))])
SEEDS["move_pointers_misaligned"] = enc(ctl0=ctl(follow=2), dims_mode=1, d=(5, 3, 5), s=2, h=2, seed=102,
                                        follow=[step(1, 0x01, (1, 0, 0, 0, 0)), step(1, 0x10, (0, 0, 0, 0, -9))])
SEEDS["move_into_overlap"] = enc(ctl0=ctl(follow=1), dims_mode=1, d=(8, 4, 8), s=2, h=2, seed=103,
                                 follow=[step(1, 0x08, (0, 0, 0, -100, 0))])
SEEDS["scales_stream_change"] = enc(ctl0=ctl(follow=3), dims_mode=1, d=(8, 4, 8), s=2, h=2, scale_mode=1, seed=104,
                                    follow=[step(2 | 4 | 8, 0, ksel=0, kraw=6, vsel=1, vraw=0x3F800001),
                                            step(2 | 16, 0, sds=(4, 0)), step(3 | 64, 0x03, (64, 64, 0, 0, 0), kraw=77)])
SEEDS["table_switch_between_calls"] = enc(ctl0=ctl(follow=3), dims_mode=1, d=(8, 4, 8), s=2, h=2, seed=105,
                                          follow=[step(0, 128), step(0, 128), step(1, 0x1F | 32 | 64 | 128, (64,) * 5)])
# ---- dispatch tables ---------------------------------------------------------------------------------------
SEEDS["table_raw_vector"] = enc(ctl0=ctl(table=1), ctl1=8, seed=110,
                                table=b"arch=0-0 s=1-* sxh=1-* dims=any variant=vector  # all vector\n")
SEEDS["table_raw_bands"] = enc(ctl0=ctl(table=1), dims_mode=1, d=(8, 8, 8), seed=111,
                               table=b"# bands\narch=0-0 s=1-2 sxh=1-4 dims=x8 variant=vector\n"
                                     b"arch=0-0 s=3-* sxh=1-* dims=any variant=strided\n")
SEEDS["table_raw_no_catch_all"] = enc(ctl0=ctl(table=1), seed=112, table=b"arch=0-0 s=5-9 sxh=1-* dims=ds variant=vector\n")
SEEDS["table_raw_garbage"] = enc(ctl0=ctl(table=1), seed=113, table=b"arch=0-0 s=1-* variant=vector threads=33 lanes=8 split=1 #x\n\x01\x02")
SEEDS["table_tokens"] = enc(ctl0=ctl(table=2), ctl1=8, seed=114, table=bytes([3, 0, 1, 9, 0, 39, 0, 0, 16, 1, 2, 11, 3, 39, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 0]))
SEEDS["table_tokens_catch_all"] = enc(ctl0=ctl(table=3, follow=1), ctl1=2 | 8, seed=115,
                                      follow=[step(0)], table=bytes([2, 0, 3, 2, 5, 6, 1, 0, 128, 0, 0, 11, 0, 39, 0, 1, 4]))
# ABI 0.2 headers: an invalid scale_granularity, a non-zero reserved field (fields 64, 65; other headers
# read them as fields 0 and 1 of k_nope: a dtype and an ndim)
SEEDS["v0_2_invalid_fields"] = enc(muts=[mut(64, 0, 2)], seed=117)
SEEDS["v0_2_reserved"] = enc(muts=[mut(65, 0, 1)], seed=118)
SEEDS["api_edges"] = enc(ctl1=1 | 2 | 4, seed=116)

# ---- 0.2: per-head scales ----------------------------------------------------------------------------------
SMALL = dict(dims_mode=1, d=(6, 2, 6), s=3, h=4)
SEEDS["ph_basic"] = enc(v02=PER_HEAD, seed=120, **SMALL)
for i, (idt, odt, psv) in enumerate([(BF16, E5M2, 2), (FP16, E4M3FN, 6), (FP32, E4M3FNUZ, 0), (BF16, E5M2FNUZ, 7)]):
    SEEDS[f"ph_dtypes_{i}"] = enc(in_dt=idt, out_dt=odt, v02=PER_HEAD, psv=psv, seed=121 + i, value_mode=i, **SMALL)
SEEDS["ph_deepseek"] = enc(s=2, h=8, v02=PER_HEAD | K_AMAX | V_AMAX, seed=125)
SEEDS["ph_specials"] = enc(v02=PER_HEAD, psv=5, value_mode=1, seed=126, dims_mode=1, d=(7, 3, 5), s=2, h=8)
SEEDS["ph_random_bits"] = enc(v02=PER_HEAD, psv=3, value_mode=2, seed=127, **SMALL)
SEEDS["ph_fval"] = enc(v02=PER_HEAD, psv=4, seed=128, **SMALL)
SEEDS["ph_equal_to_per_tensor"] = enc(v02=PER_HEAD, psv=1, ksel=0, kraw=14, vsel=0, vraw=15, seed=129, **SMALL)
SEEDS["ph_x8_dims"] = enc(v02=PER_HEAD, dims_mode=2, d=(1, 0, 3), s=3, h=5, seed=130)
SEEDS["ph_many_heads"] = enc(v02=PER_HEAD | K_AMAX, dims_mode=1, d=(2, 1, 2), s=2, h=100, psv=6, seed=131)
SEEDS["ph_head_major_interleaved"] = enc(v02=PER_HEAD | V_AMAX, dims_mode=1, d=(5, 3, 5),
                                         layout=IN_HEAD_MAJOR | OUT_HEAD_MAJOR | KV_INTERLEAVED | PAD_H, pad_h=3,
                                         s=4, h=3, seed=132)
SEEDS["ph_broadcast_pe3d"] = enc(v02=PER_HEAD | K_AMAX, dims_mode=1, d=(9, 2, 4), layout=PE_3D | BROADCAST, s=5, h=3,
                                 seed=133)
SEEDS["ph_out_interleaved_nested"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, dims_mode=1, d=(6, 3, 5), place=4, s=4, h=4,
                                         seed=134)
SEEDS["ph_table_vector"] = enc(ctl0=ctl(table=1), v02=PER_HEAD | K_AMAX | V_AMAX, seed=135, **SMALL,
                               table=b"arch=0-0 s=1-* sxh=1-* dims=any variant=vector  # all vector\n")
SEEDS["ph_table_strided"] = enc(ctl0=ctl(table=1), v02=PER_HEAD | K_AMAX | V_AMAX, seed=136, dims_mode=2, d=(1, 1, 1),
                                s=2, h=3, table=b"arch=0-0 s=1-* sxh=1-* dims=any variant=strided  # all strided\n")
# byte gaps: SMALL's five tensors take 558 bytes from arena + 0, so a gap of 2 puts the scale arrays at 560
SEEDS["ph_byte_gaps"] = enc(v02=PER_HEAD | K_AMAX, place=1, g=(0, 0, 0, 0, 0, 2, 0), seed=137, **SMALL)
SEEDS["ph_byte_gaps_misaligned"] = enc(v02=PER_HEAD, place=1, g=(0, 0, 0, 0, 0, 1, 0), seed=138, **SMALL)
# NULL, misaligned, placed inside other operands
SEEDS["ph_null_k_scale"] = enc(v02=PER_HEAD, aux=aux(ks=(NULL, 0)), seed=140, **SMALL)
SEEDS["ph_null_v_scale"] = enc(v02=PER_HEAD | K_AMAX, aux=aux(vs=(NULL, 0)), seed=141, **SMALL)
SEEDS["ph_scale_misaligned"] = enc(v02=PER_HEAD, aux=aux(ks=(AT_RAW, 8194)), seed=142, **SMALL)
SEEDS["ph_scale_in_k_nope"] = enc(v02=PER_HEAD, aux=aux(ks=(inside(KN), 8)), seed=143, **SMALL)
SEEDS["ph_scale_in_k_pe"] = enc(v02=PER_HEAD | K_AMAX, aux=aux(ks=(inside(KP), 0), vs=(inside(KP), 4)), seed=144, **SMALL)
SEEDS["ph_scale_in_v"] = enc(v02=PER_HEAD | V_AMAX, aux=aux(vs=(inside(V), 20)), seed=145, **SMALL)
SEEDS["ph_scales_share_bytes"] = enc(v02=PER_HEAD, aux=aux(vs=(inside(KSCALE), 4)), seed=146, **SMALL)
SEEDS["ph_scales_same_array"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, aux=aux(ks=(AT, 40000), vs=(AT, 40000)), psv=1,
                                    seed=147, **SMALL)
SEEDS["ph_scale_in_k_out"] = enc(v02=PER_HEAD, aux=aux(ks=(inside(KO), 12)), seed=148, **SMALL)
SEEDS["ph_scale_in_v_out"] = enc(v02=PER_HEAD, aux=aux(vs=(inside(VO), 1, )), seed=149, **SMALL)
SEEDS["pt_scale_ptr_in_input_misaligned"] = enc(scale_mode=3, aux=aux(ks=(inside(KN, True), 3), vs=(inside(V), 6)),
                                                seed=150, **SMALL)
SEEDS["ph_undersized_scales"] = enc(v02=PER_HEAD | UNDERSIZED, place=1, g=(0, 0, 0, 0, 0, 2, 0), seed=151, **SMALL)
# ---- 0.2: amax -----------------------------------------------------------------------------------------------
SEEDS["amax_per_tensor"] = enc(v02=K_AMAX | V_AMAX, value_mode=1, seed=160, **SMALL)
SEEDS["amax_per_head"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, value_mode=1, amax_init=1, seed=161, **SMALL)
for i, (idt, init) in enumerate([(BF16, 2), (FP16, 3), (FP32, 5), (FP16, 6), (FP32, 4), (BF16, 7)]):
    SEEDS[f"amax_init_{init}"] = enc(in_dt=idt, v02=(PER_HEAD if i % 2 else 0) | K_AMAX | V_AMAX, amax_init=init,
                                     value_mode=(1, 3, 1, 0, 2, 1)[i], seed=162 + i, dims_mode=1, d=(3, 5, 4), s=2 + i, h=3)
SEEDS["amax_only_k"] = enc(v02=PER_HEAD | K_AMAX, amax_init=1, value_mode=1, seed=170, **SMALL)
SEEDS["amax_only_v"] = enc(v02=V_AMAX, amax_init=3, value_mode=1, seed=171, **SMALL)
SEEDS["amax_fp16_edges"] = enc(in_dt=FP16, v02=K_AMAX | V_AMAX, value_mode=1, seed=172, dims_mode=1, d=(20, 10, 20),
                               s=4, h=4)
SEEDS["amax_fp32_random_bits"] = enc(in_dt=FP32, v02=PER_HEAD | K_AMAX | V_AMAX, value_mode=2, amax_init=5, seed=173,
                                     dims_mode=1, d=(15, 7, 9), s=3, h=5)
SEEDS["amax_adjacent_arrays"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, place=1, g=(0, 0, 0, 0, 0, 2, 0), seed=174,
                                    **SMALL)  # every buffer abuts the next
SEEDS["amax_undersized"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX | UNDERSIZED, place=1, g=(0, 0, 0, 0, 0, 2, 0), seed=175,
                               **SMALL)
SEEDS["amax_misaligned"] = enc(v02=K_AMAX | V_AMAX, aux=aux(va=(AT_RAW, 20001)), seed=176, **SMALL)
SEEDS["amax_ph_misaligned"] = enc(v02=PER_HEAD | K_AMAX, aux=aux(ka=(inside(VO, True), 5)), seed=177, **SMALL)
for i, target in enumerate([KN, KP, V, KO, VO, KSCALE, VSCALE]):
    SEEDS[f"amax_in_{['k_nope', 'k_pe', 'v', 'k_out', 'v_out', 'k_scale', 'v_scale'][i]}"] = enc(
        v02=(PER_HEAD if i % 2 else 0) | K_AMAX | V_AMAX, scale_mode=3,
        aux=aux(ka=(inside(target), 4 * i)) if i % 2 == 0 else aux(va=(inside(target), 4 * i)), seed=180 + i, **SMALL)
SEEDS["amax_in_each_other"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, aux=aux(va=(inside(KAMAX), 8)), seed=187, **SMALL)
SEEDS["amax_same_array"] = enc(v02=K_AMAX | V_AMAX, aux=aux(ka=(AT, 30000), va=(AT, 30000)), seed=188, **SMALL)
SEEDS["amax_big_s"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, dims_mode=1, d=(2, 1, 3), layout=OUT_INTERLEAVED, s=100, h=2,
                          amax_init=4, seed=189)
# ---- 0.2: the fields themselves, empty calls, struct sizes ---------------------------------------------
SEEDS["gran_raw_invalid"] = enc(v02=GRAN_RAW | K_AMAX, gran_raw=2, seed=190, **SMALL)
SEEDS["gran_wild"] = enc(v02=GRAN_WILD, gran_raw=13, seed=191, **SMALL)        # INT32_MIN
SEEDS["gran_invalid_empty"] = enc(v02=GRAN_RAW, gran_raw=0xFFFFFFFF, s=0, h=4, seed=192)
SEEDS["reserved_nonzero"] = enc(v02=PER_HEAD | RESERVED, res_raw=0x80000000, seed=193, **SMALL)
SEEDS["reserved_nonzero_empty"] = enc(v02=RESERVED, res_raw=1, s=3, h=0, seed=194)
SEEDS["ph_empty_s0_null_scales_bad_amax"] = enc(v02=PER_HEAD | K_AMAX | V_AMAX, s=0, h=4, seed=195,
                                                aux=aux(ks=(NULL, 0), vs=(NULL, 0), ka=(AT_RAW, 3), va=(inside(KO), 0)))
SEEDS["ph_empty_h0"] = enc(v02=PER_HEAD | K_AMAX, s=3, h=0, aux=aux(ka=(inside(KN), 0)), seed=196)
SEEDS["struct_0_1_with_0_2_fields"] = enc(ss_mode=4, ss_k=7, v02=PER_HEAD | K_AMAX | V_AMAX | RESERVED, res_raw=5,
                                          aux=aux(ks=(NULL, 0), vs=(NULL, 0), ka=(inside(KO), 0)), seed=197, **SMALL)
SEEDS["struct_472_k_amax_only"] = enc(ss_mode=1, ss_k=7, v02=K_AMAX | V_AMAX, seed=198, **SMALL)   # 472 bytes: no v_amax
SEEDS["struct_larger_ph_amax"] = enc(ss_mode=2, ss_k=40, v02=PER_HEAD | K_AMAX | V_AMAX, seed=199, **SMALL)
SEEDS["mut_granularity_per_head"] = enc(scale_mode=3, muts=[mut(GRANULARITY, 0, 1)], seed=200, **SMALL)
SEEDS["mut_amax_pointers"] = enc(v02=K_AMAX, muts=[mut(K_AMAX_PTR, 1, 4), mut(V_AMAX_PTR, 2, 50000)], seed=201, **SMALL)
SEEDS["mut_amax_wild"] = enc(v02=PER_HEAD | K_AMAX, muts=[mut(K_AMAX_PTR, 3, 12)], seed=202, **SMALL)  # UINTPTR_MAX - 3
SEEDS["mut_scale_ptr_wild_ph"] = enc(v02=PER_HEAD, muts=[mut(K_SCALE_PTR, 3, 6)], seed=203, **SMALL)  # UINTPTR_MAX - 0xFFF
SEEDS["mut_reserved"] = enc(v02=PER_HEAD | K_AMAX, muts=[mut(RESERVED_FIELD, 1, 9)], seed=204, **SMALL)
# ---- 0.2: follow-ups ------------------------------------------------------------------------------------------
SEEDS["amax_accumulate_repeat"] = enc(ctl0=ctl(follow=3), v02=PER_HEAD | K_AMAX | V_AMAX, value_mode=1, seed=210,
                                      follow=[step(0), step(0), step(1, 0x07 | 32, (64, 64, 64, 0, 0))], **SMALL)
SEEDS["amax_move_rebind"] = enc(ctl0=ctl(follow=4), v02=K_AMAX | V_AMAX, seed=211, **SMALL,
                                follow=[step(0, amode=1 | 2 | 8, ad=(16, 32)), step(0, amode=1, ad=(0, 0)),
                                        step(0, amode=1, ad=(20000, 0)), step(1 | 128, 0x1F | 32 | 64, (64,) * 5, amode=2, ad=(0, -3))])
SEEDS["amax_move_into_overlap"] = enc(ctl0=ctl(follow=2), v02=PER_HEAD | K_AMAX | V_AMAX, place=2,
                                      g=(0, 1024, 2048, 4096, 6144, 8192, 8256), aux=aux(ka=(LAYOUT, 10000), va=(LAYOUT, 10064)),
                                      seed=212, **SMALL, follow=[step(0, amode=1, ad=(-(10000 - 4096), 0)), step(0, amode=2, ad=(0, -64))])
SEEDS["gran_flip"] = enc(ctl0=ctl(follow=3), scale_mode=3, v02=K_AMAX, seed=213, **SMALL,
                         follow=[step(128, amode=4), step(0), step(0, amode=4)])
SEEDS["gran_flip_to_per_tensor"] = enc(ctl0=ctl(follow=2), v02=PER_HEAD | K_AMAX | V_AMAX, psv=5, seed=214, **SMALL,
                                       follow=[step(0, amode=4), step(0, amode=4 | 1, ad=(8, 0))])
SEEDS["ph_scale_ptr_move"] = enc(ctl0=ctl(follow=3), v02=PER_HEAD | V_AMAX, seed=215, **SMALL,
                                 follow=[step(2 | 16 | 32, sds=(4, -4)), step(2 | 16, sds=(0, 0)), step(3 | 32, 0x03, (32, 32, 0, 0, 0), sds=(1, 0))])
SEEDS["ph_pointers_moved_table_switch"] = enc(ctl0=ctl(follow=3), v02=PER_HEAD | K_AMAX | V_AMAX, seed=216, dims_mode=2,
                                              d=(0, 0, 0), s=2, h=2,
                                              follow=[step(1, 0x1F | 32 | 64, (100,) * 5), step(0, 128),
                                                      step(1 | 128, 0x18 | 32, (0, 0, 0, -8, 8), amode=1 | 2 | 8, ad=(-1, 1))])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old.endswith(".bin"):
            os.remove(os.path.join(out, old))
    total = 0
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)
        total += len(data)
    print(f"gen_corpus: {len(SEEDS)} inputs, {total} bytes in {out}")


if __name__ == "__main__":
    main()
