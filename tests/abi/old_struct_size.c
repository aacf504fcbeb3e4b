/* Every struct_size a release has shipped keeps working (C99, -Wall -Wextra -pedantic -Werror).
 *
 * Usage: old_struct_size MLAKV_ABI_FILE. The past sizes come from the "past" lines of
 * tests/abi/mlakv.abi, read at run time, so a past layout added there is a case here with no
 * other edit. For each past size N of mlakv_pack_args, a struct of exactly N bytes is placed at
 * the end of a page followed by a PROT_NONE page (reading byte N faults), holding the fields that
 * layout has (the first N bytes of a fully set struct), and mlakv_pack_fp8 / mlakv_pack_fp8_plan
 * on the reference backend must give the same status, bytes and text as with a current struct
 * holding the same fields and the defaults for the others. Likewise mlakv_backend_get_info with
 * each past size of mlakv_backend_info. Also: a larger struct_size with zero trailing bytes is
 * accepted and with a non-zero one refused (MLAKV_ERR_STRUCT_SIZE, nothing written); a size below
 * every released one is refused without reading past it; mlakv_pack_args_init gives what
 * MLAKV_PACK_ARGS_INIT gives. Exit 77 (skipped) on a data model other than the file's (LP64). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L
#include <mlakv/mlakv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_ANONYMOUS
#  define MAP_ANONYMOUS MAP_ANON
#endif

static int failures = 0;
#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "old_struct_size: %s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
      ++failures;                                                          \
    }                                                                      \
  } while (0)

struct align_pack_args { char c; mlakv_pack_args t; };
struct align_backend_info { char c; mlakv_backend_info t; };
#define PACK_ARGS_ALIGN offsetof(struct align_pack_args, t)
#define BACKEND_INFO_ALIGN offsetof(struct align_backend_info, t)

/* ---- guarded memory: n bytes that end where a PROT_NONE page begins ---------------------------------- */
typedef struct {
  unsigned char* base;
  size_t len;
} mapping;

static unsigned char* guarded(mapping* m, size_t n) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t body = (n + page - 1) / page * page;
  void* p;
  m->len = body + page;
  p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("old_struct_size: mmap");
    exit(1);
  }
  m->base = (unsigned char*)p;
  if (mprotect(m->base + body, page, PROT_NONE) != 0) {
    perror("old_struct_size: mprotect");
    exit(1);
  }
  return m->base + body - n;
}

static void unmap(mapping* m) { munmap(m->base, m->len); }

/* ---- the past sizes, from mlakv.abi -------------------------------------------------------------------- */
#define MAX_PAST 64
typedef struct {
  const char* name;
  size_t sizes[MAX_PAST];
  char releases[MAX_PAST][32];
  int n;
} past_list;

static char file_model[32];

static void read_abi(const char* path, past_list* pack, past_list* info) {
  char line[512], kind[32], name[128], rel[32];
  unsigned long size;
  FILE* f = fopen(path, "r");
  if (!f) {
    perror(path);
    exit(1);
  }
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%31s", kind) != 1 || kind[0] == '#') continue;
    if (strcmp(kind, "model") == 0) {
      if (sscanf(line, "%*s %31s", file_model) != 1) file_model[0] = '\0';
    } else if (strcmp(kind, "past") == 0) {
      past_list* l;
      if (sscanf(line, "%*s %127s %lu %31s", name, &size, rel) != 3) {
        fprintf(stderr, "old_struct_size: %s: malformed line: %s", path, line);
        exit(1);
      }
      l = strcmp(name, pack->name) == 0 ? pack : strcmp(name, info->name) == 0 ? info : NULL;
      if (!l) continue;
      if (l->n == MAX_PAST) {
        fprintf(stderr, "old_struct_size: more than %d past layouts of %s\n", MAX_PAST, name);
        exit(1);
      }
      l->sizes[l->n] = (size_t)size;
      strcpy(l->releases[l->n], rel);
      ++l->n;
    }
  }
  fclose(f);
}

/* ---- the problem: bf16 inputs, e4m3fn outputs, on the reference backend --------------------------------- */
enum { S = 3, H = 2, DN = 8, DR = 4, DV = 8 };
static uint16_t k_nope[S * H * DN], k_pe[S * DR], v[S * H * DV];
static uint8_t k_out[S * H * (DN + DR)], v_out[S * H * DV];
static const float k_scale = 0.25f;

static mlakv_tensor tensor3(void* data, mlakv_dtype dt, int64_t n0, int64_t n1, int64_t n2) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data;
  t.dtype = dt;
  t.ndim = 3;
  t.shape[0] = n0;
  t.shape[1] = n1;
  t.shape[2] = n2;
  t.strides[0] = n1 * n2;
  t.strides[1] = n2;
  t.strides[2] = 1;
  return t;
}

static uint16_t bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return (uint16_t)(u >> 16);
}

/* Every field set, to a non-default value where the reference backend allows one. */
static mlakv_pack_args full_args(void) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tensor3(k_nope, MLAKV_DTYPE_BF16, S, H, DN);
  a.k_pe = tensor3(k_pe, MLAKV_DTYPE_BF16, S, 1, DR);
  a.v = tensor3(v, MLAKV_DTYPE_BF16, S, H, DV);
  a.k_out = tensor3(k_out, MLAKV_DTYPE_E4M3FN, S, H, DN + DR);
  a.v_out = tensor3(v_out, MLAKV_DTYPE_E4M3FN, S, H, DV);
  a.k_scale_inv = 2.0f;          /* overridden by k_scale_inv_ptr where the layout has it */
  a.v_scale_inv = 4.0f;
  a.k_scale_inv_ptr = &k_scale;  /* host memory: what the reference backend reads */
  a.v_scale_inv_ptr = NULL;
  a.backend = MLAKV_BACKEND_REFERENCE;
  a.device = 0;
  a.stream = NULL;
  a.pdl = MLAKV_PDL_OFF;         /* ignored off CUDA */
  a.flags = MLAKV_FLAG_TRUST_POINTERS;
  return a;
}

typedef struct {
  mlakv_status pack, plan;
  uint8_t k_out[sizeof k_out], v_out[sizeof v_out];
  char text[1024];
} outcome;

static void run(const mlakv_pack_args* args, outcome* o) {
  memset(k_out, 0xA5, sizeof k_out);
  memset(v_out, 0xA5, sizeof v_out);
  o->pack = mlakv_pack_fp8(args);
  memcpy(o->k_out, k_out, sizeof k_out);
  memcpy(o->v_out, v_out, sizeof v_out);
  memset(o->text, 0, sizeof o->text);
  o->plan = mlakv_pack_fp8_plan(args, o->text, sizeof o->text, NULL);
}

static int untouched(const outcome* o) {
  size_t i;
  for (i = 0; i < sizeof k_out; ++i)
    if (o->k_out[i] != 0xA5) return 0;
  for (i = 0; i < sizeof v_out; ++i)
    if (o->v_out[i] != 0xA5) return 0;
  return 1;
}

static int same(const outcome* a, const outcome* b) {
  return a->pack == b->pack && a->plan == b->plan && memcmp(a->k_out, b->k_out, sizeof a->k_out) == 0 &&
         memcmp(a->v_out, b->v_out, sizeof a->v_out) == 0 && strcmp(a->text, b->text) == 0;
}

/* A caller built against the release that had struct_size n: its struct is n bytes long. */
static void pack_past_size(size_t n, const char* release) {
  const mlakv_pack_args full = full_args();
  mlakv_pack_args expect = MLAKV_PACK_ARGS_INIT;
  outcome old_caller, current;
  mapping m;
  unsigned char* p;
  CHECK(n <= sizeof(mlakv_pack_args), "past size %lu (%s) of mlakv_pack_args is larger than this header's %lu",
        (unsigned long)n, release, (unsigned long)sizeof(mlakv_pack_args));
  CHECK(n % PACK_ARGS_ALIGN == 0 && n >= sizeof(size_t), "past size %lu (%s) cannot be a struct size", (unsigned long)n,
        release);
  if (n > sizeof(mlakv_pack_args) || n % PACK_ARGS_ALIGN != 0 || n < sizeof(size_t)) return;
  /* the current struct: the fields that layout had, the defaults for the rest */
  memcpy(&expect, &full, n);
  expect.struct_size = sizeof(mlakv_pack_args);
  p = guarded(&m, n);
  memcpy(p, &full, n);
  memcpy(p, &n, sizeof n); /* struct_size is the first field */
  run((const mlakv_pack_args*)(const void*)p, &old_caller);
  run(&expect, &current);
  unmap(&m);
  CHECK(current.pack == MLAKV_OK && current.plan == MLAKV_OK, "the current struct failed: %s / %s (%s)",
        mlakv_status_string(current.pack), mlakv_status_string(current.plan), mlakv_last_error());
  CHECK(old_caller.pack == MLAKV_OK, "struct_size %lu (%s): mlakv_pack_fp8: %s", (unsigned long)n, release,
        mlakv_status_string(old_caller.pack));
  CHECK(old_caller.plan == MLAKV_OK, "struct_size %lu (%s): mlakv_pack_fp8_plan: %s", (unsigned long)n, release,
        mlakv_status_string(old_caller.plan));
  CHECK(same(&old_caller, &current), "struct_size %lu (%s): output or plan differs from the current struct's "
        "(plan '%s' vs '%s')", (unsigned long)n, release, old_caller.text, current.text);
}

/* A caller built against a newer header: trailing bytes this library does not know. */
static void pack_newer_size(void) {
  const size_t cur = sizeof(mlakv_pack_args), extra = 2 * PACK_ARGS_ALIGN, n = cur + extra;
  const mlakv_pack_args full = full_args();
  outcome newer, current;
  mapping m;
  unsigned char* p = guarded(&m, n);
  size_t where[2];
  int i;
  run(&full, &current);
  memset(p, 0, n);
  memcpy(p, &full, cur);
  memcpy(p, &n, sizeof n);
  run((const mlakv_pack_args*)(const void*)p, &newer);
  CHECK(same(&newer, &current), "struct_size %lu with zero trailing bytes: %s / %s, not the current struct's result",
        (unsigned long)n, mlakv_status_string(newer.pack), mlakv_status_string(newer.plan));
  where[0] = cur;
  where[1] = n - 1;
  for (i = 0; i < 2; ++i) {
    memset(p + cur, 0, extra);
    p[where[i]] = 0x01;
    run((const mlakv_pack_args*)(const void*)p, &newer);
    CHECK(newer.pack == MLAKV_ERR_STRUCT_SIZE && newer.plan == MLAKV_ERR_STRUCT_SIZE,
          "struct_size %lu with byte %lu set: %s / %s, expected MLAKV_ERR_STRUCT_SIZE", (unsigned long)n,
          (unsigned long)where[i], mlakv_status_string(newer.pack), mlakv_status_string(newer.plan));
    CHECK(untouched(&newer), "struct_size %lu with byte %lu set: refused, but an output byte was written",
          (unsigned long)n, (unsigned long)where[i]);
  }
  unmap(&m);
}

/* A struct_size no release ever had (below the smallest): refused, without reading past it. */
static void pack_too_small(size_t smallest) {
  size_t sizes[3], n;
  int i;
  sizes[0] = 0;
  sizes[1] = sizeof(size_t);
  sizes[2] = smallest - PACK_ARGS_ALIGN;
  for (i = 0; i < 3; ++i) {
    const mlakv_pack_args full = full_args();
    outcome o;
    mapping m;
    unsigned char* p;
    const size_t stated = sizes[i];
    n = stated < sizeof(size_t) ? sizeof(size_t) : stated;
    p = guarded(&m, n);
    memcpy(p, &full, n);
    memcpy(p, &stated, sizeof stated);
    run((const mlakv_pack_args*)(const void*)p, &o);
    unmap(&m);
    CHECK(o.pack == MLAKV_ERR_STRUCT_SIZE && o.plan == MLAKV_ERR_STRUCT_SIZE,
          "struct_size %lu: %s / %s, expected MLAKV_ERR_STRUCT_SIZE", (unsigned long)stated,
          mlakv_status_string(o.pack), mlakv_status_string(o.plan));
    CHECK(untouched(&o), "struct_size %lu: refused, but an output byte was written", (unsigned long)stated);
  }
}

/* ---- mlakv_backend_get_info ------------------------------------------------------------------------------ */
#define INFO_HAS(n, f) (offsetof(mlakv_backend_info, f) + sizeof(((mlakv_backend_info*)0)->f) <= (n))

static int same_string(const char* a, const char* b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* The fields an n-byte caller's struct has: equal to what a current struct receives. */
static void info_compare(size_t n, int index, const mlakv_backend_info* got, const mlakv_backend_info* want) {
  CHECK(!INFO_HAS(n, backend) || got->backend == want->backend, "info %d, struct_size %lu: backend", index, (unsigned long)n);
  CHECK(!INFO_HAS(n, name) || same_string(got->name, want->name), "info %d, struct_size %lu: name", index, (unsigned long)n);
  CHECK(!INFO_HAS(n, compiled) || got->compiled == want->compiled, "info %d, struct_size %lu: compiled", index,
        (unsigned long)n);
  CHECK(!INFO_HAS(n, usable) || got->usable == want->usable, "info %d, struct_size %lu: usable", index, (unsigned long)n);
  CHECK(!INFO_HAS(n, device_count) || got->device_count == want->device_count, "info %d, struct_size %lu: device_count",
        index, (unsigned long)n);
  CHECK(!INFO_HAS(n, detail) || same_string(got->detail, want->detail), "info %d, struct_size %lu: detail", index,
        (unsigned long)n);
}

static void info_size(size_t n, const char* release) {
  const int count = mlakv_backend_count();
  int i;
  CHECK(n <= sizeof(mlakv_backend_info) || release == NULL,
        "past size %lu (%s) of mlakv_backend_info is larger than this header's %lu", (unsigned long)n, release,
        (unsigned long)sizeof(mlakv_backend_info));
  CHECK(n % BACKEND_INFO_ALIGN == 0 && n >= sizeof(size_t), "size %lu cannot be a struct size", (unsigned long)n);
  if ((n > sizeof(mlakv_backend_info) && release) || n % BACKEND_INFO_ALIGN != 0 || n < sizeof(size_t)) return;
  CHECK(count >= 1, "mlakv_backend_count() = %d", count);
  for (i = 0; i < count; ++i) {
    mlakv_backend_info want = MLAKV_BACKEND_INFO_INIT;
    mlakv_backend_info got = MLAKV_BACKEND_INFO_INIT; /* the fields, read back from the guarded bytes */
    mlakv_status st_want, st_got;
    mapping m;
    unsigned char* p = guarded(&m, n);
    memset(p, 0, n);
    memcpy(p, &n, sizeof n);
    st_want = mlakv_backend_get_info(i, &want);
    st_got = mlakv_backend_get_info(i, (mlakv_backend_info*)(void*)p);
    memcpy(&got, p, n < sizeof got ? n : sizeof got);
    unmap(&m);
    CHECK(st_want == MLAKV_OK, "mlakv_backend_get_info(%d) with the current struct: %s", i, mlakv_status_string(st_want));
    CHECK(st_got == st_want, "mlakv_backend_get_info(%d) with struct_size %lu%s%s: %s", i, (unsigned long)n,
          release ? " of " : " (newer)", release ? release : "", mlakv_status_string(st_got));
    CHECK(got.struct_size == n, "mlakv_backend_get_info(%d) changed struct_size %lu to %lu", i, (unsigned long)n,
          (unsigned long)got.struct_size);
    if (st_got == MLAKV_OK) info_compare(n, i, &got, &want);
  }
}

static void info_too_small(void) {
  const size_t stated[2] = {0, sizeof(size_t)};
  int i;
  for (i = 0; i < 2; ++i) {
    mapping m;
    unsigned char* p = guarded(&m, sizeof(size_t));
    mlakv_status st;
    memcpy(p, &stated[i], sizeof(size_t));
    st = mlakv_backend_get_info(0, (mlakv_backend_info*)(void*)p);
    unmap(&m);
    CHECK(st == MLAKV_ERR_STRUCT_SIZE, "mlakv_backend_get_info with struct_size %lu: %s, expected MLAKV_ERR_STRUCT_SIZE",
          (unsigned long)stated[i], mlakv_status_string(st));
  }
}

/* ---- mlakv_pack_args_init ---------------------------------------------------------------------------------- */
static int same_tensor(const mlakv_tensor* a, const mlakv_tensor* b) {
  int i;
  if (a->data != b->data || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (i = 0; i < MLAKV_MAX_RANK; ++i)
    if (a->shape[i] != b->shape[i] || a->strides[i] != b->strides[i]) return 0;
  return 1;
}

static void init_function(void) {
  const mlakv_pack_args want = MLAKV_PACK_ARGS_INIT;
  mapping m;
  unsigned char* p = guarded(&m, sizeof(mlakv_pack_args));
  mlakv_pack_args got;
  memset(p, 0xCC, sizeof(mlakv_pack_args));
  mlakv_pack_args_init((mlakv_pack_args*)(void*)p);
  memcpy(&got, p, sizeof got);
  unmap(&m);
  mlakv_pack_args_init(NULL); /* ignored */
  CHECK(got.struct_size == want.struct_size, "struct_size %lu", (unsigned long)got.struct_size);
  CHECK(same_tensor(&got.k_nope, &want.k_nope) && same_tensor(&got.k_pe, &want.k_pe) && same_tensor(&got.v, &want.v) &&
            same_tensor(&got.k_out, &want.k_out) && same_tensor(&got.v_out, &want.v_out),
        "a tensor differs from MLAKV_TENSOR_INIT");
  CHECK(got.k_scale_inv == want.k_scale_inv && got.v_scale_inv == want.v_scale_inv, "scales %g %g", (double)got.k_scale_inv,
        (double)got.v_scale_inv);
  CHECK(got.k_scale_inv_ptr == want.k_scale_inv_ptr && got.v_scale_inv_ptr == want.v_scale_inv_ptr, "scale pointers");
  CHECK(got.backend == want.backend && got.device == want.device && got.stream == want.stream && got.pdl == want.pdl &&
            got.flags == want.flags,
        "backend %d device %d pdl %d flags %u", (int)got.backend, (int)got.device, (int)got.pdl, (unsigned)got.flags);
}

int main(int argc, char** argv) {
  past_list pack, info;
  size_t smallest;
  int i;
  if (argc != 2) {
    fprintf(stderr, "usage: old_struct_size tests/abi/mlakv.abi\n");
    return 2;
  }
  memset(&pack, 0, sizeof pack);
  memset(&info, 0, sizeof info);
  pack.name = "mlakv_pack_args";
  info.name = "mlakv_backend_info";
  read_abi(argv[1], &pack, &info);
  if (strcmp(file_model, "LP64") != 0 || sizeof(void*) != 8 || sizeof(long) != 8 || sizeof(int) != 4) {
    printf("old_struct_size: skipped: %s lists past sizes for the %s data model, this build is not LP64\n", argv[1],
           file_model[0] ? file_model : "(unknown)");
    return 77;
  }
  if (pack.n == 0 || info.n == 0) {
    fprintf(stderr, "old_struct_size: %s has no past layout of %s\n", argv[1], pack.n == 0 ? pack.name : info.name);
    return 1;
  }

  for (i = 0; i < S * H * DN; ++i) k_nope[i] = bf16((float)(i % 37 - 18) * 0.37f);
  for (i = 0; i < S * DR; ++i) k_pe[i] = bf16((float)(i % 11 - 5) * 41.0f);
  for (i = 0; i < S * H * DV; ++i) v[i] = bf16((float)(i % 23 - 11) * 3.3f);

  smallest = pack.sizes[0];
  for (i = 0; i < pack.n; ++i) {
    pack_past_size(pack.sizes[i], pack.releases[i]);
    if (pack.sizes[i] < smallest) smallest = pack.sizes[i];
  }
  pack_past_size(sizeof(mlakv_pack_args), "this header"); /* also guarded, whether listed or not */
  pack_newer_size();
  pack_too_small(smallest);

  for (i = 0; i < info.n; ++i) info_size(info.sizes[i], info.releases[i]);
  info_size(sizeof(mlakv_backend_info), "this header");
  info_size(sizeof(mlakv_backend_info) + 2 * BACKEND_INFO_ALIGN, NULL); /* a newer caller's larger struct */
  info_too_small();

  init_function();

  if (failures) {
    fprintf(stderr, "old_struct_size: %d check(s) FAILED\n", failures);
    return 1;
  }
  printf("old_struct_size: ok (mlakv_pack_args sizes");
  for (i = 0; i < pack.n; ++i) printf(" %lu (%s)", (unsigned long)pack.sizes[i], pack.releases[i]);
  printf(", mlakv_backend_info sizes");
  for (i = 0; i < info.n; ++i) printf(" %lu (%s)", (unsigned long)info.sizes[i], info.releases[i]);
  printf("; %d backends; larger and too-small struct_size; mlakv_pack_args_init)\n", mlakv_backend_count());
  return 0;
}
