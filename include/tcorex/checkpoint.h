/* Checkpoint and restart of linear CorEx and T-CorEx fits. A checkpoint
 * object travels in the fit's options (tcx_corex_options.checkpoint,
 * tcx_tcorex_options.checkpoint). At every iteration boundary the fit calls
 * it, and it decides whether to write the optimiser state to an HDF5 file,
 * to stop the fit, or both.
 * A fit that starts with a resume file set continues from the state stored
 * there and produces the same result as an uninterrupted fit: bit for bit
 * on the same number of ranks, to rounding on another. docs/FORMATS.md
 * describes the file. */
#ifndef TCOREX_CHECKPOINT_H
#define TCOREX_CHECKPOINT_H

#include <signal.h>

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tcx_checkpoint tcx_checkpoint;

/* Creates a checkpoint object that writes nothing, resumes nothing and
 * never stops a fit. Not collective. The caller releases *checkpoint with
 * tcx_checkpoint_destroy(). */
int tcx_checkpoint_create(tcx_ctx *ctx, tcx_checkpoint **checkpoint);

/* Frees *checkpoint and sets it to NULL. Accepts NULL. Not collective. */
void tcx_checkpoint_destroy(tcx_checkpoint **checkpoint);

/* Writes the state to path (through path.tmp and a rename) every
 * every_seconds seconds of rank 0's clock, counted from the start of the
 * fit or the previous write, and whenever the fit stops on request.
 * every_seconds <= 0 writes only on a stop request. Not collective, but
 * every rank must pass the same values. */
int tcx_checkpoint_set_output(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                              const char *path, double every_seconds);

/* Stores text that identifies the caller's inputs and options, as lines of
 * key=value (for example the input path and shape). It is written into
 * every checkpoint, and a resume fails with TCX_ERR_USAGE naming the first
 * key whose value differs. Not collective. */
int tcx_checkpoint_set_identity(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                                const char *identity);

/* Reads the position and identity of the checkpoint file path, so that the
 * next fit continues from it. Fails with TCX_ERR_INPUT when path is missing
 * or not a tcorex checkpoint, and with TCX_ERR_USAGE when its identity
 * differs from the one set with tcx_checkpoint_set_identity(), which must
 * come first. Collective. */
int tcx_checkpoint_set_resume(tcx_ctx *ctx, tcx_checkpoint *checkpoint,
                              const char *path);

/* Makes the fit stop at the next iteration boundary after *flag becomes
 * nonzero on any rank, for example from a signal handler. The ranks agree
 * on the flag inside a reduction that the iteration makes anyway. The flag
 * is borrowed and must outlive the fits. Not collective. */
void tcx_checkpoint_set_stop_flag(tcx_checkpoint *checkpoint,
                                  volatile sig_atomic_t *flag);

/* Makes the fit stop at its boundary-th iteration boundary (counted from 1
 * over the whole fit, including a resumed part, as tcx_checkpoint_boundary
 * _count() reports). 0 turns this off. Deterministic, so tests use it in
 * place of a signal. Not collective. */
void tcx_checkpoint_set_stop_at(tcx_checkpoint *checkpoint, int64_t boundary);

/* Number of iteration boundaries that the fits have passed. Not
 * collective. */
int64_t tcx_checkpoint_boundary_count(const tcx_checkpoint *checkpoint);

/* Number of checkpoint files written so far. Not collective. */
int64_t tcx_checkpoint_write_count(const tcx_checkpoint *checkpoint);

#ifdef __cplusplus
}
#endif

#endif
