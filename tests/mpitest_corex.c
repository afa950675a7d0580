/* Distributed linear CorEx. The fit on the world communicator, with the
 * columns split over the ranks, must equal a single-process fit of the same
 * data computed by rank 0 on MPI_COMM_SELF. Planted clusters are recovered,
 * and invalid input fails on every rank with one message. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/corex_impl.h"
#include "tcorex/block.h"
#include "tcorex/corex.h"
#include "tcorex/prep.h"
#include "tcx_test.h"

/* Results of different rank counts differ only by the order of summation in
 * the reductions. */
#define RANK_INVARIANCE_TOL 1e-8

/* A fit of one data set (n x p, all columns) replicated on every rank. */
typedef struct fit_reference {
  int status;
  int64_t n_history;
  int64_t iterations;
  int converged;
  double tc;
  double *u;       /* m x p */
  double *weights; /* m x p */
  double *factors; /* m x p */
  double *mi;      /* m x p */
  int32_t *clusters;
  double *tcs;
  double *history;
} fit_reference;

/* n x p data from m_true planted factors: variable i loads on factor
 * i % m_true with a loading between 0.6 and 1.2, plus unit noise. */
static double *planted_data(int64_t n, int64_t p, int64_t m_true,
                            uint64_t seed)
{
  double *x = calloc((size_t)(n * p), sizeof(double));
  double *latent = calloc((size_t)(n * m_true), sizeof(double));

  assert_non_null(x);
  assert_non_null(latent);
  tcx_test_randn(seed, latent, n * m_true);
  tcx_test_randn(seed + 1, x, n * p);
  for (int64_t row = 0; row < n; row++)
    for (int64_t i = 0; i < p; i++) {
      const double loading = 0.6 + 0.6 * (double)(i % 7) / 6.0;

      x[row * p + i] += loading * latent[row * m_true + i % m_true];
    }
  free(latent);
  return x;
}

static double *read_chunk(int64_t n, int64_t p)
{
  const char *path = TCX_TEST_DATA_DIR "/corex_chunks_p128.h5";
  double *all = calloc(160 * 128, sizeof(double));
  hid_t file, dataset;

  assert_non_null(all);
  assert_true(n <= 160 && p == 128);
  file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(file >= 0);
  dataset = H5Dopen2(file, "/data", H5P_DEFAULT);
  assert_true(dataset >= 0);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, all) >= 0);
  assert_true(H5Dclose(dataset) >= 0);
  assert_true(H5Fclose(file) >= 0);
  return all;
}

static double *columns_of(const double *full, int64_t n, int64_t p,
                          int64_t begin, int64_t count)
{
  double *x = calloc((size_t)(n * count), sizeof(double));

  assert_non_null(x);
  for (int64_t row = 0; row < n; row++)
    memcpy(x + row * count, full + row * p + begin,
           (size_t)count * sizeof(double));
  return x;
}

/* Standardises and fits x (n x n_local, columns begin.. of p) on ctx. */
static int prep_and_fit(tcx_ctx *ctx, const tcx_corex_options *options,
                        double *x, int64_t n, int64_t n_local, int64_t begin,
                        int64_t p, tcx_corex_result *result)
{
  double *mean = calloc((size_t)n_local, sizeof(double));
  double *std = calloc((size_t)n_local, sizeof(double));
  int64_t n_constant = 0;
  int status;

  assert_non_null(mean);
  assert_non_null(std);
  status = tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD, n, n_local,
                                begin, x, mean, std, &n_constant);
  status = tcx_ctx_agree(ctx, status);
  if (status == TCX_OK)
    status = tcx_corex_fit(ctx, options, x, n, n_local, begin, p, result);
  free(mean);
  free(std);
  return status;
}

static void broadcast(void *buffer, int64_t count, MPI_Datatype type)
{
  assert_int_equal(MPI_Bcast(buffer, (int)count, type, 0, MPI_COMM_WORLD),
                   MPI_SUCCESS);
}

/* Rank 0 fits all columns on MPI_COMM_SELF and sends the result to every
 * rank. */
static void serial_reference(const double *full, int64_t n, int64_t p,
                             const tcx_corex_options *options,
                             fit_reference *reference)
{
  const int64_t m = options->n_factors;
  int64_t header[3] = {0, 0, 0};

  memset(reference, 0, sizeof(*reference));
  reference->u = calloc((size_t)(m * p), sizeof(double));
  reference->weights = calloc((size_t)(m * p), sizeof(double));
  reference->factors = calloc((size_t)(m * p), sizeof(double));
  reference->mi = calloc((size_t)(m * p), sizeof(double));
  reference->clusters = calloc((size_t)p, sizeof(int32_t));
  reference->tcs = calloc((size_t)m, sizeof(double));
  assert_true(reference->u && reference->weights && reference->factors &&
              reference->mi && reference->clusters && reference->tcs);

  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    tcx_ctx *self = NULL;
    tcx_corex_result result = {0};
    double *x = columns_of(full, n, p, 0, p);

    assert_int_equal(tcx_ctx_create(MPI_COMM_SELF, &self), TCX_OK);
    reference->status = prep_and_fit(self, options, x, n, p, 0, p, &result);
    if (reference->status == TCX_OK) {
      memcpy(reference->u, result.u, (size_t)(m * p) * sizeof(double));
      memcpy(reference->weights, result.weights,
             (size_t)(m * p) * sizeof(double));
      memcpy(reference->factors, result.factors,
             (size_t)(m * p) * sizeof(double));
      memcpy(reference->mi, result.mi, (size_t)(m * p) * sizeof(double));
      memcpy(reference->clusters, result.clusters,
             (size_t)p * sizeof(int32_t));
      memcpy(reference->tcs, result.tcs, (size_t)m * sizeof(double));
      reference->tc = result.tc;
      reference->n_history = result.n_history;
      reference->iterations = result.iterations;
      reference->converged = result.converged;
      reference->history = result.history;
      result.history = NULL;
    }
    tcx_corex_result_free(&result);
    tcx_ctx_destroy(&self);
    free(x);
    header[0] = reference->status;
    header[1] = reference->n_history;
    header[2] = reference->iterations;
  }
  broadcast(header, 3, MPI_INT64_T);
  reference->status = (int)header[0];
  reference->n_history = header[1];
  reference->iterations = header[2];
  if (!reference->history)
    reference->history =
        calloc((size_t)reference->n_history + 1, sizeof(double));
  assert_non_null(reference->history);
  broadcast(reference->u, m * p, MPI_DOUBLE);
  broadcast(reference->weights, m * p, MPI_DOUBLE);
  broadcast(reference->factors, m * p, MPI_DOUBLE);
  broadcast(reference->mi, m * p, MPI_DOUBLE);
  broadcast(reference->clusters, p, MPI_INT32_T);
  broadcast(reference->tcs, m, MPI_DOUBLE);
  broadcast(&reference->tc, 1, MPI_DOUBLE);
  broadcast(&reference->converged, 1, MPI_INT);
  broadcast(reference->history, reference->n_history, MPI_DOUBLE);
}

static void reference_free(fit_reference *reference)
{
  free(reference->u);
  free(reference->weights);
  free(reference->factors);
  free(reference->mi);
  free(reference->clusters);
  free(reference->tcs);
  free(reference->history);
}

/* Returns 1 when the local m x n_local block of actual matches columns
 * begin.. of the m x p reference within RANK_INVARIANCE_TOL (relative to
 * max(1, |reference|)). Prints the first mismatch. */
static int slice_matches(const double *actual, const double *reference,
                         int64_t m, int64_t n_local, int64_t begin, int64_t p,
                         const char *what)
{
  for (int64_t j = 0; j < m; j++)
    for (int64_t i = 0; i < n_local; i++) {
      const double want = reference[j * p + begin + i];
      const double got = actual[j * n_local + i];

      if (!(fabs(got - want) <= RANK_INVARIANCE_TOL * fmax(1.0, fabs(want)))) {
        fprintf(stderr, "[rank %d] %s[%lld, %lld]: %.17g, single process "
                "%.17g\n", tcx_ctx_rank(tcx_test_ctx()), what, (long long)j,
                (long long)(begin + i), got, want);
        return 0;
      }
    }
  return 1;
}

/* Fits full (n x p) on the world communicator, compares every output with
 * the single-process fit and returns the number of iterations. */
static int64_t check_rank_invariance(const double *full, int64_t n, int64_t p,
                                     const tcx_corex_options *options)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t m = options->n_factors;
  fit_reference reference;
  tcx_corex_result result;
  int64_t begin = 0, n_local = 0;
  double *x;
  int clusters_equal = 1, history_equal = 1;
  int64_t iterations;

  assert_int_equal(tcx_partition(ctx, p, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &n_local),
                   TCX_OK);
  serial_reference(full, n, p, options, &reference);
  assert_int_equal(reference.status, TCX_OK);

  x = columns_of(full, n, p, begin, n_local);
  assert_int_equal(prep_and_fit(ctx, options, x, n, n_local, begin, p,
                                &result),
                   TCX_OK);

  assert_true(tcx_test_all_ok(result.iterations == reference.iterations,
                              "iteration count"));
  assert_true(tcx_test_all_ok(result.n_history == reference.n_history,
                              "history length"));
  assert_true(tcx_test_all_ok(result.converged == reference.converged,
                              "convergence flag"));
  for (int64_t k = 0; k < result.n_history; k++)
    history_equal &= fabs(result.history[k] - reference.history[k]) <=
                     RANK_INVARIANCE_TOL * fmax(1.0, fabs(reference.history[k]));
  assert_true(tcx_test_all_ok(history_equal, "TC history"));
  tcx_test_assert_close_all(result.tc, reference.tc, RANK_INVARIANCE_TOL,
                            "final TC");
  for (int64_t j = 0; j < m; j++)
    tcx_test_assert_close_all(result.tcs[j], reference.tcs[j],
                              RANK_INVARIANCE_TOL, "TCs of a factor");
  assert_true(tcx_test_all_ok(slice_matches(result.u, reference.u, m,
                                            n_local, begin, p, "U"),
                              "normalised weights U"));
  assert_true(tcx_test_all_ok(slice_matches(result.weights,
                                            reference.weights, m, n_local,
                                            begin, p, "W"),
                              "weights W"));
  assert_true(tcx_test_all_ok(slice_matches(result.factors,
                                            reference.factors, m, n_local,
                                            begin, p, "F"),
                              "factors F"));
  assert_true(tcx_test_all_ok(slice_matches(result.mi, reference.mi, m,
                                            n_local, begin, p, "MI"),
                              "mutual information"));
  for (int64_t i = 0; i < n_local; i++)
    clusters_equal &= result.clusters[i] == reference.clusters[begin + i];
  assert_true(tcx_test_all_ok(clusters_equal, "clusters"));

  iterations = result.iterations;
  tcx_corex_result_free(&result);
  reference_free(&reference);
  free(x);
  return iterations;
}

/* p = 37 is split unevenly by 2, 3 and 4 ranks. */
static void corex_rank_invariant_p37(void **state)
{
  const int64_t n = 60, p = 37;
  tcx_corex_options options;
  double *full = planted_data(n, p, 4, 101);

  (void)state;
  tcx_corex_options_default(&options);
  options.n_factors = 4;
  options.seed = 3;
  check_rank_invariance(full, n, p, &options);
  free(full);
}

/* The first 32-row reference chunk, 128 variables (3 ranks do not divide
 * 128), 8 factors, annealing on: the setting of the published results. */
static void corex_rank_invariant_chunk128(void **state)
{
  const int64_t n = 32, p = 128;
  tcx_corex_options options;
  double *full = read_chunk(n, p);

  (void)state;
  tcx_corex_options_default(&options);
  options.n_factors = 8;
  check_rank_invariance(full, n, p, &options);
  free(full);
}

/* With four well-separated planted factors and four latent factors, each
 * planted group maps to its own cluster. The counts of (planted group,
 * cluster) pairs are summed over ranks. Every group must put all its
 * variables in one cluster, and no two groups may share a cluster. */
static void corex_recovers_planted_clusters(void **state)
{
  enum { M_TRUE = 4 };
  const int64_t n = 200, p = 37;
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_corex_options options;
  tcx_corex_result result;
  int64_t counts[M_TRUE * M_TRUE] = {0};
  int64_t begin = 0, n_local = 0, group_size[M_TRUE] = {0};
  double *full = planted_data(n, p, M_TRUE, 202);
  double *x;

  (void)state;
  assert_int_equal(tcx_partition(ctx, p, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &n_local),
                   TCX_OK);
  x = columns_of(full, n, p, begin, n_local);
  tcx_corex_options_default(&options);
  options.n_factors = M_TRUE;
  assert_int_equal(prep_and_fit(ctx, &options, x, n, n_local, begin, p,
                                &result),
                   TCX_OK);
  for (int64_t i = 0; i < n_local; i++) {
    assert_true(result.clusters[i] >= 0 && result.clusters[i] < M_TRUE);
    counts[((begin + i) % M_TRUE) * M_TRUE + result.clusters[i]]++;
  }
  assert_int_equal(MPI_Allreduce(MPI_IN_PLACE, counts, M_TRUE * M_TRUE,
                                 MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD),
                   MPI_SUCCESS);
  for (int64_t i = 0; i < p; i++)
    group_size[i % M_TRUE]++;
  for (int g = 0; g < M_TRUE; g++) {
    int owner = -1;

    for (int c = 0; c < M_TRUE; c++)
      if (counts[g * M_TRUE + c] > 0)
        owner = owner == -1 ? c : -2;
    assert_true(owner >= 0);
    assert_int_equal(counts[g * M_TRUE + owner], group_size[g]);
    for (int other = 0; other < g; other++)
      assert_int_equal(counts[other * M_TRUE + owner], 0);
  }
  tcx_corex_result_free(&result);
  free(x);
  free(full);
}

static void corex_rejects_zero_factors(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_corex_options options;
  tcx_corex_result result;
  int64_t begin = 0, n_local = 0;
  double *full = planted_data(10, 37, 2, 303);
  double *x;

  (void)state;
  assert_int_equal(tcx_partition(ctx, 37, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &n_local),
                   TCX_OK);
  x = columns_of(full, 10, 37, begin, n_local);
  tcx_corex_options_default(&options);
  options.n_factors = 0;
  assert_int_equal(tcx_corex_fit(ctx, &options, x, 10, n_local, begin, 37,
                                 &result),
                   TCX_ERR_USAGE);
  assert_string_equal(tcx_ctx_message(ctx),
                      "invalid number of factors 0; linear CorEx needs at "
                      "least 1");
  assert_null(result.u);
  free(x);
  free(full);
}

/* A NaN in the last rank's block fails the fit on every rank with that
 * rank's message, naming the global variable. */
static void corex_rejects_nan_on_one_rank(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int last = tcx_ctx_size(ctx) - 1;
  tcx_corex_options options;
  tcx_corex_result result;
  int64_t begin = 0, n_local = 0;
  double *full = planted_data(10, 37, 2, 404);
  double *x;

  (void)state;
  full[3 * 37 + 36] = NAN;
  assert_int_equal(tcx_partition(ctx, 37, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &n_local),
                   TCX_OK);
  x = columns_of(full, 10, 37, begin, n_local);
  tcx_corex_options_default(&options);
  options.n_factors = 2;
  assert_int_equal(tcx_corex_fit(ctx, &options, x, 10, n_local, begin, 37,
                                 &result),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "variable 36, row 3"));
  if (last > 0)
    assert_non_null(strstr(tcx_ctx_message(ctx), "[rank"));
  free(x);
  free(full);
}

/* Without annealing the fit runs longer than the refresh interval of the
 * line search, so the decisions to evaluate a trial from scratch and the
 * fresh trials themselves must agree across rank counts. p = 203 is split
 * unevenly by 2, 3 and 4 ranks. */
static void corex_rank_invariant_fresh_trials(void **state)
{
  const int64_t n = 20, p = 203;
  tcx_corex_options options;
  double *full = planted_data(n, p, 3, 707);

  (void)state;
  tcx_corex_options_default(&options);
  options.n_factors = 3;
  options.anneal = 0;
  assert_true(check_rank_invariance(full, n, p, &options) >
              TCX_COREX_REFRESH_INTERVAL);
  free(full);
}

/* Data with variance 10^6 that skip standardisation give correlations
 * above 1 and a NaN objective at the first annealing stage. Every rank
 * must fail with TCX_ERR_NUMERIC, with the stage and the missing
 * standardisation in the message. */
static void corex_unscaled_data_fails(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_corex_options options;
  tcx_corex_result result;
  int64_t begin = 0, n_local = 0;
  double *full = planted_data(20, 37, 2, 505);
  double *x;

  (void)state;
  for (int64_t k = 0; k < 20 * 37; k++)
    full[k] *= 1000.0;
  assert_int_equal(tcx_partition(ctx, 37, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &n_local),
                   TCX_OK);
  x = columns_of(full, 20, 37, begin, n_local);
  tcx_corex_options_default(&options);
  options.n_factors = 2;
  assert_int_equal(tcx_corex_fit(ctx, &options, x, 20, n_local, begin, 37,
                                 &result),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "annealing stage 1 "));
  assert_non_null(strstr(tcx_ctx_message(ctx), "before the first iteration"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "not standardised"));
  assert_null(result.u);
  free(x);
  free(full);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(corex_rank_invariant_p37),
      cmocka_unit_test(corex_rank_invariant_chunk128),
      cmocka_unit_test(corex_rank_invariant_fresh_trials),
      cmocka_unit_test(corex_recovers_planted_clusters),
      cmocka_unit_test(corex_rejects_zero_factors),
      cmocka_unit_test(corex_rejects_nan_on_one_rank),
      cmocka_unit_test(corex_unscaled_data_fails),
  };

  return tcx_test_run(argc, argv, "corex", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
