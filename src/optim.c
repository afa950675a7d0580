#include <math.h>

#include "tcorex/optim.h"

void tcx_adam_init(tcx_adam *adam, double learning_rate)
{
  adam->learning_rate = learning_rate;
  adam->beta1 = 0.9;
  adam->beta2 = 0.999;
  adam->epsilon = 1e-8;
  adam->step = 0;
}

void tcx_adam_step(tcx_adam *adam, int64_t n, double *x, const double *grad,
                   double *first_moment, double *second_moment)
{
  const double beta1 = adam->beta1;
  const double beta2 = adam->beta2;
  double rate, inv_correction2;

  /* The bias corrections enter as one scale of the rate and one factor
   * under the root, so that an entry costs one division and one root. */
  adam->step++;
  rate = adam->learning_rate / (1.0 - pow(beta1, (double)adam->step));
  inv_correction2 = 1.0 / (1.0 - pow(beta2, (double)adam->step));
  for (int64_t k = 0; k < n; k++) {
    const double g = grad[k];
    const double m = beta1 * first_moment[k] + (1.0 - beta1) * g;
    const double v = beta2 * second_moment[k] + (1.0 - beta2) * g * g;

    first_moment[k] = m;
    second_moment[k] = v;
    x[k] -= rate * m / (sqrt(v * inv_correction2) + adam->epsilon);
  }
}

int tcx_optim_plateau(const double *history, int64_t n, int64_t window,
                      double tol)
{
  double previous = 0.0, last = 0.0;

  if (window < 1 || n < 2 * window)
    return 0;
  for (int64_t k = n - 2 * window; k < n - window; k++)
    previous += history[k];
  for (int64_t k = n - window; k < n; k++)
    last += history[k];
  previous /= (double)window;
  last /= (double)window;
  return fabs(previous - last) / fabs(previous + 1e-6) < tol;
}

/* Sets x[first..last] (inclusive) to value. */
static void fill_segment(double *x, int64_t stride, int64_t first,
                         int64_t last, double value)
{
  for (int64_t k = first; k <= last; k++)
    x[k * stride] = value;
}

/* Condat's algorithm scans y once, keeping the current segment [k0, k] and
 * the range [vmin, vmax] that its value may still take. umin and umax are the
 * dual variables at k for the two extreme values. When one of them leaves
 * [-lambda, lambda], the segment ends at the last point where that extreme
 * was feasible (kminus or kplus), and the scan restarts after it. */
void tcx_optim_tv_prox(int64_t n, const double *y, int64_t y_stride,
                       double lambda, double *x, int64_t x_stride)
{
  int64_t k = 0, k0 = 0, kminus = 0, kplus = 0;
  double vmin, vmax, umin, umax;

  if (n <= 0)
    return;
  if (lambda <= 0.0 || n == 1) {
    for (int64_t i = 0; i < n; i++)
      x[i * x_stride] = y[i * y_stride];
    return;
  }
  vmin = y[0] - lambda;
  vmax = y[0] + lambda;
  umin = lambda;
  umax = -lambda;
  for (;;) {
    if (k == n - 1) {
      if (umin < 0.0) {
        fill_segment(x, x_stride, k0, kminus, vmin);
        k = k0 = kminus = kminus + 1;
        vmin = y[k * y_stride];
        umin = lambda;
        umax = vmin + lambda - vmax;
      } else if (umax > 0.0) {
        fill_segment(x, x_stride, k0, kplus, vmax);
        k = k0 = kplus = kplus + 1;
        vmax = y[k * y_stride];
        umax = -lambda;
        umin = vmax - lambda - vmin;
      } else {
        fill_segment(x, x_stride, k0, n - 1,
                     vmin + umin / (double)(k - k0 + 1));
        return;
      }
      continue;
    }
    umin += y[(k + 1) * y_stride] - vmin;
    umax += y[(k + 1) * y_stride] - vmax;
    if (umin < -lambda) {
      /* Negative jump after kminus. */
      fill_segment(x, x_stride, k0, kminus, vmin);
      k = k0 = kminus = kplus = kminus + 1;
      vmin = y[k * y_stride];
      vmax = vmin + 2.0 * lambda;
      umin = lambda;
      umax = -lambda;
    } else if (umax > lambda) {
      /* Positive jump after kplus. */
      fill_segment(x, x_stride, k0, kplus, vmax);
      k = k0 = kminus = kplus = kplus + 1;
      vmax = y[k * y_stride];
      vmin = vmax - 2.0 * lambda;
      umin = lambda;
      umax = -lambda;
    } else {
      k++;
      if (umin >= lambda) {
        vmin += (umin - lambda) / (double)(k - k0 + 1);
        umin = lambda;
        kminus = k;
      }
      if (umax <= -lambda) {
        vmax += (umax + lambda) / (double)(k - k0 + 1);
        umax = -lambda;
        kplus = k;
      }
    }
  }
}
