/* The hook that the optimisers call at iteration boundaries, and the state
 * description that it writes and restores. Not installed. */
#ifndef TCOREX_CHECKPOINT_INTERNAL_H
#define TCOREX_CHECKPOINT_INTERNAL_H

#include "tcorex/checkpoint.h"

/* Number of doubles that tcx_checkpoint_vote() adds to a reduction: this
 * rank's stop flag, rank 0's vote for a timed write, and this rank's flag
 * for a non-finite gradient at the previous boundary. */
enum { TCX_CHECKPOINT_N_VOTES = 3 };

/* Maximum fields of one state. */
enum { TCX_CHECKPOINT_MAX_FIELDS = 24 };

/* An objective of larger magnitude counts as a breakdown, because no fit of
 * standardised data reaches it and the next products overflow. */
#define TCX_CHECKPOINT_OBJECTIVE_LIMIT 1e100

typedef enum tcx_checkpoint_kind {
  TCX_CHECKPOINT_COLUMNS = 0, /* double [rows, n_local]: this rank's columns
                                 of a [rows, n_vars] dataset */
  TCX_CHECKPOINT_DOUBLES,     /* double [count], the same on every rank */
  TCX_CHECKPOINT_INTEGERS     /* int64_t [count], the same on every rank */
} tcx_checkpoint_kind;

/* One array of the optimiser state. For a restore, data must have room for
 * count (kind DOUBLES or INTEGERS) or rows * n_local elements. */
typedef struct tcx_checkpoint_field {
  const char *name; /* dataset name without the leading "/state/" */
  tcx_checkpoint_kind kind;
  void *data;
  int64_t count; /* rows for kind COLUMNS */
} tcx_checkpoint_field;

/* The position of a fit and the arrays that let it continue. */
typedef struct tcx_checkpoint_state {
  const char *phase;  /* "linear" (linear CorEx, also T-CorEx's
                         initialisation) or "tcorex" */
  int stage;          /* 0-based annealing stage */
  int n_stages;
  int64_t iteration;  /* 1-based iteration within the stage that starts at
                         this boundary */
  double objective;   /* at this boundary, the same on every rank */
  double last_objective; /* last finite objective before it, NAN if none */
  const char *objective_name; /* "TC" or "objective", for messages */
  int64_t col_begin;
  int64_t n_local;
  int64_t n_vars;
  /* Local gradient at this boundary or NULL: when an entry is not finite,
   * the next boundary stops with a breakdown. */
  const double *gradient;
  int64_t gradient_count;
  int n_fields;
  tcx_checkpoint_field fields[TCX_CHECKPOINT_MAX_FIELDS];
} tcx_checkpoint_state;

/* Appends a field to state. */
void tcx_checkpoint_add(tcx_checkpoint_state *state, const char *name,
                        tcx_checkpoint_kind kind, void *data, int64_t count);

/* Starts a fit: records its signature (lines of key=value naming the
 * method, the data shape and every option that changes the result) and, on
 * a resume, fails with TCX_ERR_USAGE naming the first key whose stored
 * value differs. Calls nest (T-CorEx's linear CorEx initialisation); only
 * the outermost one counts. Pair each, also a failed one, with
 * tcx_checkpoint_end_fit().
 * Accepts checkpoint NULL. Not collective. */
int tcx_checkpoint_begin_fit(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                             const char *signature);
void tcx_checkpoint_end_fit(tcx_checkpoint *checkpoint);

/* Writes value with the fewest digits (at most 17) that read back as the
 * same double, for signatures that compare exactly and read well. */
void tcx_checkpoint_format_double(double value, char *text, size_t size);

/* Returns the phase stored in the resume file when it has not been
 * restored yet, else NULL. Accepts NULL. */
const char *tcx_checkpoint_pending_phase(const tcx_checkpoint *checkpoint);

/* Reads an integer field of the pending resume file (the length of a
 * history, say) before the arrays are allocated. Collective. */
int tcx_checkpoint_read_integer(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                                const char *name, int64_t *value);

/* Restores every field of state from the resume file and sets state->stage
 * and state->iteration. Fails unless the file's phase is state->phase.
 * Afterwards nothing is pending. Collective. */
int tcx_checkpoint_restore(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                           tcx_checkpoint_state *state);

/* Fills votes[0 .. TCX_CHECKPOINT_N_VOTES) with this rank's part of the
 * decision at the next boundary, to be summed over ranks in a reduction
 * that the iteration makes anyway. Zeros when checkpoint is NULL. Not
 * collective. */
void tcx_checkpoint_vote(const tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                         double *votes);

/* Records the votes summed over the ranks. Accepts NULL. Not collective. */
void tcx_checkpoint_tally(tcx_checkpoint *checkpoint, const double *sums);

/* Runs at every iteration boundary. Fails with TCX_ERR_NUMERIC when the
 * objective is not finite or beyond TCX_CHECKPOINT_OBJECTIVE_LIMIT, or the
 * tally reports a non-finite gradient, and writes nothing then. Otherwise
 * writes the state when a timed write or a stop is due, and returns
 * TCX_ERR_INTERRUPTED on a stop. The decisions depend only on values that
 * are the same on every rank, so all ranks return the same status.
 * Collective when it writes. Accepts checkpoint NULL (checks only). */
int tcx_checkpoint_boundary(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                            const tcx_checkpoint_state *state);

#endif
