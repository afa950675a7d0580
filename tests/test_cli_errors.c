/* Bad and awkward input through the tcorex program, one table row per case:
 * the exit code, a phrase of the message, and that a failed run leaves no
 * output file behind (or leaves an older one unchanged byte for byte).
 * Cases where ranks matter run at 1 and 2 ranks. A fault in rank 1's
 * column block must end the run on rank 0 too, with that rank's message.
 * This program does not initialise MPI itself, because it launches mpirun. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <nifti1_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

enum {
  DIR_MAX = 384,
  PATH_MAX_CHARS = 512,
  ARGS_MAX = 2048,
  COMMAND_MAX = 4096,
  OUTPUT_MAX = 65536
};

/* The standard input: N_ROWS samples of N_VARS variables. With 2 ranks,
 * rank 0 reads columns 0..3 and rank 1 reads columns 4..6. */
enum { N_ROWS = 20, N_VARS = 7, RANK1_COLUMN = 5 };

/* Exit codes of the program (README.md, docs/ERRORS.md). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 2,
  EXIT_INPUT = 3,
  EXIT_OUTPUT = 4
};

/* Which rank counts a case runs at. */
enum { AT_1 = 1, AT_2 = 2, AT_BOTH = 3 };

/* How a case treats its output path. */
enum {
  OUTPUT_ABSENT,    /* a failed run must leave neither OUTPUT nor OUTPUT.tmp */
  OUTPUT_UNCHANGED, /* OUTPUT exists before; a failed run keeps it as is */
  OUTPUT_WRITTEN    /* the run succeeds and writes OUTPUT */
};

typedef struct run_output {
  int exit_code;
  char text[OUTPUT_MAX]; /* stdout and stderr together */
} run_output;

typedef struct cli_fixture {
  char dir[256];
} cli_fixture;

/* Writes the input files of a case into dir. Returns 0 when the case cannot
 * run here (it printed why), 1 otherwise. */
typedef int (*prepare_fn)(const char *dir);

typedef struct error_case {
  const char *name;
  prepare_fn prepare;
  /* Arguments after "tcorex"; "@" stands for the case's folder. */
  const char *args;
  int ranks;
  int exit_code;
  const char *phrase;  /* must appear in the output */
  const char *phrase2; /* a second phrase, or NULL */
  const char *output;  /* output file name inside the folder */
  int output_rule;
  int as_unprivileged; /* run as user nobody when the tests run as root */
} error_case;

/* Runs a shell command, capturing its output and exit code. */
static void run(const char *command, run_output *out)
{
  char full[COMMAND_MAX + 16];
  FILE *pipe;
  size_t length = 0;
  int status;

  snprintf(full, sizeof(full), "%s 2>&1", command);
  pipe = popen(full, "r");
  assert_non_null(pipe);
  while (length + 1 < sizeof(out->text) &&
         fgets(out->text + length, (int)(sizeof(out->text) - length), pipe))
    length += strlen(out->text + length);
  out->text[length] = '\0';
  status = pclose(pipe);
  out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Copies template into text with every "@" replaced by dir. */
static void expand(const char *template, const char *dir, char *text,
                   size_t size)
{
  size_t used = 0;

  for (const char *c = template; *c && used + 1 < size; c++) {
    if (*c == '@') {
      int written = snprintf(text + used, size - used, "%s", dir);

      used += written > 0 ? (size_t)written : 0;
    } else {
      text[used++] = *c;
    }
  }
  text[used < size ? used : size - 1] = '\0';
}

/* Runs the program at ranks ranks (1: without mpirun). With unprivileged,
 * a root caller runs it as user nobody through setpriv, because root reads
 * and writes files whatever their permissions.
 *
 * The program runs with LeakSanitizer off. In the sanitizer build its scan
 * at exit takes about 5 s per process on 2 busy cores, mostly over Open
 * MPI's allocations, which would put this table of about 50 runs past the
 * test's time limit. Its tracer also crashes in a process that setpriv
 * started. AddressSanitizer and UBSan stay on, and the library tests check
 * the error paths of the readers and writers for leaks. A failed malloc
 * returns NULL, as outside the sanitizer build, because HDF5 asks for
 * petabytes when an object header is corrupt and handles the NULL. */
static void run_cli(int ranks, int unprivileged, const char *args,
                    run_output *out)
{
  char command[COMMAND_MAX];
  char prefix[256];
  const char *asan = getenv("ASAN_OPTIONS");

  snprintf(prefix, sizeof(prefix),
           "%sASAN_OPTIONS='%s%sdetect_leaks=0:allocator_may_return_null=1' ",
           unprivileged && geteuid() == 0
               ? "setpriv --reuid=65534 --regid=65534 --clear-groups env "
                 "HOME=/tmp "
               : "",
           asan && strlen(asan) < 128 ? asan : "",
           asan && asan[0] && strlen(asan) < 128 ? ":" : "");
  if (ranks == 1)
    snprintf(command, sizeof(command), "%s%s %s", prefix, TCX_CLI_PATH, args);
  else
    snprintf(command, sizeof(command),
             "%sOPENBLAS_NUM_THREADS=1 %s -n %d %s -x ASAN_OPTIONS %s %s",
             prefix, TCX_MPIEXEC, ranks, TCX_MPIEXEC_FLAGS, TCX_CLI_PATH,
             args);
  run(command, out);
}

static int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Reads a whole file; the caller frees the result. */
static char *read_file(const char *path, size_t *size)
{
  FILE *file = fopen(path, "rb");
  char *bytes;
  long length;

  assert_non_null(file);
  assert_int_equal(fseek(file, 0, SEEK_END), 0);
  length = ftell(file);
  assert_true(length >= 0);
  rewind(file);
  bytes = malloc((size_t)length + 1);
  assert_non_null(bytes);
  assert_int_equal(fread(bytes, 1, (size_t)length, file), (size_t)length);
  fclose(file);
  *size = (size_t)length;
  return bytes;
}

static void write_text(const char *path, const char *text)
{
  FILE *file = fopen(path, "w");

  assert_non_null(file);
  fputs(text, file);
  assert_int_equal(fclose(file), 0);
}

/* The value of the standard input at (row, column): two latent signals,
 * each shared by a group of columns, plus a small column-specific term, so
 * that every column varies and a two-factor fit has structure to find. */
static double standard_value(int64_t row, int64_t column)
{
  const double signal =
      column % 2 == 0 ? sin(0.9 * (double)row) : cos(1.7 * (double)row);

  return (1.0 + 0.1 * (double)column) * signal +
         0.3 * sin(0.37 * (double)(row * N_VARS + column) + (double)column);
}

/* Writes a dataset name of the given file type and shape, converting from
 * the double values (or the standard input when values is NULL). */
static void write_h5(const char *path, const char *name, hid_t file_type,
                     int rank, const hsize_t *dims, const double *values)
{
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t space, dataset;
  hsize_t count = 1;
  double *data;

  assert_true(file >= 0);
  for (int d = 0; d < rank; d++)
    count *= dims[d];
  data = calloc(count > 0 ? count : 1, sizeof(double));
  assert_non_null(data);
  for (hsize_t k = 0; k < count; k++)
    data[k] = values ? values[k]
                     : standard_value((int64_t)(k / dims[rank - 1]),
                                      (int64_t)(k % dims[rank - 1]));
  space = H5Screate_simple(rank, dims, NULL);
  assert_true(space >= 0);
  dataset = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT,
                       H5P_DEFAULT, H5P_DEFAULT);
  assert_true(dataset >= 0);
  if (count > 0)
    assert_true(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                         H5P_DEFAULT, data) >= 0);
  H5Dclose(dataset);
  H5Sclose(space);
  assert_true(H5Fclose(file) >= 0);
  free(data);
}

/* Writes the standard [N_ROWS, N_VARS] input as dir/in.h5, with the value
 * at (row, column) replaced by value when row >= 0. */
static void write_standard(const char *dir, hid_t file_type, int64_t row,
                           int64_t column, double value)
{
  const hsize_t dims[2] = {N_ROWS, N_VARS};
  double values[N_ROWS * N_VARS];
  char path[PATH_MAX_CHARS];

  for (int64_t r = 0; r < N_ROWS; r++)
    for (int64_t c = 0; c < N_VARS; c++)
      values[r * N_VARS + c] = standard_value(r, c);
  if (row >= 0)
    values[row * N_VARS + column] = value;
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", file_type, 2, dims, values);
}

/* Writes a small valid 4-D NIfTI-1 image (4 x 3 x 2 voxels, 12 volumes) as
 * dir/bold.nii. */
static void write_nifti(const char *dir)
{
  int dims[8] = {4, 4, 3, 2, 12, 1, 1, 1};
  nifti_image *image = nifti_make_new_nim(dims, DT_FLOAT32, 1);
  char path[PATH_MAX_CHARS];
  float *voxels;

  assert_non_null(image);
  voxels = image->data;
  for (size_t k = 0; k < image->nvox; k++)
    voxels[k] = (float)standard_value((int64_t)(k / 24), (int64_t)(k % 24));
  snprintf(path, sizeof(path), "%s/bold.nii", dir);
  assert_int_equal(nifti_set_filenames(image, path, 0, 1), 0);
  nifti_image_write(image);
  nifti_image_free(image);
  assert_true(file_exists(path));
}

/* Cuts path to keep bytes of it. */
static void truncate_file(const char *path, off_t keep)
{
  assert_int_equal(truncate(path, keep), 0);
}

/* Overwrites count bytes of path from offset on with value. */
static void overwrite_bytes(const char *path, long offset, size_t count,
                            unsigned char value)
{
  FILE *file = fopen(path, "r+b");

  assert_non_null(file);
  assert_int_equal(fseek(file, offset, SEEK_SET), 0);
  for (size_t k = 0; k < count; k++)
    assert_int_equal(fputc(value, file), value);
  assert_int_equal(fclose(file), 0);
}

static int prepare_nothing(const char *dir)
{
  (void)dir;
  return 1;
}

static int prepare_standard(const char *dir)
{
  write_standard(dir, H5T_IEEE_F64LE, -1, 0, 0);
  return 1;
}

/* The folder itself must be reachable by user nobody for the cases that
 * run unprivileged. */
static int open_folder_to_all(const char *dir)
{
  if (geteuid() == 0 && system("command -v setpriv >/dev/null") != 0) {
    fprintf(stderr, "skipped: running as root and setpriv is missing, so "
                    "permissions cannot be tested\n");
    return 0;
  }
  assert_int_equal(chmod(dir, 0777), 0);
  return 1;
}

static int prepare_unreadable(const char *dir)
{
  char path[PATH_MAX_CHARS];

  if (!open_folder_to_all(dir))
    return 0;
  prepare_standard(dir);
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  assert_int_equal(chmod(path, 0000), 0);
  return 1;
}

static int prepare_readonly_folder(const char *dir)
{
  char path[PATH_MAX_CHARS];

  if (!open_folder_to_all(dir))
    return 0;
  prepare_standard(dir);
  snprintf(path, sizeof(path), "%s/locked", dir);
  assert_int_equal(mkdir(path, 0555), 0);
  assert_int_equal(chmod(path, 0555), 0);
  return 1;
}

static int prepare_text(const char *dir)
{
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/text.h5", dir);
  write_text(path, "time,a,b\n0,1,2\n1,3,4\n");
  snprintf(path, sizeof(path), "%s/text.nii", dir);
  write_text(path, "time,a,b\n0,1,2\n1,3,4\n");
  return 1;
}

/* A standard input cut after its superblock and object headers, in the
 * middle of the raw data. */
static int prepare_truncated_h5(const char *dir)
{
  char path[PATH_MAX_CHARS];
  struct stat info;

  prepare_standard(dir);
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  assert_int_equal(stat(path, &info), 0);
  truncate_file(path, info.st_size - 500);
  return 1;
}

/* A standard input whose bytes 48..1071 are overwritten with 0xff, from the
 * root group's entry in the superblock on. The signature stays intact, so
 * the file still looks like HDF5. */
static int prepare_corrupt_h5(const char *dir)
{
  char path[PATH_MAX_CHARS];

  prepare_standard(dir);
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  overwrite_bytes(path, 48, 1024, 0xff);
  return 1;
}

/* Copies a file of tests/fuzz/known/h5_read to dir/in.h5. */
static void copy_known_input(const char *name, const char *dir)
{
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command),
           "cp '%s/tests/fuzz/known/h5_read/%s' '%s/in.h5'", TCX_SOURCE_DIR,
           name, dir);
  assert_int_equal(system(command), 0);
}

/* An input whose object header size is corrupt: HDF5 requests
 * about 3e15 bytes from malloc while opening it (found by the fuzz target). */
static int prepare_huge_header(const char *dir)
{
  copy_known_input("huge_object_header_allocation.h5", dir);
  return 1;
}

/* A chunked int16 input whose chunk B-tree is corrupt: the file opens, and
 * the read of the data fails inside HDF5 (found by the fuzz target). */
static int prepare_corrupt_chunks(const char *dir)
{
  copy_known_input("leak_chunk_collective_read.h5", dir);
  return 1;
}

/* A 6 x 5 input with compact storage of 0 bytes: HDF5 1.10.8 reads it
 * through a NULL pointer unless tcorex compares the storage with the shape
 * first (found by the fuzz target). */
static int prepare_compact_too_small(const char *dir)
{
  copy_known_input("compact_storage_too_small.h5", dir);
  return 1;
}

/* A 2 x 3 x 4 input whose chunk index claims 2 GB of chunks in a file of
 * 4680 bytes: HDF5 1.10.8 allocates them before it reads (found by the fuzz
 * target). */
static int prepare_chunks_too_large(const char *dir)
{
  copy_known_input("chunk_storage_too_large.h5", dir);
  return 1;
}

/* A 2 x 3 x 4 input whose integer type declares 1869509234 bytes per
 * number (found by the fuzz target). */
static int prepare_huge_integer_type(const char *dir)
{
  copy_known_input("huge_integer_type.h5", dir);
  return 1;
}

static int prepare_truncated_nifti(const char *dir)
{
  char path[PATH_MAX_CHARS];

  write_nifti(dir);
  snprintf(path, sizeof(path), "%s/bold.nii", dir);
  truncate_file(path, 352 + 100);
  return 1;
}

/* A NIfTI-1 header whose dim[] field (bytes 40..55) is garbage. */
static int prepare_corrupt_nifti(const char *dir)
{
  char path[PATH_MAX_CHARS];

  write_nifti(dir);
  snprintf(path, sizeof(path), "%s/bold.nii", dir);
  overwrite_bytes(path, 42, 14, 0x7f);
  return 1;
}

/* A NIfTI-1 header whose datatype (bytes 70..71) is 0, DT_UNKNOWN, which
 * nifticlib reports with its own "** ERROR" line when it reads it. */
static int prepare_unknown_voxel_type(const char *dir)
{
  char path[PATH_MAX_CHARS];

  write_nifti(dir);
  snprintf(path, sizeof(path), "%s/bold.nii", dir);
  overwrite_bytes(path, 70, 2, 0x00);
  return 1;
}

static int prepare_rank1(const char *dir)
{
  const hsize_t dims[1] = {N_ROWS};
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 1, dims, NULL);
  return 1;
}

static int prepare_rank4(const char *dir)
{
  const hsize_t dims[4] = {2, 2, 5, N_VARS};
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 4, dims, NULL);
  return 1;
}

static int prepare_zero_rows(const char *dir)
{
  const hsize_t dims[2] = {0, N_VARS};
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, NULL);
  return 1;
}

static int prepare_one_row(const char *dir)
{
  const hsize_t dims[2] = {1, N_VARS};
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, NULL);
  return 1;
}

static int prepare_one_variable(const char *dir)
{
  const hsize_t dims[2] = {N_ROWS, 1};
  char path[PATH_MAX_CHARS];

  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, NULL);
  return 1;
}

/* NaN at rows 3 and 11 of columns 1 and RANK1_COLUMN. */
static int prepare_nan(const char *dir)
{
  const hsize_t dims[2] = {N_ROWS, N_VARS};
  double values[N_ROWS * N_VARS];
  char path[PATH_MAX_CHARS];

  for (int64_t k = 0; k < N_ROWS * N_VARS; k++)
    values[k] = standard_value(k / N_VARS, k % N_VARS);
  values[3 * N_VARS + 1] = NAN;
  values[11 * N_VARS + RANK1_COLUMN] = NAN;
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, values);
  return 1;
}

static int prepare_inf_rank1(const char *dir)
{
  write_standard(dir, H5T_IEEE_F64LE, 13, RANK1_COLUMN, -INFINITY);
  return 1;
}

/* Column RANK1_COLUMN entirely NaN. */
static int prepare_missing_column(const char *dir)
{
  const hsize_t dims[2] = {N_ROWS, N_VARS};
  double values[N_ROWS * N_VARS];
  char path[PATH_MAX_CHARS];

  for (int64_t k = 0; k < N_ROWS * N_VARS; k++)
    values[k] = k % N_VARS == RANK1_COLUMN ? NAN
                                           : standard_value(k / N_VARS,
                                                            k % N_VARS);
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, values);
  return 1;
}

/* Column 2 (rank 0) and column RANK1_COLUMN (rank 1) constant. */
static int prepare_constant_columns(const char *dir)
{
  const hsize_t dims[2] = {N_ROWS, N_VARS};
  double values[N_ROWS * N_VARS];
  char path[PATH_MAX_CHARS];

  for (int64_t k = 0; k < N_ROWS * N_VARS; k++)
    values[k] = standard_value(k / N_VARS, k % N_VARS);
  for (int64_t r = 0; r < N_ROWS; r++) {
    values[r * N_VARS + 2] = 4.25;
    values[r * N_VARS + RANK1_COLUMN] = -1.0;
  }
  snprintf(path, sizeof(path), "%s/in.h5", dir);
  write_h5(path, "/data", H5T_IEEE_F64LE, 2, dims, values);
  return 1;
}

static int prepare_nifti(const char *dir)
{
  write_nifti(dir);
  return 1;
}

#define FIT_ARGS "fit --input @/in.h5 --factors 2 --max-iter 30 "

static const error_case cases[] = {
    {"missing input file", prepare_nothing,
     "fit --input @/absent.h5 --factors 2 --output @/model.h5", AT_1,
     EXIT_INPUT, "input file @/absent.h5 not found", "check the path",
     "model.h5", OUTPUT_ABSENT, 0},
    {"missing input keeps old output", prepare_nothing,
     "fit --input @/absent.h5 --factors 2 --output @/model.h5", AT_1,
     EXIT_INPUT, "absent.h5 not found", NULL, "model.h5", OUTPUT_UNCHANGED,
     0},
    {"missing NIfTI file", prepare_nothing,
     "convert --nifti @/absent.nii --output @/conv.h5", AT_1, EXIT_INPUT,
     "BOLD image @/absent.nii not found", NULL, "conv.h5", OUTPUT_ABSENT, 0},
    {"unreadable input file", prepare_unreadable,
     FIT_ARGS "--output @/model.h5", AT_1, EXIT_INPUT,
     "input file @/in.h5 is not readable", "Permission denied", "model.h5",
     OUTPUT_ABSENT, 1},
    {"text file as HDF5", prepare_text,
     "fit --input @/text.h5 --factors 2 --output @/model.h5", AT_1,
     EXIT_INPUT, "input file @/text.h5 is not an HDF5 file",
     "converts NIfTI and CSV files", "model.h5", OUTPUT_ABSENT, 0},
    {"text file as NIfTI", prepare_text,
     "convert --nifti @/text.nii --output @/conv.h5", AT_1, EXIT_INPUT,
     "BOLD image @/text.nii is not a NIfTI-1 file", NULL, "conv.h5",
     OUTPUT_ABSENT, 0},
    {"truncated HDF5 file", prepare_truncated_h5,
     FIT_ARGS "--output @/model.h5", AT_1, EXIT_INPUT, "@/in.h5",
     "truncated", "model.h5", OUTPUT_ABSENT, 0},
    {"corrupt HDF5 file", prepare_corrupt_h5, FIT_ARGS "--output @/model.h5",
     AT_BOTH, EXIT_INPUT, "@/in.h5", "corrupt", "model.h5", OUTPUT_ABSENT, 0},
    {"corrupt chunk index", prepare_corrupt_chunks,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_BOTH,
     EXIT_INPUT, "@/in.h5: HDF5 failed to read columns",
     "the file is corrupt or truncated", "model.h5", OUTPUT_ABSENT, 0},
    {"corrupt object header size", prepare_huge_header,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_1,
     EXIT_INPUT, "HDF5 cannot open @/in.h5 for reading",
     "truncated or corrupt", "model.h5", OUTPUT_ABSENT, 0},
    {"compact storage smaller than the shape", prepare_compact_too_small,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_BOTH,
     EXIT_INPUT, "@/in.h5: dataset \"/data\" is corrupt",
     "compact storage holds 0 bytes", "model.h5", OUTPUT_ABSENT, 0},
    {"chunks larger than the file", prepare_chunks_too_large,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_BOTH,
     EXIT_INPUT, "@/in.h5: dataset \"/data\" is corrupt",
     "chunks claim 2147483792 bytes but the file holds 4680", "model.h5",
     OUTPUT_ABSENT, 0},
    {"integer type of gigabytes", prepare_huge_integer_type,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_BOTH,
     EXIT_INPUT, "@/in.h5: dataset \"/data\" holds 1869509234-byte numbers",
     "at most 16 bytes", "model.h5", OUTPUT_ABSENT, 0},
    {"truncated NIfTI file", prepare_truncated_nifti,
     "convert --nifti @/bold.nii --output @/conv.h5", AT_1, EXIT_INPUT,
     "BOLD image @/bold.nii is truncated", NULL, "conv.h5", OUTPUT_ABSENT, 0},
    {"corrupt NIfTI header", prepare_corrupt_nifti,
     "convert --nifti @/bold.nii --output @/conv.h5", AT_1, EXIT_INPUT,
     "BOLD image @/bold.nii", "corrupt", "conv.h5", OUTPUT_ABSENT, 0},
    {"unknown NIfTI voxel type", prepare_unknown_voxel_type,
     "convert --nifti @/bold.nii --output @/conv.h5", AT_1, EXIT_INPUT,
     "BOLD image @/bold.nii has voxel type", "datatype code 0", "conv.h5",
     OUTPUT_ABSENT, 0},
    {"missing dataset", prepare_standard,
     "fit --input @/in.h5 --dataset /bold --factors 2 --output @/model.h5",
     AT_BOTH, EXIT_INPUT, "@/in.h5: dataset \"/bold\" not found",
     "/data [20 x 7]. Pass one with --dataset", "model.h5", OUTPUT_ABSENT,
     0},
    {"missing dataset keeps old output", prepare_standard,
     "fit --input @/in.h5 --dataset /bold --factors 2 --output @/model.h5",
     AT_1, EXIT_INPUT, "dataset \"/bold\" not found", NULL, "model.h5",
     OUTPUT_UNCHANGED, 0},
    {"dataset of rank 1", prepare_rank1, FIT_ARGS "--output @/model.h5",
     AT_1, EXIT_INPUT, "@/in.h5: dataset \"/data\" has shape [20]",
     "expected 2 dimensions [T, p]", "model.h5", OUTPUT_ABSENT, 0},
    {"dataset of rank 4", prepare_rank4, FIT_ARGS "--output @/model.h5",
     AT_1, EXIT_INPUT, "dataset \"/data\" has 4 dimensions", "at most 3",
     "model.h5", OUTPUT_ABSENT, 0},
    {"zero rows", prepare_zero_rows, FIT_ARGS "--output @/model.h5", AT_1,
     EXIT_INPUT, "dataset \"/data\" has shape [0 x 7]: it has no rows",
     NULL, "model.h5", OUTPUT_ABSENT, 0},
    {"one row", prepare_one_row, FIT_ARGS "--output @/model.h5", AT_BOTH,
     EXIT_INPUT, "@/in.h5:/data has 1 row(s)", "at least 2 samples",
     "model.h5", OUTPUT_ABSENT, 0},
    {"more periods than rows", prepare_standard,
     FIT_ARGS "--periods 30 --output @/model.h5", AT_1, EXIT_USAGE,
     "--periods: 30 periods need at least 30 rows", "the input has 20",
     "model.h5", OUTPUT_ABSENT, 0},
    {"NaN is a missing value", prepare_nan, FIT_ARGS "--output @/model.h5",
     AT_1, EXIT_OK, "fit: model written to @/model.h5", NULL, "model.h5",
     OUTPUT_WRITTEN, 0},
    {"NaN in T-CorEx input", prepare_nan,
     FIT_ARGS "--periods 2 --output @/model.h5", AT_2, EXIT_OK,
     "fit: T-CorEx, 2 periods", NULL, "model.h5", OUTPUT_WRITTEN, 0},
    {"infinite value in rank 1 block", prepare_inf_rank1,
     FIT_ARGS "--output @/model.h5", AT_BOTH, EXIT_INPUT,
     "@/in.h5: dataset \"/data\" has an infinite value (-inf) at row 13, "
     "column 5",
     "replace it with NaN", "model.h5", OUTPUT_ABSENT, 0},
    {"all-missing column in rank 1 block", prepare_missing_column,
     FIT_ARGS "--output @/model.h5", AT_BOTH, EXIT_INPUT,
     "@/in.h5: dataset \"/data\": column 5 (0-based) has no observed value",
     "all 20 rows are missing", "model.h5", OUTPUT_ABSENT, 0},
    {"all-missing column in T-CorEx input", prepare_missing_column,
     FIT_ARGS "--periods 2 --output @/model.h5", AT_2, EXIT_INPUT,
     "column 5 (0-based) has no observed value", NULL, "model.h5",
     OUTPUT_ABSENT, 0},
    {"constant columns are kept", prepare_constant_columns,
     FIT_ARGS "--output @/model.h5", AT_2, EXIT_OK,
     "warning: 2 constant variable(s)", "fit: model written", "model.h5",
     OUTPUT_WRITTEN, 0},
    {"constant columns in T-CorEx", prepare_constant_columns,
     FIT_ARGS "--periods 2 --output @/model.h5", AT_2, EXIT_OK,
     "warning: 2 constant variable(s)", "fit: model written", "model.h5",
     OUTPUT_WRITTEN, 0},
    {"more ranks than variables", prepare_one_variable,
     "fit --input @/in.h5 --factors 1 --output @/model.h5", AT_2,
     EXIT_USAGE, "has 1 variables (columns), fewer than the 2 ranks",
     "run with at most 1 ranks", "model.h5", OUTPUT_ABSENT, 0},
    {"more factors than variables", prepare_standard,
     "fit --input @/in.h5 --factors 8 --output @/model.h5", AT_2,
     EXIT_USAGE, "--factors: 8 is more than the 7 variables of @/in.h5:/data",
     NULL, "model.h5", OUTPUT_ABSENT, 0},
    {"negative factors", prepare_standard,
     "fit --input @/in.h5 --factors -3 --output @/model.h5", AT_1,
     EXIT_USAGE, "--factors: -3 is out of range; expected an integer >= 1",
     NULL, "model.h5", OUTPUT_ABSENT, 0},
    {"gamma above 1", prepare_standard,
     FIT_ARGS "--gamma 1.5 --output @/model.h5", AT_1, EXIT_USAGE,
     "--gamma: 1.5 is out of range; expected a number in (0, 1]", NULL,
     "model.h5", OUTPUT_ABSENT, 0},
    {"gamma not a number", prepare_standard,
     FIT_ARGS "--gamma half --output @/model.h5", AT_1, EXIT_USAGE,
     "--gamma: 'half' is not a number", NULL, "model.h5", OUTPUT_ABSENT, 0},
    {"negative l2", prepare_standard, FIT_ARGS "--l2 -2 --output @/model.h5",
     AT_1, EXIT_USAGE, "--l2: -2 is out of range; expected a number >= 0",
     NULL, "model.h5", OUTPUT_ABSENT, 0},
    {"factors not an integer", prepare_standard,
     "fit --input @/in.h5 --factors 2.5 --output @/model.h5", AT_1,
     EXIT_USAGE, "--factors: '2.5' is not an integer", NULL, "model.h5",
     OUTPUT_ABSENT, 0},
    {"unknown flag", prepare_standard,
     FIT_ARGS "--lambda 3 --output @/model.h5", AT_1, EXIT_USAGE,
     "unknown option '--lambda' for 'tcorex fit'", NULL, "model.h5",
     OUTPUT_ABSENT, 0},
    {"output folder missing", prepare_standard,
     FIT_ARGS "--output @/absent/model.h5", AT_2, EXIT_OUTPUT,
     "folder @/absent does not exist", "create it", "absent/model.h5",
     OUTPUT_ABSENT, 0},
    {"output folder missing for convert", prepare_nifti,
     "convert --nifti @/bold.nii --output @/absent/conv.h5", AT_1,
     EXIT_OUTPUT, "folder @/absent does not exist", NULL, "absent/conv.h5",
     OUTPUT_ABSENT, 0},
    {"output folder not writable", prepare_readonly_folder,
     FIT_ARGS "--output @/locked/model.h5", AT_1, EXIT_OUTPUT,
     "folder @/locked is not writable", "Permission denied",
     "locked/model.h5", OUTPUT_ABSENT, 1},
};

static int setup_dir(void **state)
{
  cli_fixture *fixture = calloc(1, sizeof(*fixture));

  if (!fixture)
    return -1;
  snprintf(fixture->dir, sizeof(fixture->dir), "%s/tcx_errors_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(fixture->dir))
    return -1;
  /* User nobody must reach the case folders inside. */
  if (chmod(fixture->dir, 0711) != 0)
    return -1;
  *state = fixture;
  return 0;
}

static void remove_dir(const char *dir)
{
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command), "chmod -R u+rwx '%s'; rm -rf '%s'", dir,
           dir);
  if (system(command) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

static int teardown_dir(void **state)
{
  cli_fixture *fixture = *state;
  char disk[DIR_MAX];

  /* A small disk that a failed assertion left mounted. */
  snprintf(disk, sizeof(disk), "%s/disk", fixture->dir);
  if (file_exists(disk))
    umount(disk);
  remove_dir(fixture->dir);
  free(fixture);
  return 0;
}

/* Runs one case at one rank count in a fresh folder under root and returns
 * 1 when every check passed, printing what failed otherwise. */
static int run_case(const error_case *c, int ranks, const char *root)
{
  static const char old_bytes[] = "an older output that must survive\n";
  char dir[DIR_MAX], args[ARGS_MAX], phrase[ARGS_MAX];
  char output[PATH_MAX_CHARS], temp[PATH_MAX_CHARS + 8];
  static run_output out;
  int ok = 1;

  snprintf(dir, sizeof(dir), "%s/case_XXXXXX", root);
  assert_non_null(mkdtemp(dir));
  if (!c->prepare(dir)) {
    fprintf(stderr, "skipped case '%s'\n", c->name);
    remove_dir(dir);
    return 1;
  }
  snprintf(output, sizeof(output), "%s/%s", dir, c->output);
  snprintf(temp, sizeof(temp), "%s.tmp", output);
  if (c->output_rule == OUTPUT_UNCHANGED)
    write_text(output, old_bytes);

  expand(c->args, dir, args, sizeof(args));
  run_cli(ranks, c->as_unprivileged, args, &out);

  if (out.exit_code != c->exit_code) {
    fprintf(stderr, "exit code %d, expected %d\n", out.exit_code,
            c->exit_code);
    ok = 0;
  }
  expand(c->phrase, dir, phrase, sizeof(phrase));
  if (!strstr(out.text, phrase)) {
    fprintf(stderr, "phrase '%s' not in the output\n", phrase);
    ok = 0;
  }
  if (c->phrase2) {
    expand(c->phrase2, dir, phrase, sizeof(phrase));
    if (!strstr(out.text, phrase)) {
      fprintf(stderr, "phrase '%s' not in the output\n", phrase);
      ok = 0;
    }
  }
  if (c->exit_code != EXIT_OK && !strstr(out.text, "tcorex: error: ")) {
    fprintf(stderr, "no 'tcorex: error:' line\n");
    ok = 0;
  }
  if (strstr(out.text, "HDF5-DIAG") || strstr(out.text, "** ERROR")) {
    fprintf(stderr, "a library printed its own error stack\n");
    ok = 0;
  }
  if (file_exists(temp)) {
    fprintf(stderr, "temporary file %s left behind\n", temp);
    ok = 0;
  }
  if (c->output_rule == OUTPUT_ABSENT && file_exists(output)) {
    fprintf(stderr, "output %s exists after a failed run\n", output);
    ok = 0;
  }
  if (c->output_rule == OUTPUT_WRITTEN && !file_exists(output)) {
    fprintf(stderr, "output %s was not written\n", output);
    ok = 0;
  }
  if (c->output_rule == OUTPUT_UNCHANGED) {
    size_t size = 0;
    char *bytes = read_file(output, &size);

    if (size != strlen(old_bytes) || memcmp(bytes, old_bytes, size) != 0) {
      fprintf(stderr, "the older output %s was changed\n", output);
      ok = 0;
    }
    free(bytes);
  }
  if (!ok)
    fprintf(stderr, "case '%s' at %d rank(s): tcorex %s\n%s\n", c->name,
            ranks, args, out.text);
  remove_dir(dir);
  return ok;
}

/* Every row of the table at each of its rank counts. All rows run before
 * the test fails, so that one run lists every failing case. */
static void bad_input_table(void **state)
{
  cli_fixture *fixture = *state;
  int failed = 0;

  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
    for (int ranks = 1; ranks <= 2; ranks++)
      if (cases[k].ranks & ranks)
        failed += !run_case(&cases[k], ranks, fixture->dir);
  assert_int_equal(failed, 0);
}

/* Reads a whole double dataset of a small HDF5 file. */
static double *read_dataset(const char *path, const char *name,
                            hssize_t *count)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset, space;
  double *values;

  assert_true(file >= 0);
  dataset = H5Dopen2(file, name, H5P_DEFAULT);
  assert_true(dataset >= 0);
  space = H5Dget_space(dataset);
  *count = H5Sget_simple_extent_npoints(space);
  assert_true(*count > 0);
  values = calloc((size_t)*count, sizeof(double));
  assert_non_null(values);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, values) >= 0);
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  return values;
}

/* Integer and float32 inputs are read as the double values they store: a
 * fit of int16 data equals, to the last bit, the fit of the same integers
 * stored as float64, and likewise for float32. */
static void integer_and_float32_inputs(void **state)
{
  cli_fixture *fixture = *state;
  static const char *const types[] = {"int16", "float32"};
  const hsize_t dims[2] = {N_ROWS, N_VARS};
  double values[N_ROWS * N_VARS];
  char args[ARGS_MAX];
  static run_output out;

  for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
    const hid_t stored = t == 0 ? H5T_STD_I16LE : H5T_IEEE_F32LE;
    char typed[PATH_MAX_CHARS], wide[PATH_MAX_CHARS];
    char typed_model[PATH_MAX_CHARS], wide_model[PATH_MAX_CHARS];
    double *typed_factors, *wide_factors;
    hssize_t typed_count, wide_count;

    /* Values that both types store exactly: integers for int16, and
     * doubles rounded to float32 for float32. */
    for (int64_t k = 0; k < N_ROWS * N_VARS; k++) {
      const double value = standard_value(k / N_VARS, k % N_VARS);

      values[k] = t == 0 ? round(100.0 * value) : (double)(float)value;
    }
    snprintf(typed, sizeof(typed), "%s/%s.h5", fixture->dir, types[t]);
    snprintf(wide, sizeof(wide), "%s/%s_as_f64.h5", fixture->dir,
             types[t]);
    snprintf(typed_model, sizeof(typed_model), "%s/%s_model.h5",
             fixture->dir, types[t]);
    snprintf(wide_model, sizeof(wide_model), "%s/%s_f64_model.h5",
             fixture->dir, types[t]);
    write_h5(typed, "/data", stored, 2, dims, values);
    write_h5(wide, "/data", H5T_IEEE_F64LE, 2, dims, values);

    snprintf(args, sizeof(args),
             "fit --input %s --factors 2 --max-iter 30 --output %s", typed,
             typed_model);
    run_cli(1, 0, args, &out);
    if (out.exit_code != 0)
      fprintf(stderr, "%s input: %s\n", types[t], out.text);
    assert_int_equal(out.exit_code, 0);
    snprintf(args, sizeof(args),
             "fit --input %s --factors 2 --max-iter 30 --output %s", wide,
             wide_model);
    run_cli(1, 0, args, &out);
    assert_int_equal(out.exit_code, 0);

    typed_factors = read_dataset(typed_model, "/factors", &typed_count);
    wide_factors = read_dataset(wide_model, "/factors", &wide_count);
    assert_int_equal(typed_count, 2 * N_VARS);
    assert_int_equal(wide_count, typed_count);
    for (hssize_t k = 0; k < typed_count; k++)
      assert_true(typed_factors[k] == wide_factors[k]);
    free(typed_factors);
    free(wide_factors);
  }
}

/* Mounts a tmpfs of size_kib KiB at a new folder under root. Returns 0
 * (after printing why) when mounting is not permitted. */
static int mount_small_disk(const char *root, int64_t size_kib, char *folder,
                            size_t size)
{
  char options[64];

  snprintf(folder, size, "%s/disk", root);
  snprintf(options, sizeof(options), "size=%lldk", (long long)size_kib);
  assert_int_equal(mkdir(folder, 0755), 0);
  if (mount("tmpfs", folder, "tmpfs", 0, options) != 0) {
    fprintf(stderr, "skipped: cannot mount a %lld KiB tmpfs at %s to test "
                    "a full disk: %s (run the tests as root to include "
                    "them)\n",
            (long long)size_kib, folder, strerror(errno));
    rmdir(folder);
    return 0;
  }
  return 1;
}

/* Fills the file system of folder to the last byte with folder/filler. */
static void fill_disk(const char *folder)
{
  static const char block[4096];
  char path[PATH_MAX_CHARS];
  FILE *file;

  snprintf(path, sizeof(path), "%s/filler", folder);
  file = fopen(path, "wb");
  assert_non_null(file);
  setvbuf(file, NULL, _IONBF, 0);
  while (fwrite(block, 1, sizeof(block), file) == sizeof(block))
    ;
  while (fwrite(block, 1, 1, file) == 1)
    ;
  fclose(file);
}

/* A fit, a CSV conversion and a NIfTI conversion writing to a full disk at
 * 1 and 2 ranks: exit code 4, a message naming the output and the system
 * error, no temporary file, and the older output unchanged. */
static void full_disk_keeps_old_output(void **state)
{
  cli_fixture *fixture = *state;
  static const char old_bytes[] = "the model of an earlier run\n";
  static const struct {
    const char *args;
    int ranks;
  } runs[] = {
      {FIT_ARGS "--output @/disk/model.h5", 1},
      {FIT_ARGS "--output @/disk/model.h5", 2},
      {"convert --csv @/table.csv --output @/disk/model.h5", 1},
      {"convert --nifti @/bold.nii --output @/disk/model.h5", 2},
  };
  char disk[DIR_MAX], model[PATH_MAX_CHARS], path[PATH_MAX_CHARS + 8];
  char args[ARGS_MAX];
  static run_output out;

  if (!mount_small_disk(fixture->dir, 256, disk, sizeof(disk)))
    return;
  prepare_standard(fixture->dir);
  write_nifti(fixture->dir);
  snprintf(path, sizeof(path), "%s/table.csv", fixture->dir);
  write_text(path, "a,b,c\n1,2,3\n4,5,7\n2,2,1\n");
  snprintf(model, sizeof(model), "%s/model.h5", disk);
  write_text(model, old_bytes);
  fill_disk(disk);

  for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
    size_t size = 0;
    char *bytes;

    expand(runs[k].args, fixture->dir, args, sizeof(args));
    run_cli(runs[k].ranks, 0, args, &out);
    if (out.exit_code != EXIT_OUTPUT)
      fprintf(stderr, "tcorex %s at %d rank(s):\n%s\n", args, runs[k].ranks,
              out.text);
    assert_int_equal(out.exit_code, EXIT_OUTPUT);
    assert_non_null(strstr(out.text, model));
    assert_non_null(strstr(out.text, "No space left on device"));
    snprintf(path, sizeof(path), "%s.tmp", model);
    assert_false(file_exists(path));
    bytes = read_file(model, &size);
    assert_int_equal(size, strlen(old_bytes));
    assert_memory_equal(bytes, old_bytes, size);
    free(bytes);
  }
  if (umount(disk) != 0)
    fprintf(stderr, "cannot unmount %s: %s\n", disk, strerror(errno));
  rmdir(disk);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(bad_input_table, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(integer_and_float32_inputs, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(full_disk_keeps_old_output, setup_dir,
                                      teardown_dir),
  };

  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return cmocka_run_group_tests_name("cli_errors", tests, NULL, NULL);
}
