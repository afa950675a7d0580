/* Optimiser building blocks used by T-CorEx: the Adam update, the plateau
 * stopping rule of the published T-CorEx code and the exact proximal map of
 * 1-D total variation. All purely local: no MPI, no allocation. */
#ifndef TCOREX_OPTIM_H
#define TCOREX_OPTIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Adam settings and step counter (Kingma and Ba, ICLR 2015). */
typedef struct tcx_adam {
  double learning_rate; /* step size */
  double beta1;         /* decay of the first moment */
  double beta2;         /* decay of the second moment */
  double epsilon;       /* added to sqrt(v_hat) */
  int64_t step;         /* steps taken so far */
} tcx_adam;

/* Sets learning_rate, beta1 0.9, beta2 0.999, epsilon 1e-8, step 0. */
void tcx_adam_init(tcx_adam *adam, double learning_rate);

/* Takes one Adam step on x[0..n-1] with gradient grad, updating the moment
 * arrays first_moment and second_moment (zero before the first step):
 * x -= lr * m_hat / (sqrt(v_hat) + epsilon), m_hat and v_hat bias-corrected
 * with the incremented step counter. */
void tcx_adam_step(tcx_adam *adam, int64_t n, double *x, const double *grad,
                   double *first_moment, double *second_moment);

/* Returns 1 when the last 2 * window entries of history[0..n-1] have reached
 * a plateau: |mean(previous window) - mean(last window)| /
 * |mean(previous window) + 1e-6| < tol. Returns 0 when n < 2 * window. */
int tcx_optim_plateau(const double *history, int64_t n, int64_t window,
                      double tol);

/* Computes x = argmin_x 1/2 sum_k (x_k - y_k)^2 + lambda sum_k |x_{k+1} -
 * x_k| for k over 0..n-1 with Condat's direct algorithm for 1-D total
 * variation denoising (2013), O(n) in practice. y and x are read and written
 * with the given strides (in elements) and must not overlap. lambda <= 0
 * copies y. */
void tcx_optim_tv_prox(int64_t n, const double *y, int64_t y_stride,
                       double lambda, double *x, int64_t x_stride);

#ifdef __cplusplus
}
#endif

#endif
