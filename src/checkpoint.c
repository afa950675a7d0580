/* Checkpoint files: the iteration-boundary hook, the collective write in
 * global column layout and the restore. docs/FORMATS.md describes the file
 * and docs/DESIGN.md how the ranks agree on when to write and stop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint_internal.h"
#include "h5io_internal.h"

/* Root attribute "format" of a checkpoint file, and its layout version. */
#define TCX_CHECKPOINT_FORMAT "tcorex-checkpoint"
#define TCX_CHECKPOINT_VERSION 1

/* Capacity of the identity and signature texts. */
enum { TCX_CHECKPOINT_TEXT_MAX = 8192, TCX_CHECKPOINT_NAME_MAX = 256 };

/* Integers are stored as doubles, exact below 2^53. */
#define TCX_CHECKPOINT_INTEGER_LIMIT 9007199254740992.0

struct tcx_checkpoint {
  char *path;           /* output file, NULL: write nothing */
  double every_seconds; /* <= 0: write only on a stop */
  double last_write;    /* rank 0's clock at the start or the last write */
  char identity[TCX_CHECKPOINT_TEXT_MAX];
  char signature[TCX_CHECKPOINT_TEXT_MAX]; /* of the outermost fit */
  int depth;                               /* nesting of begin_fit */
  volatile sig_atomic_t *stop_flag;
  int64_t stop_at;
  int64_t boundary; /* boundaries passed */
  int64_t writes;
  /* Votes summed over the ranks by the last tally, and this rank's
   * gradient flag for the next vote. */
  double sums[TCX_CHECKPOINT_N_VOTES];
  int gradient_bad;
  /* Resume file and its position, while not yet restored. */
  char *resume_path;
  int pending;
  char resume_phase[32];
  char resume_signature[TCX_CHECKPOINT_TEXT_MAX];
  int resume_stage;
  int64_t resume_iteration;
  int64_t resume_boundary;
};

int tcx_checkpoint_create(tcx_ctx *ctx, tcx_checkpoint **checkpoint)
{
  return tcx_calloc(ctx, 1, sizeof(**checkpoint), "checkpoint state",
                    checkpoint);
}

void tcx_checkpoint_destroy(tcx_checkpoint **checkpoint)
{
  if (!checkpoint || !*checkpoint)
    return;
  free((*checkpoint)->path);
  free((*checkpoint)->resume_path);
  free(*checkpoint);
  *checkpoint = NULL;
}

/* Copies text into a new allocation at *copy, freeing the old one. */
static int copy_text(tcx_ctx *ctx, const char *text, char **copy)
{
  const size_t length = strlen(text);
  char *fresh = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, (int64_t)length + 1, 1, "checkpoint path", &fresh));
  memcpy(fresh, text, length);
  free(*copy);
  *copy = fresh;

cleanup:
  return rc;
}

int tcx_checkpoint_set_output(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                              const char *path, double every_seconds)
{
  int rc = TCX_OK;

  TCX_CHECK(path && path[0] != '\0', ctx, TCX_ERR_USAGE,
            "the checkpoint path is empty; give a file name");
  TCX_CHECK(!isnan(every_seconds), ctx, TCX_ERR_USAGE,
            "invalid checkpoint interval NaN; give seconds, or 0 to write "
            "only when the fit is stopped");
  TCX_TRY(copy_text(ctx, path, &checkpoint->path));
  checkpoint->every_seconds = every_seconds;
  checkpoint->last_write = tcx_time();

cleanup:
  return rc;
}

int tcx_checkpoint_set_identity(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                                const char *identity)
{
  int rc = TCX_OK;

  TCX_CHECK(strlen(identity) < sizeof(checkpoint->identity), ctx,
            TCX_ERR_USAGE,
            "the checkpoint identity has %zu characters, more than the %zu "
            "that fit; use shorter file names",
            strlen(identity), sizeof(checkpoint->identity) - 1);
  strcpy(checkpoint->identity, identity);

cleanup:
  return rc;
}

void tcx_checkpoint_set_stop_flag(tcx_checkpoint *checkpoint,
                                  volatile sig_atomic_t *flag)
{
  checkpoint->stop_flag = flag;
}

void tcx_checkpoint_set_stop_at(tcx_checkpoint *checkpoint, int64_t boundary)
{
  checkpoint->stop_at = boundary;
}

int64_t tcx_checkpoint_boundary_count(const tcx_checkpoint *checkpoint)
{
  return checkpoint->boundary;
}

int64_t tcx_checkpoint_write_count(const tcx_checkpoint *checkpoint)
{
  return checkpoint->writes;
}

void tcx_checkpoint_add(tcx_checkpoint_state *state, const char *name,
                        tcx_checkpoint_kind kind, void *data, int64_t count)
{
  tcx_checkpoint_field *field = &state->fields[state->n_fields];

  /* The optimisers add a fixed number of fields, far below the maximum. */
  if (state->n_fields >= TCX_CHECKPOINT_MAX_FIELDS)
    abort();
  field->name = name;
  field->kind = kind;
  field->data = data;
  field->count = count;
  state->n_fields++;
}

/* Finds the line "key=..." in text and copies its value into value. Returns
 * 1 when found. */
static int find_value(const char *text, const char *key, char *value,
                      size_t size)
{
  const size_t key_length = strlen(key);
  const char *line = text;

  while (*line) {
    const char *end = strchr(line, '\n');
    const size_t length = end ? (size_t)(end - line) : strlen(line);

    if (length > key_length && strncmp(line, key, key_length) == 0 &&
        line[key_length] == '=') {
      const size_t value_length = length - key_length - 1;

      snprintf(value, size, "%.*s", (int)value_length, line + key_length + 1);
      return 1;
    }
    if (!end)
      break;
    line = end + 1;
  }
  return 0;
}

/* Compares two texts of key=value lines. On the first key of current whose
 * value differs from the one in stored, or is missing there, stores a
 * TCX_ERR_USAGE error and returns it. */
static int compare_identity(tcx_ctx *ctx, const char *path,
                            const char *stored, const char *current)
{
  const char *line = current;
  char key[TCX_CHECKPOINT_NAME_MAX];
  char old_value[TCX_CHECKPOINT_TEXT_MAX], new_value[TCX_CHECKPOINT_TEXT_MAX];

  while (*line) {
    const char *end = strchr(line, '\n');
    const size_t length = end ? (size_t)(end - line) : strlen(line);
    const char *equals = memchr(line, '=', length);

    if (equals && (size_t)(equals - line) < sizeof(key)) {
      snprintf(key, sizeof(key), "%.*s", (int)(equals - line), line);
      snprintf(new_value, sizeof(new_value), "%.*s",
               (int)(length - (size_t)(equals - line) - 1), equals + 1);
      if (!find_value(stored, key, old_value, sizeof(old_value)))
        snprintf(old_value, sizeof(old_value), "(not recorded)");
      if (strcmp(old_value, new_value) != 0)
        return tcx_error(ctx, TCX_ERR_USAGE,
                         "cannot resume from %s: it was written with %s = %s, "
                         "but this run has %s = %s. Resume with the inputs "
                         "and options of the interrupted run, or start "
                         "again without resuming",
                         path, key, old_value, key, new_value);
    }
    if (!end)
      break;
    line = end + 1;
  }
  return TCX_OK;
}

/* Reads an integer root attribute stored by checkpoint_write(). */
static int get_attr_integer(tcx_ctx *ctx, hid_t file, const char *path,
                            const char *name, int64_t *value)
{
  double number = 0.0;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_get_attr_double(ctx, file, path, name, &number));
  TCX_CHECK(number == floor(number) &&
                fabs(number) < TCX_CHECKPOINT_INTEGER_LIMIT,
            ctx, TCX_ERR_INPUT,
            "%s: root attribute \"%s\" is %g, not an integer; the file is "
            "not a valid tcorex checkpoint",
            path, name, number);
  *value = (int64_t)number;

cleanup:
  return rc;
}

/* Reads the root attributes of an open checkpoint file into checkpoint.
 * Not collective. */
static int read_position(tcx_ctx *ctx, tcx_checkpoint *checkpoint, hid_t file,
                         const char *path)
{
  char format[64] = "";
  int64_t version = 0, stage = 0;
  int rc = TCX_OK;

  rc = tcx_h5_get_attr_string(ctx, file, path, "format", format,
                              sizeof(format));
  TCX_CHECK(rc == TCX_OK && strcmp(format, TCX_CHECKPOINT_FORMAT) == 0, ctx,
            TCX_ERR_INPUT,
            "%s is not a tcorex checkpoint: its root attribute \"format\" is "
            "missing or not \"%s\". Pass a file that --checkpoint wrote",
            path, TCX_CHECKPOINT_FORMAT);
  TCX_TRY(get_attr_integer(ctx, file, path, "format_version", &version));
  TCX_CHECK(version == TCX_CHECKPOINT_VERSION, ctx, TCX_ERR_INPUT,
            "%s has checkpoint format version %lld, but this tcorex reads "
            "version %d; resume with the tcorex that wrote it",
            path, (long long)version, TCX_CHECKPOINT_VERSION);
  TCX_TRY(tcx_h5_get_attr_string(ctx, file, path, "phase",
                                 checkpoint->resume_phase,
                                 sizeof(checkpoint->resume_phase)));
  TCX_TRY(tcx_h5_get_attr_string(ctx, file, path, "signature",
                                 checkpoint->resume_signature,
                                 sizeof(checkpoint->resume_signature)));
  TCX_TRY(get_attr_integer(ctx, file, path, "stage", &stage));
  checkpoint->resume_stage = (int)stage;
  TCX_TRY(get_attr_integer(ctx, file, path, "iteration",
                           &checkpoint->resume_iteration));
  TCX_TRY(get_attr_integer(ctx, file, path, "boundary",
                           &checkpoint->resume_boundary));

cleanup:
  return rc;
}

int tcx_checkpoint_set_resume(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                              const char *path)
{
  char *identity = NULL;
  struct stat info;
  hid_t file = -1;
  int rc = TCX_OK;

  rc = stat(path, &info) == 0
           ? TCX_OK
           : tcx_error(ctx, TCX_ERR_INPUT,
                       "checkpoint file %s not found; give the file that "
                       "--checkpoint wrote, or start without --resume",
                       path);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_calloc(ctx, TCX_CHECKPOINT_TEXT_MAX, 1, "checkpoint identity",
                  &identity);
  if (rc == TCX_OK)
    rc = read_position(ctx, checkpoint, file, path);
  if (rc == TCX_OK)
    rc = tcx_h5_get_attr_string(ctx, file, path, "identity", identity,
                                TCX_CHECKPOINT_TEXT_MAX);
  if (rc == TCX_OK)
    rc = compare_identity(ctx, path, identity, checkpoint->identity);
  if (rc == TCX_OK)
    rc = copy_text(ctx, path, &checkpoint->resume_path);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  checkpoint->pending = 1;

cleanup:
  rc = tcx_h5_close(ctx, rc, file, path);
  free(identity);
  return tcx_ctx_agree(ctx, rc);
}

int tcx_checkpoint_begin_fit(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                             const char *signature)
{
  int rc = TCX_OK;

  if (!checkpoint)
    return TCX_OK;
  checkpoint->depth++;
  if (checkpoint->depth > 1)
    return TCX_OK;
  TCX_CHECK(strlen(signature) < sizeof(checkpoint->signature), ctx,
            TCX_ERR_INTERNAL, "fit signature of %zu characters is too long",
            strlen(signature));
  strcpy(checkpoint->signature, signature);
  checkpoint->last_write = tcx_time();
  if (checkpoint->pending)
    TCX_TRY(compare_identity(ctx, checkpoint->resume_path,
                             checkpoint->resume_signature, signature));

cleanup:
  return rc;
}

void tcx_checkpoint_end_fit(tcx_checkpoint *checkpoint)
{
  if (checkpoint && checkpoint->depth > 0)
    checkpoint->depth--;
}

void tcx_checkpoint_format_double(double value, char *text, size_t size)
{
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(text, size, "%.*g", digits, value);
    if (strtod(text, NULL) == value)
      return;
  }
}

const char *tcx_checkpoint_pending_phase(const tcx_checkpoint *checkpoint)
{
  return checkpoint && checkpoint->pending ? checkpoint->resume_phase : NULL;
}

/* Returns the dataset name of a field. */
static void field_dataset(const tcx_checkpoint_field *field, char *name,
                          size_t size)
{
  snprintf(name, size, "state/%s", field->name);
}

int tcx_checkpoint_read_integer(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                                const char *name, int64_t *value)
{
  const char *path = checkpoint->resume_path;
  char dataset[TCX_CHECKPOINT_NAME_MAX];
  double *data = NULL;
  int64_t dims[3] = {0, 0, 0};
  int n_dims = 0;
  int rc = TCX_OK;

  snprintf(dataset, sizeof(dataset), "state/%s", name);
  TCX_TRY(tcx_h5_read_replicated(ctx, path, dataset, &n_dims, dims, &data));
  TCX_CHECK(n_dims == 1 && dims[0] == 1 && data[0] == floor(data[0]) &&
                data[0] >= 0.0 && data[0] < TCX_CHECKPOINT_INTEGER_LIMIT,
            ctx, TCX_ERR_INPUT,
            "%s: dataset \"/%s\" must contain one integer >= 0; the file is "
            "not a valid tcorex checkpoint",
            path, dataset);
  *value = (int64_t)data[0];

cleanup:
  free(data);
  return rc;
}

/* Restores one field from the resume file. Collective. */
static int restore_field(tcx_ctx *ctx, const char *path,
                         const tcx_checkpoint_state *state,
                         const tcx_checkpoint_field *field)
{
  char name[TCX_CHECKPOINT_NAME_MAX];
  double *data = NULL;
  int64_t dims[3] = {0, 0, 0};
  int n_dims = 0;
  int rc = TCX_OK;

  if (field->count == 0)
    return TCX_OK;
  field_dataset(field, name, sizeof(name));
  if (field->kind == TCX_CHECKPOINT_COLUMNS) {
    const int64_t shape[2] = {field->count, state->n_vars};

    TCX_TRY(tcx_h5_read_columns(ctx, path, name, 2, shape, state->col_begin,
                                state->n_local, &data));
    memcpy(field->data, data,
           (size_t)(field->count * state->n_local) * sizeof(double));
    goto cleanup;
  }
  TCX_TRY(tcx_h5_read_replicated(ctx, path, name, &n_dims, dims, &data));
  TCX_CHECK(n_dims == 1 && dims[0] == field->count, ctx, TCX_ERR_INPUT,
            "%s: dataset \"/%s\" has %lld entries in %d dimension(s), but "
            "the fit being resumed needs %lld in 1; the file is not a valid "
            "checkpoint of this fit",
            path, name, (long long)dims[0], n_dims, (long long)field->count);
  if (field->kind == TCX_CHECKPOINT_DOUBLES) {
    memcpy(field->data, data, (size_t)field->count * sizeof(double));
  } else {
    int64_t *integers = field->data;

    for (int64_t k = 0; k < field->count; k++)
      integers[k] = (int64_t)data[k];
  }

cleanup:
  free(data);
  return rc;
}

int tcx_checkpoint_restore(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                           tcx_checkpoint_state *state)
{
  int rc = TCX_OK;

  TCX_CHECK(checkpoint->pending &&
                strcmp(checkpoint->resume_phase, state->phase) == 0,
            ctx, TCX_ERR_INTERNAL,
            "no pending checkpoint of phase \"%s\" to restore (pending: %s)",
            state->phase,
            checkpoint->pending ? checkpoint->resume_phase : "none");
  TCX_CHECK(checkpoint->resume_stage >= 0 &&
                checkpoint->resume_stage < state->n_stages &&
                checkpoint->resume_iteration >= 1,
            ctx, TCX_ERR_INPUT,
            "%s: stage %d, iteration %lld are outside this fit's %d "
            "annealing stages; the file is not a valid checkpoint of this fit",
            checkpoint->resume_path, checkpoint->resume_stage,
            (long long)checkpoint->resume_iteration, state->n_stages);
  for (int k = 0; k < state->n_fields; k++)
    TCX_TRY(restore_field(ctx, checkpoint->resume_path, state,
                          &state->fields[k]));
  state->stage = checkpoint->resume_stage;
  state->iteration = checkpoint->resume_iteration;
  /* The fit passes the stored boundary again when it continues. */
  checkpoint->boundary = checkpoint->resume_boundary - 1;
  checkpoint->pending = 0;
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "checkpoint: resumed the %s phase from %s at annealing stage %d, "
          "iteration %lld",
          state->phase, checkpoint->resume_path, state->stage + 1,
          (long long)state->iteration);

cleanup:
  return rc;
}

void tcx_checkpoint_vote(const tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                         double *votes)
{
  for (int k = 0; k < TCX_CHECKPOINT_N_VOTES; k++)
    votes[k] = 0.0;
  if (!checkpoint)
    return;
  if (checkpoint->stop_flag && *checkpoint->stop_flag)
    votes[0] = 1.0;
  /* Rank 0's clock alone decides a timed write. */
  if (tcx_ctx_rank(ctx) == 0 && checkpoint->path &&
      checkpoint->every_seconds > 0.0 &&
      tcx_time() - checkpoint->last_write >= checkpoint->every_seconds)
    votes[1] = 1.0;
  if (checkpoint->gradient_bad)
    votes[2] = 1.0;
}

void tcx_checkpoint_tally(tcx_checkpoint *checkpoint, const double *sums)
{
  if (!checkpoint)
    return;
  for (int k = 0; k < TCX_CHECKPOINT_N_VOTES; k++)
    checkpoint->sums[k] = sums[k];
}

/* Returns 1 when every double of the fields is finite on this rank. */
static int state_is_finite(const tcx_checkpoint_state *state)
{
  for (int f = 0; f < state->n_fields; f++) {
    const tcx_checkpoint_field *field = &state->fields[f];
    const double *data = field->data;
    int64_t count = field->count;

    if (field->kind == TCX_CHECKPOINT_INTEGERS)
      continue;
    if (field->kind == TCX_CHECKPOINT_COLUMNS)
      count *= state->n_local;
    for (int64_t k = 0; k < count; k++)
      if (!isfinite(data[k]))
        return 0;
  }
  return 1;
}

/* Writes the fields and the position into PATH.tmp and renames it to PATH.
 * Collective. */
static int write_fields(tcx_ctx *ctx, const tcx_checkpoint *checkpoint,
                        const tcx_checkpoint_state *state, tcx_h5_output *out)
{
  char name[TCX_CHECKPOINT_NAME_MAX];
  double *converted = NULL;
  int rc = TCX_OK;

  for (int f = 0; f < state->n_fields; f++) {
    const tcx_checkpoint_field *field = &state->fields[f];
    const int64_t dims[2] = {field->count, state->n_vars};

    if (field->count == 0)
      continue;
    field_dataset(field, name, sizeof(name));
    if (field->kind == TCX_CHECKPOINT_COLUMNS) {
      TCX_TRY(tcx_h5_write_columns(ctx, out, name, TCX_H5_DOUBLE, 2, dims,
                                   state->col_begin, state->n_local,
                                   field->data));
    } else if (field->kind == TCX_CHECKPOINT_DOUBLES) {
      TCX_TRY(tcx_h5_write_replicated(ctx, out, name, TCX_H5_DOUBLE, 1, dims,
                                      field->data));
    } else {
      const int64_t *integers = field->data;

      TCX_TRY(tcx_calloc(ctx, field->count, sizeof(double), name,
                         &converted));
      for (int64_t k = 0; k < field->count; k++)
        converted[k] = (double)integers[k];
      TCX_TRY(tcx_h5_write_replicated(ctx, out, name, TCX_H5_DOUBLE, 1, dims,
                                      converted));
      free(converted);
      converted = NULL;
    }
  }
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "format", TCX_CHECKPOINT_FORMAT));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "format_version",
                                TCX_CHECKPOINT_VERSION));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "version", TCX_VERSION));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "identity", checkpoint->identity));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "signature",
                                   checkpoint->signature));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "phase", state->phase));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "stage", state->stage));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_stages", state->n_stages));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "iteration", state->iteration));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "boundary", checkpoint->boundary));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "objective", state->objective));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "variables", state->n_vars));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "ranks", tcx_ctx_size(ctx)));

cleanup:
  free(converted);
  return rc;
}

/* Writes a checkpoint of state, after the ranks agree that every value in
 * it is finite. Collective. */
static int checkpoint_write(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                            const tcx_checkpoint_state *state)
{
  tcx_h5_output *out = NULL;
  const double start = tcx_time();
  int rc = TCX_OK;

  rc = state_is_finite(state)
           ? TCX_OK
           : tcx_error(ctx, TCX_ERR_NUMERIC,
                       "the %s fit broke down before iteration %lld of "
                       "annealing stage %d of %d: its state contains a value "
                       "that is not finite, so no checkpoint is written and "
                       "the previous one is kept",
                       state->phase, (long long)state->iteration,
                       state->stage + 1, state->n_stages);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_h5_create(ctx, checkpoint->path, &out));
  TCX_TRY(write_fields(ctx, checkpoint, state, out));
  TCX_TRY(tcx_h5_commit(ctx, &out));
  checkpoint->writes++;
  checkpoint->last_write = tcx_time();
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "checkpoint: wrote %s (%s phase, annealing stage %d, iteration "
          "%lld) in %.2f s",
          checkpoint->path, state->phase, state->stage + 1,
          (long long)state->iteration, tcx_time() - start);

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

/* Stores the breakdown error for an objective that is not finite or too
 * large, or for a non-finite gradient. */
static int breakdown(tcx_ctx *ctx, const tcx_checkpoint *checkpoint,
                     const tcx_checkpoint_state *state, const char *what)
{
  char kept[1024] = "";
  char last[128] = "no finite objective yet";

  if (checkpoint && checkpoint->writes > 0)
    snprintf(kept, sizeof(kept), " The last checkpoint, %s, is kept.",
             checkpoint->path);
  else if (checkpoint && checkpoint->path)
    snprintf(kept, sizeof(kept),
             " No checkpoint was written before; %s is left as it was.",
             checkpoint->path);
  if (isfinite(state->last_objective))
    snprintf(last, sizeof(last), "last finite %s %.10g",
             state->objective_name, state->last_objective);
  return tcx_error(ctx, TCX_ERR_NUMERIC,
                   "numerical breakdown in the %s fit at iteration %lld of "
                   "annealing stage %d of %d: %s (%s). No model is "
                   "written.%s Lower the learning rate, use fewer factors, "
                   "or check the input for near-duplicate variables",
                   state->phase, (long long)state->iteration,
                   state->stage + 1, state->n_stages, what, last, kept);
}

/* Returns 1 when a gradient entry on this rank is not finite. */
static int gradient_is_bad(const tcx_checkpoint_state *state)
{
  for (int64_t k = 0; k < state->gradient_count; k++)
    if (!isfinite(state->gradient[k]))
      return 1;
  return 0;
}

int tcx_checkpoint_boundary(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                            const tcx_checkpoint_state *state)
{
  char what[160];
  int stop, due, rc = TCX_OK;

  if (!isfinite(state->objective) ||
      fabs(state->objective) > TCX_CHECKPOINT_OBJECTIVE_LIMIT) {
    snprintf(what, sizeof(what), "the %s is %g", state->objective_name,
             state->objective);
    return breakdown(ctx, checkpoint, state, what);
  }
  if (!checkpoint)
    return TCX_OK;
  checkpoint->boundary++;
  if (checkpoint->sums[2] > 0.0)
    return breakdown(ctx, checkpoint, state,
                     "the gradient of the previous iteration has an entry "
                     "that is not finite");
  checkpoint->gradient_bad = gradient_is_bad(state);

  stop = checkpoint->sums[0] > 0.0 ||
         (checkpoint->stop_at > 0 &&
          checkpoint->boundary == checkpoint->stop_at);
  due = checkpoint->path && (stop || checkpoint->sums[1] > 0.0);
  for (int k = 0; k < TCX_CHECKPOINT_N_VOTES; k++)
    checkpoint->sums[k] = 0.0;
  if (due)
    TCX_TRY(checkpoint_write(ctx, checkpoint, state));
  if (stop) {
    if (checkpoint->path)
      rc = tcx_error(ctx, TCX_ERR_INTERRUPTED,
                     "stopped on request before iteration %lld of annealing "
                     "stage %d of %d of the %s fit; no model is written. The "
                     "state is saved in %s; resume from it to continue",
                     (long long)state->iteration, state->stage + 1,
                     state->n_stages, state->phase, checkpoint->path);
    else
      rc = tcx_error(ctx, TCX_ERR_INTERRUPTED,
                     "stopped on request before iteration %lld of annealing "
                     "stage %d of %d of the %s fit; no model is written and, "
                     "without a checkpoint file, the progress is lost",
                     (long long)state->iteration, state->stage + 1,
                     state->n_stages, state->phase);
  }

cleanup:
  return rc;
}
