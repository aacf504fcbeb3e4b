#!/usr/bin/env bash
# The ABI guard: regenerates the description of libmlakv.so's C ABI (exported functions and their
# version nodes, the layout of every public struct, every integer macro of the header, and the
# struct sizes of past releases) from a built library and include/mlakv/mlakv.h, and compares it
# with the committed tests/abi/mlakv.abi. Any difference fails, with a unified diff and a verdict:
# compatible (additions only) or breaking, and how to accept a deliberate change.
#
# Usage: check_abi.sh [--update [--allow-break]] [--abi FILE] BUILD_DIR | LIBRARY
#   BUILD_DIR   a build tree holding libmlakv.so (or the path of the library itself)
#   --update    rewrite mlakv.abi from the build; refused for a breaking change unless
#   --allow-break  is given too (a new major version: new SONAME, callers rebuilt)
#   --abi FILE  compare with / update FILE instead of tests/abi/mlakv.abi
# Environment: CC (default cc), the C compiler for the two small probe programs; READELF.
# Exit status: 0 ok (or updated), 1 a difference or an error, 2 usage, 77 skipped (a data model
# other than the LP64 the committed layouts describe: symbols and constants are still compared).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
header=$src/include/mlakv/mlakv.h
abi_file=$here/mlakv.abi
mode=check allow_break=0 target=
usage() { sed -n '8,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --update) mode=update ;;
    --allow-break) allow_break=1 ;;
    --abi) [ $# -ge 2 ] || usage; abi_file=$2; shift ;;
    -h|--help) usage ;;
    -*) echo "check_abi: unknown option $1" >&2; usage ;;
    *) [ -z "$target" ] || usage; target=$1 ;;
  esac
  shift
done
[ -n "$target" ] || usage
[ "$allow_break" = 0 ] || [ "$mode" = update ] || { echo "check_abi: --allow-break only goes with --update" >&2; exit 2; }
fail() { echo "check_abi: FAILED: $*"; exit 1; }

if [ -d "$target" ]; then
  lib=$target/libmlakv.so
  [ -e "$lib" ] || lib=$(find "$target" -name libmlakv.so -not -path '*/CMakeFiles/*' 2>/dev/null | sort | head -n 1)
else
  lib=$target
fi
if [ -z "$lib" ] || [ ! -e "$lib" ]; then fail "no libmlakv.so in '$target' (build the mlakv target first)"; fi
READELF=${READELF:-readelf}
command -v "$READELF" >/dev/null || fail "readelf (binutils) not found"
CC=${CC:-cc}
work=$(mktemp -d "${TMPDIR:-/tmp}/mlakv-abi.XXXXXX")
trap 'rm -rf "$work"' EXIT
rel_abi=${abi_file#"$src"/}

# ---- 1. exported symbols: every defined, global, visible function, with its version node ----------------
# readelf -W prints "name@@NODE" for a symbol's default version, "name@NODE" for a hidden one.
"$READELF" --dyn-syms -W "$lib" >"$work/dynsym" || fail "readelf --dyn-syms failed on $lib"
awk '$7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") && ($6 == "DEFAULT" || $6 == "PROTECTED") && NF >= 8 {
       if ($7 == "ABS") { n = $8; sub(/@.*/, "", n); if (n ~ /^MLAKV_[0-9.]+$/) next }  # a version node (MLAKV_0; llvm-readelf: MLAKV_0@@MLAKV_0)
       kind = ($4 == "FUNC" || $4 == "IFUNC") ? "symbol" : "object"
       name = $8; ver = "(unversioned)"
       if ((i = index(name, "@@")) > 0) { ver = substr(name, i + 2); name = substr(name, 1, i - 1) }
       else if ((i = index(name, "@")) > 0) { ver = substr(name, i + 1) " (hidden)"; name = substr(name, 1, i - 1) }
       printf "%-8s %-34s %s\n", kind, name, ver
     }' "$work/dynsym" | LC_ALL=C sort >"$work/symbols"
[ -s "$work/symbols" ] || fail "$lib exports no function"

# The header's MLAKV_API declarations and the exported functions must be the same set.
sed -nE 's/^[[:space:]]*MLAKV_API[^(]*[^A-Za-z0-9_](mlakv_[A-Za-z0-9_]+)[[:space:]]*\(.*/\1/p' "$header" |
  LC_ALL=C sort -u >"$work/declared"
awk '$1 == "symbol" { print $2 }' "$work/symbols" | LC_ALL=C sort -u >"$work/exported"
consistency=$(LC_ALL=C comm -23 "$work/declared" "$work/exported" | sed 's/^/  mlakv.h declares, libmlakv.so does not export: /'
              LC_ALL=C comm -13 "$work/declared" "$work/exported" | sed 's/^/  libmlakv.so exports, mlakv.h does not declare (MLAKV_API): /'
              grep '^object ' "$work/symbols" | awk '{ print "  libmlakv.so exports a variable: " $2 " (only functions belong in the C ABI)" }' || true)

# ---- 2. struct layouts, from tests/abi/abi_layout.c compiled against the header --------------------------
if ! $CC -std=c99 -Wall -Wextra -pedantic -Werror -I"$src/include" "$here/abi_layout.c" -o "$work/abi_layout" \
     >"$work/layout.log" 2>&1; then
  cat "$work/layout.log"
  fail "tests/abi/abi_layout.c does not compile against mlakv.h: a field was removed, renamed or changed type," \
       "or a function's signature changed ('distinct pointer types' names it). That breaks callers; if it is" \
       "deliberate (new major version), update the lists in tests/abi/abi_layout.c, then run --update --allow-break."
fi
"$work/abi_layout" >"$work/layout" || fail "tests/abi/abi_layout.c: fields overlap (see above)"
model=$(awk '$1 == "model" { print $2 }' "$work/layout")

# ---- 3. integer macros: every object-like MLAKV_* macro whose value is an integer constant expression ------
$CC -std=c99 -dM -E -I"$src/include" "$header" >"$work/macros" || fail "the preprocessor failed on mlakv.h"
# candidates: object-like (a space after the name, not "(") with a non-empty value; braces (the *_INIT
# initialisers) and strings (MLAKV_API's attribute) cannot be integers
awk '$1 == "#define" && $2 ~ /^MLAKV_[A-Za-z0-9_]+$/ && NF >= 3 && $0 !~ /[{"]/ { print $2 }' "$work/macros" |
  LC_ALL=C sort >"$work/candidates"
gen_consts() {  # $1: file of macro names -> a C program printing "const NAME VALUE" for each
  local m
  { echo '#include <mlakv/mlakv.h>'
    echo '#include <stdio.h>'
    echo 'int main(void) {'
    while read -r m; do
      # case labels must be integer constant expressions: anything else fails to compile
      echo "  switch (0) { case ($m): break; default: break; }"
      printf '  if ((%s) < 0) printf("const    %%-34s %%lld\\n", "%s", (long long)(%s));\n' "$m" "$m" "$m"
      printf '  else printf("const    %%-34s %%llu\\n", "%s", (unsigned long long)(%s));\n' "$m" "$m"
    done <"$1"
    echo '  return 0;'
    echo '}'; } >"$work/consts.c"
  $CC -std=c99 -pedantic-errors -w -I"$src/include" "$work/consts.c" -o "$work/consts" >"$work/consts.log" 2>&1
}
if ! gen_consts "$work/candidates"; then
  # some candidate is not an integer: keep those that compile alone
  : >"$work/integers"
  while read -r macro; do
    echo "$macro" >"$work/one"
    if gen_consts "$work/one"; then echo "$macro" >>"$work/integers"; fi
  done <"$work/candidates"
  gen_consts "$work/integers" || { cat "$work/consts.log"; fail "cannot evaluate the header's macros"; }
fi
"$work/consts" | LC_ALL=C sort >"$work/constants"
ver() { awk -v m="MLAKV_VERSION_$1" '$1 == "const" && $2 == m { print $3 }' "$work/constants"; }
release="$(ver MAJOR).$(ver MINOR).$(ver PATCH)"
[ "$release" != ".." ] || fail "mlakv.h defines no MLAKV_VERSION_MAJOR/MINOR/PATCH"

# ---- 4. past layouts: the committed ones still valid for the layout above, plus each current size --------
# A struct that starts with struct_size may grow; every size a release shipped stays accepted. A past
# size is valid if it is at most the current size, a multiple of the alignment, and ends between fields.
past_lines() {  # $1: file with "past" lines to carry over (may not exist); prints kept lines, notes to $work/dropped
  awk -v rel="$release" -v dropped="$work/dropped" '
    FILENAME == lay && $1 == "struct" { size[$2] = $4; align[$2] = $6; order[++n] = $2; next }
    FILENAME == lay && $1 == "field" { nf[$2]++; off[$2, nf[$2]] = $5; sz[$2, nf[$2]] = $7
                                       if ($3 == "struct_size" && $5 == 0) has_ss[$2] = 1; next }
    FILENAME == lay { next }
    $1 == "past" {
      s = $2; p = $3 + 0; why = ""
      if (!(s in size)) why = "the struct is gone"
      else if (!has_ss[s]) why = "it no longer starts with struct_size"
      else if (p > size[s]) why = "larger than the current size " size[s] " (the struct shrank)"
      else if (p % align[s] != 0) why = "not a multiple of the alignment " align[s]
      else for (i = 1; i <= nf[s]; ++i) if (off[s, i] < p && off[s, i] + sz[s, i] > p) why = "it ends inside a field"
      if (why != "") { print "note: past layout " s " " p " (" $4 ") dropped: " why > dropped; next }
      if (!((s, p) in seen)) { seen[s, p] = 1; print s, p, $4 }
    }
    END { for (i = 1; i <= n; ++i) if (has_ss[order[i]] && !((order[i], size[order[i]]) in seen)) print order[i], size[order[i]], rel }
  ' lay="$work/layout" "$work/layout" ${1:+"$1"} | LC_ALL=C sort -k1,1 -k2,2n |
    awk '{ printf "past     %-20s %5d %s\n", $1, $2, $3 }'
}

# ---- 5. the description ---------------------------------------------------------------------------------------
describe() {  # $1: file of past lines to carry over (may be empty)
  cat <<'EOF'
# mlakv.abi: the stable C ABI of libmlakv.so, regenerated by tests/abi/check_abi.sh (ctest abi_guard)
# from the built library and include/mlakv/mlakv.h and compared with this file: any difference fails.
# Plain text, one record per line, each section sorted; '#' starts a comment.
#
#   symbol   <function> <version node>       every function libmlakv.so exports (readelf --dyn-syms)
#   const    <macro> <value>                  every MLAKV_* macro of mlakv.h that is an integer (cc -dM -E)
#   model    <data model>                     the layouts hold for LP64 Linux (x86_64, aarch64); on
#                                             another data model the layout comparison is skipped
#   struct   <struct> size align padding      sizeof, alignment, bytes no field covers
#   field    <struct> <field> offset size type   in declaration order (tests/abi/abi_layout.c lists them)
#   past     <struct> <struct_size> <release> every struct_size a release has shipped: callers built
#                                             against that release pass it, and the library must keep
#                                             accepting it (tests/abi/old_struct_size.c calls with each)
#
# Why: mlakv.h promises that codes are never renumbered, that fields are only appended to structs
# that start with struct_size, and that a caller built against an older header (a smaller
# struct_size) keeps working. So the compatible changes are additions: a new function, a new
# constant, a field appended at the end of such a struct (its old size stays under "past").
# Anything else (a function removed or moved to another version node, a constant changed, a field
# moved, resized or retyped, a struct shrunk, a past size dropped) breaks callers built before.
#
# How to update: after a deliberate compatible change (and the new field listed in
# tests/abi/abi_layout.c), run  bash tests/abi/check_abi.sh --update <build dir>  and commit this
# file. It keeps every "past" line and adds each struct's current size with the current release.
# It refuses a breaking change unless --allow-break is given too, which is only right for a new
# major version (new SONAME); "past" lines may be added by hand, nothing else should be edited.
EOF
  echo
  echo "# ---- exported functions ------------------------------------------------------------------------------"
  cat "$work/symbols"
  echo
  echo "# ---- integer macros of include/mlakv/mlakv.h -------------------------------------------------------------"
  cat "$work/constants"
  echo
  echo "# ---- struct layouts -----------------------------------------------------------------------------------"
  cat "$work/layout"
  echo
  echo "# ---- past layouts: struct_size values of released headers, all accepted by this library ----------------"
  past_lines "$1"
}
: >"$work/dropped"
if [ -e "$abi_file" ]; then grep '^past ' "$abi_file" >"$work/committed_past" || true; else : >"$work/committed_past"; fi
describe "$work/committed_past" >"$work/generated"
summary() {
  printf '%s symbols, %s constants, %s structs' "$(grep -c '^symbol ' "$1")" "$(grep -c '^const ' "$1")" \
    "$(grep -c '^struct ' "$1")"
}

# ---- 6. compare ------------------------------------------------------------------------------------------------
# Classifies the differences between two descriptions: prints "breaking: ...", "added: ...", "release: ...",
# "warning: ..." and "unlisted: ..." lines.
classify() {  # $1 committed, $2 generated
  awk '
    # every bit of b is set in a (non-negative integers; mawk has no and())
    function superset(a, b,   p) {
      a += 0; b += 0; if (a < 0 || b < 0) return 0
      for (p = 1; b > 0 || a > 0; p *= 2) { if (b % 2 == 1 && a % 2 != 1) return 0; a = int(a / 2); b = int(b / 2) }
      return 1
    }
    function key(   ) { return $1 == "field" ? $2 "." $3 : $1 == "past" ? $2 " " $3 : $2 }
    function val(   i, v) { v = ""; for (i = ($1 == "field" || $1 == "past") ? 4 : 3; i <= NF; ++i) v = v (v == "" ? "" : " ") $i; return v }
    /^#/ || NF == 0 { next }
    FNR == NR { old[$1, key()] = val(); if ($1 == "field") { oldf[$2, $3] = $5 } if ($1 == "struct") os[$2] = $4
                if ($1 == "field" && $3 == "struct_size" && $5 == 0) oss[$2] = 1; if ($1 == "struct") opad[$2] = $8
                okind[$1, key()] = $1; next }
    { new[$1, key()] = val(); nkind[$1, key()] = $1
      if ($1 == "struct") { ns[$2] = $4; npad[$2] = $8 }
      if ($1 == "past") np[$2, $3] = 1
      if ($1 == "field") nf[$2, $3] = $5
      if ($1 == "unlisted") print "unlisted: " $2 " has " $6 " bytes at offset " $4 " that no listed field covers: list the new field(s) in tests/abi/abi_layout.c"
    }
    END {
      for (k in old) {
        split(k, a, SUBSEP); t = a[1]; n = a[2]
        if (t == "model" || t == "unlisted") continue
        if (!(k in new)) {
          if (t == "symbol" || t == "object") print "breaking: " n " is no longer exported"
          else if (t == "const") print "breaking: " n " (= " old[k] ") is gone"
          else if (t == "struct") print "breaking: struct " n " is gone"
          else if (t == "field") print "breaking: field " n " (" old[k] ") is gone"
          else if (t == "past") print "breaking: past layout " n " (" old[k] ") is no longer accepted"
          continue
        }
        if (old[k] == new[k]) continue
        if (t == "symbol" || t == "object") print "breaking: " n " moved from version " old[k] " to " new[k]
        else if (t == "const" && n ~ /^MLAKV_VERSION(_MAJOR|_MINOR|_PATCH)?$/)
          print "release: " n " " old[k] " -> " new[k] (n == "MLAKV_VERSION_MAJOR" ? " (a new major version: a new SONAME)" : "")
        else if (t == "const" && n ~ /_KNOWN$/ && superset(new[k], old[k]))
          print "added: mask " n " gained bits: " old[k] " -> " new[k]
        else if (t == "const") print "breaking: " n " changed from " old[k] " to " new[k]
        else if (t == "field") print "breaking: field " n " changed: " old[k] " -> " new[k]
        else if (t == "past") print "breaking: past layout " n " changed release: " old[k] " -> " new[k]
        else if (t == "struct") {
          split(old[k], o, " "); split(new[k], w, " ")
          if (o[4] != w[4]) print "breaking: struct " n " alignment changed: " o[4] " -> " w[4]
          if (w[2] + 0 < o[2] + 0) print "breaking: struct " n " shrank: " o[2] " -> " w[2] " bytes"
          else if (w[2] + 0 > o[2] + 0) {
            if (!oss[n]) print "breaking: struct " n " grew (" o[2] " -> " w[2] " bytes) but has no struct_size: its size is fixed (it is embedded by value or passed by size)"
            else if (!((n, o[2]) in np)) print "breaking: struct " n " grew but its old size " o[2] " is not recorded as a past layout"
            else print "added: struct " n " grew " o[2] " -> " w[2] " bytes (the old size stays a past layout)"
          }
          if (oss[n] && w[6] + 0 > o[6] + 0) print "warning: struct " n " gained " (w[6] - o[6]) " bytes of padding: a newer caller cannot be relied on to zero padding, and a library that does not know those bytes rejects non-zero ones; prefer explicit (reserved) fields so the struct has no padding"
        }
      }
      for (k in new) {
        if (k in old) continue
        split(k, a, SUBSEP); t = a[1]; n = a[2]
        if (t == "symbol" || t == "object") print "added: function " n " (" new[k] ")"
        else if (t == "const") print "added: constant " n " = " new[k]
        else if (t == "struct") print "added: struct " n
        else if (t == "past") print "added: past layout " n " (" new[k] ")"
        else if (t == "field") {
          split(n, f, "."); s = f[1]
          if (!(s in os)) continue                    # a new struct: its fields come with it
          if (!oss[s]) print "breaking: field " n " added to " s ", which has no struct_size (its size is fixed)"
          else if (nf[s, f[2]] + 0 < os[s] + 0) print "breaking: field " n " inserted at offset " nf[s, f[2]] ", inside the old struct (" os[s] " bytes): fields may only be appended"
          else print "added: field " n " appended at offset " nf[s, f[2]]
        }
      }
    }' "$1" "$2" | LC_ALL=C sort -u
}

if [ -e "$abi_file" ]; then
  committed_model=$(awk '$1 == "model" { print $2 }' "$abi_file")
else
  committed_model=$model
fi
if [ -n "$consistency" ]; then
  echo "check_abi: the header and the library disagree:"
  echo "$consistency"
fi

# Another data model: the layouts (and so the past sizes) do not apply; symbols and constants do.
if [ "$model" != "$committed_model" ]; then
  [ "$mode" = check ] || fail "refusing to update: $rel_abi describes $committed_model layouts, this build is $model"
  grep -E '^(symbol|object|const) ' "$abi_file" >"$work/old_sc" || true
  grep -E '^(symbol|object|const) ' "$work/generated" >"$work/new_sc" || true
  if ! diff -u --label "$rel_abi (symbols, constants)" --label "regenerated from $lib" "$work/old_sc" "$work/new_sc"; then
    fail "exported functions or constants differ (see the diff above)"
  fi
  [ -z "$consistency" ] || fail "the header and the library disagree (see above)"
  echo "check_abi: skipped: $rel_abi describes $committed_model layouts, this build is $model" \
       "(symbols and constants match; the layout comparison does not apply)"
  exit 77
fi

if [ -e "$abi_file" ] && cmp -s "$abi_file" "$work/generated"; then
  [ -z "$consistency" ] || fail "the header and the library disagree (see above)"
  echo "check_abi: ok ($(summary "$work/generated"))"
  exit 0
fi

if [ -e "$abi_file" ]; then
  classify "$abi_file" "$work/generated" >"$work/verdict"
  cat "$work/dropped" >>"$work/verdict"
  diff -u --label "$rel_abi (committed)" --label "regenerated from $lib" "$abi_file" "$work/generated" || true
else
  echo "check_abi: $rel_abi does not exist yet"
  : >"$work/verdict"
fi
if [ -s "$work/verdict" ]; then echo "check_abi: what changed:"; sed 's/^/  /' "$work/verdict"; fi
breaking=$(grep -c '^breaking:' "$work/verdict" || true)
unlisted=$(grep -c '^unlisted:' "$work/verdict" || true)

if [ "$mode" = check ]; then
  if [ ! -e "$abi_file" ]; then
    fail "no committed description: create it with  bash tests/abi/check_abi.sh --update <build dir>"
  elif [ "$unlisted" != 0 ]; then
    fail "a struct grew by fields tests/abi/abi_layout.c does not list: list them there, then check again"
  elif [ "$breaking" != 0 ]; then
    fail "the ABI changed INCOMPATIBLY ($breaking breaking change(s) above): callers built against the" \
         "committed header would break. Undo it, or, for a new major version (bump MLAKV_VERSION_MAJOR and" \
         "the SONAME), accept it with  bash tests/abi/check_abi.sh --update --allow-break <build dir>"
  elif [ -n "$consistency" ]; then
    fail "the header and the library disagree (see above)"
  elif ! grep -q . "$work/verdict"; then
    fail "$rel_abi differs from its regeneration only in comments or order: rewrite it with" \
         " bash tests/abi/check_abi.sh --update <build dir>"
  else
    fail "the ABI changed compatibly (additions only, see above); if that is deliberate, accept it with" \
         " bash tests/abi/check_abi.sh --update <build dir>  and commit $rel_abi"
  fi
fi

# --update
[ -z "$consistency" ] || fail "refusing to update: the header and the library disagree (see above)"
[ "$unlisted" = 0 ] || fail "refusing to update: list the new fields in tests/abi/abi_layout.c first"
if [ "$breaking" != 0 ]; then
  [ "$allow_break" = 1 ] || fail "refusing to update: $breaking breaking change(s) above; if this is a new major" \
                                 "version (MLAKV_VERSION_MAJOR and the SONAME bumped), add --allow-break"
  # A new major version: callers of the old one are not served any more, so the past sizes of every
  # struct whose layout broke start again from the current size.
  broken=$(sed -nE 's/^breaking: (field |struct |past layout )?(mlakv_[A-Za-z0-9_]+).*/\2/p' "$work/verdict" | sort -u)
  awk -v list="$broken" 'BEGIN { n = split(list, b, "\n"); for (i = 1; i <= n; ++i) drop[b[i]] = 1 }
                         !($2 in drop) { print }' "$work/committed_past" >"$work/kept_past"
  : >"$work/dropped"
  describe "$work/kept_past" >"$work/generated"
  echo "check_abi: --allow-break: past layouts restart at the current size for: $(echo "$broken" | tr '\n' ' ')"
fi
cp "$work/generated" "$abi_file"
echo "check_abi: updated $rel_abi ($(summary "$work/generated")); commit it"
