/* End-to-end tests of 'tcorex select': the table against separate 'tcorex
 * fit' and 'tcorex score' runs of each point (1 and 2 ranks), the best
 * model against a separate fit, --early-stopping against 'tcorex fit
 * --validation', --point tables merged by --from-tables,
 * --refit against a fit of training and validation data joined in this
 * test, and rejected requests. This program does not initialise MPI itself,
 * because it launches mpirun. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_test.h"

/* Room for a path in the fixture's folder. */
enum { PATH_SIZE = 320 };

enum { N_POINTS = 4, N_VARS = 23, N_PERIODS = 4, N_TRAIN = 12, N_TEST = 20 };

/* The grid of most tests, and the fit options every run shares. Point k
 * has l1 = L1[k / 2], gamma = GAMMA and factors = FACTORS[k % 2], because
 * the last key varies fastest. */
#define GRID "'l1=0,0.3 gamma=0.4 factors=2,3'"
#define FIT_OPTIONS "--max-iter 10 --seed 2"
static const double L1[2] = {0.0, 0.3};
static const double GAMMA = 0.4;
static const int FACTORS[2] = {2, 3};

typedef struct table_row {
  long long point;
  double l1, gamma;
  long long factors;
  double nll;
  long long iterations;
} table_row;

/* Simulates /train [4, 12, 23] and /test [4, 20, 23] into dir/sim.h5. */
static void simulate(const char *dir, char *path, size_t size)
{
  char args[ARGS_MAX];
  run_output out;

  snprintf(path, size, "%s/sim.h5", dir);
  snprintf(args, sizeof(args),
           "simulate --variables %d --factors 3 --periods %d --train-samples "
           "%d --test-samples %d --seed 1 --output %s -q",
           N_VARS, N_PERIODS, N_TRAIN, N_TEST, path);
  run_cli(args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
}

/* Reads a table of GRID written by select: header, then rows. Returns the
 * row count. */
static int read_table(const char *path, table_row *rows, int max_rows)
{
  FILE *file = fopen(path, "r");
  char line[512];
  int count = 0;

  assert_non_null(file);
  assert_non_null(fgets(line, sizeof(line), file));
  assert_string_equal(line, "point,l1,gamma,factors,validation_nll,"
                            "iterations,seconds\n");
  while (fgets(line, sizeof(line), file)) {
    table_row *row = &rows[count];
    double seconds;

    assert_true(count < max_rows);
    assert_int_equal(sscanf(line, "%lld,%lf,%lf,%lld,%lf,%lld,%lf", &row->point,
                            &row->l1, &row->gamma, &row->factors, &row->nll,
                            &row->iterations, &seconds),
                     7);
    count++;
  }
  fclose(file);
  return count;
}

/* Checks that row k of a full table is grid point k in the documented
 * order. */
static void assert_grid_order(const table_row *rows)
{
  for (int k = 0; k < N_POINTS; k++) {
    assert_int_equal(rows[k].point, k);
    assert_true(rows[k].l1 == L1[k / 2]);
    assert_true(rows[k].gamma == GAMMA);
    assert_int_equal(rows[k].factors, FACTORS[k % 2]);
    assert_true(rows[k].iterations > 0);
    assert_true(isfinite(rows[k].nll));
  }
}

/* Fits one point with 'tcorex fit' and returns the NLL of 'tcorex score'
 * on /test. */
static double fit_and_score(int ranks, const char *data, const char *model,
                            double l1, double gamma, int factors)
{
  char args[ARGS_MAX];
  run_output out;

  snprintf(args, sizeof(args),
           "fit -q --input %s --dataset /train --l1 %.17g --gamma %.17g "
           "--factors %d " FIT_OPTIONS " --output %s",
           data, l1, gamma, factors, model);
  run_mpi(ranks, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args), "score -q --model %s --input %s --dataset /test",
           model, data);
  run_mpi(ranks, args, &out);
  assert_int_equal(out.exit_code, 0);
  return score_mean(out.text);
}

/* Returns the index of the lowest NLL, the first of equal ones. */
static int lowest_nll(const table_row *rows, int count)
{
  int best = 0;

  for (int k = 1; k < count; k++)
    if (rows[k].nll < rows[best].nll)
      best = k;
  return best;
}

/* Asserts that a dataset is the same in two model files within tol. */
static void assert_same_dataset(const char *path_a, const char *path_b,
                                const char *name, double tol)
{
  hsize_t count_a = 0, count_b = 0;
  double *a = read_dataset(path_a, name, &count_a);
  double *b = read_dataset(path_b, name, &count_b);
  double max_difference = 0.0;

  assert_int_equal(count_a, count_b);
  for (hsize_t k = 0; k < count_a; k++)
    max_difference = fmax(max_difference, fabs(a[k] - b[k]));
  if (max_difference > tol)
    fprintf(stderr, "%s differs between %s and %s by %g\n", name, path_a,
            path_b, max_difference);
  assert_true(max_difference <= tol);
  free(a);
  free(b);
}

static void run_select(int ranks, const char *options, run_output *out)
{
  char args[ARGS_MAX + 64];

  snprintf(args, sizeof(args), "select -q " FIT_OPTIONS " %s", options);
  run_mpi(ranks, args, out);
  if (out->exit_code != 0)
    fprintf(stderr, "select %s:\n%s\n", options, out->text);
}

/* Every table NLL equals 'tcorex fit' + 'tcorex score' of its point on the
 * same rank count (score prints 6 decimals), the 2-rank table equals the
 * 1-rank one to rounding, and the best model equals a separate fit. */
static void table_matches_fit_and_score(void **state)
{
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], options[ARGS_MAX], table[2][PATH_SIZE],
      best[2][PATH_SIZE], model[PATH_SIZE];
  table_row rows[2][N_POINTS];
  run_output out;

  simulate(fixture->dir, data, sizeof(data));
  snprintf(model, sizeof(model), "%s/point.h5", fixture->dir);
  for (int r = 0; r < 2; r++) {
    const int ranks = r + 1;
    int k_best;

    snprintf(table[r], sizeof(table[r]), "%s/grid%d.csv", fixture->dir, r);
    snprintf(best[r], sizeof(best[r]), "%s/best%d.h5", fixture->dir, r);
    snprintf(options, sizeof(options),
             "--grid " GRID " --train %s --dataset /train --validation %s "
             "--validation-dataset /test --table %s --output %s",
             data, data, table[r], best[r]);
    run_select(ranks, options, &out);
    assert_int_equal(out.exit_code, 0);
    assert_int_equal(read_table(table[r], rows[r], N_POINTS), N_POINTS);
    assert_grid_order(rows[r]);

    for (int k = 0; k < N_POINTS; k++) {
      /* Every point on 1 rank; the best one on 2 ranks. */
      if (r == 0) {
        const double nll =
            fit_and_score(1, data, model, L1[k / 2], GAMMA, FACTORS[k % 2]);

        assert_float_equal(rows[0][k].nll, nll, 1e-6);
      } else {
        assert_float_equal(rows[1][k].nll, rows[0][k].nll,
                           1e-8 * fabs(rows[0][k].nll));
      }
    }

    k_best = lowest_nll(rows[r], N_POINTS);
    assert_float_equal(fit_and_score(ranks, data, model, L1[k_best / 2], GAMMA,
                                     FACTORS[k_best % 2]),
                       rows[r][k_best].nll, 1e-6);
    /* Same rank count and options: the same arithmetic, bit for bit. */
    assert_same_dataset(best[r], model, "/factors", 0.0);
    assert_same_dataset(best[r], model, "/weights", 0.0);
    assert_same_dataset(best[r], model, "/std", 0.0);
  }
}

/* One --point run per point, merged with --from-tables, gives the table and
 * the best model of the all-in-one run; missing and foreign points are
 * named. */
static void point_tables_merge(void **state)
{
  static const struct {
    const char *grid;
    const char *pattern;
    const char *phrase;
  } merge_errors[] = {
      {GRID, "point_*.csv",
       "no row for 2 of the 4 grid points: 1-2 (counted from 0)"},
      {"'l1=0,0.2 gamma=0.4 factors=2,3'", "point_*.csv",
       "has l1=0.3 but the grid gives l1=0.2"},
      {"'gamma=0.4 l1=0,0.3 factors=2,3'", "point_*.csv",
       "but the grid's table header is"},
      {GRID, "absent_*.csv", "no file matches --from-tables"},
  };
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], options[ARGS_MAX], full[PATH_SIZE], merged[PATH_SIZE],
      best[PATH_SIZE], merged_best[PATH_SIZE], point[PATH_SIZE],
      moved[PATH_SIZE];
  table_row full_rows[N_POINTS], merged_rows[N_POINTS], one[1];
  run_output out;

  simulate(fixture->dir, data, sizeof(data));
  snprintf(full, sizeof(full), "%s/grid.csv", fixture->dir);
  snprintf(merged, sizeof(merged), "%s/merged.csv", fixture->dir);
  snprintf(best, sizeof(best), "%s/best.h5", fixture->dir);
  snprintf(merged_best, sizeof(merged_best), "%s/merged_best.h5", fixture->dir);
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s --output %s",
           data, data, full, best);
  run_select(1, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(full, full_rows, N_POINTS), N_POINTS);

  for (int k = 0; k < N_POINTS; k++) {
    snprintf(point, sizeof(point), "%s/point_%d.csv", fixture->dir, k);
    snprintf(options, sizeof(options),
             "--grid " GRID " --train %s --dataset /train --validation %s "
             "--validation-dataset /test --table %s --point %d",
             data, data, point, k);
    run_select(1, options, &out);
    assert_int_equal(out.exit_code, 0);
    assert_int_equal(read_table(point, one, 1), 1);
    assert_int_equal(one[0].point, k);
  }
  snprintf(options, sizeof(options),
           "--grid " GRID " --from-tables '%s/point_*.csv' --table %s "
           "--train %s --dataset /train --output %s",
           fixture->dir, merged, data, merged_best);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(merged, merged_rows, N_POINTS), N_POINTS);
  assert_grid_order(merged_rows);
  for (int k = 0; k < N_POINTS; k++) {
    assert_true(merged_rows[k].nll == full_rows[k].nll);
    assert_int_equal(merged_rows[k].iterations, full_rows[k].iterations);
  }
  /* The merge fitted the best point on 2 ranks, the full run on 1. */
  assert_same_dataset(merged_best, best, "/factors", 1e-8);

  /* Points 1 and 2 missing, then tables of another grid: other values, or
   * the keys in another order. */
  for (int k = 1; k <= 2; k++) {
    snprintf(point, sizeof(point), "%s/point_%d.csv", fixture->dir, k);
    snprintf(moved, sizeof(moved), "%s/moved_%d.csv", fixture->dir, k);
    assert_int_equal(rename(point, moved), 0);
  }
  for (size_t c = 0; c < sizeof(merge_errors) / sizeof(merge_errors[0]); c++) {
    snprintf(options, sizeof(options),
             "--grid %s --from-tables '%s/%s' --table %s", merge_errors[c].grid,
             fixture->dir, merge_errors[c].pattern, merged);
    run_select(1, options, &out);
    assert_int_equal(out.exit_code, 3);
    assert_non_null(strstr(out.text, merge_errors[c].phrase));
  }
}

/* Writes a table of GRID: the header, then lines as given. */
static void write_table(const char *path, const char *lines)
{
  FILE *file = fopen(path, "w");

  assert_non_null(file);
  fprintf(file, "point,l1,gamma,factors,validation_nll,iterations,seconds\n");
  fputs(lines, file);
  assert_int_equal(fclose(file), 0);
}

/* --continue keeps the rows of an interrupted run's table and evaluates
 * only the missing points. Point 3's kept row gets a made-up NLL of -1000,
 * so it must be reused, not recomputed: it wins, and the best model is a
 * fit of point 3. The recomputed points equal the full run's rows bit for
 * bit (same rank count). Without a table, --continue evaluates every point;
 * a table of another grid is rejected. */
static void continue_keeps_table_rows(void **state)
{
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], options[ARGS_MAX], full[PATH_SIZE], partial[PATH_SIZE],
      best[PATH_SIZE], model[PATH_SIZE], fresh[PATH_SIZE];
  table_row full_rows[N_POINTS], rows[N_POINTS];
  char args[ARGS_MAX], lines[256];
  run_output out;

  simulate(fixture->dir, data, sizeof(data));
  snprintf(full, sizeof(full), "%s/grid.csv", fixture->dir);
  snprintf(partial, sizeof(partial), "%s/partial.csv", fixture->dir);
  snprintf(best, sizeof(best), "%s/best.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/point3.h5", fixture->dir);
  snprintf(fresh, sizeof(fresh), "%s/fresh.csv", fixture->dir);
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s",
           data, data, full);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(full, full_rows, N_POINTS), N_POINTS);

  snprintf(lines, sizeof(lines),
           "0,0,0.4,2,%.17g,%lld,1.5\n3,0.3,0.4,3,-1000,%lld,1.5\n",
           full_rows[0].nll, full_rows[0].iterations, full_rows[3].iterations);
  write_table(partial, lines);
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s --output %s --continue",
           data, data, partial, best);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(partial, rows, N_POINTS), N_POINTS);
  assert_grid_order(rows);
  assert_true(rows[0].nll == full_rows[0].nll);
  assert_true(rows[1].nll == full_rows[1].nll);
  assert_true(rows[2].nll == full_rows[2].nll);
  assert_true(rows[3].nll == -1000.0);
  assert_int_equal(rows[1].iterations, full_rows[1].iterations);

  snprintf(args, sizeof(args),
           "fit -q --input %s --dataset /train --l1 0.3 --gamma 0.4 "
           "--factors 3 " FIT_OPTIONS " --output %s",
           data, model);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_same_dataset(best, model, "/weights", 0.0);
  assert_same_dataset(best, model, "/factors", 0.0);

  /* --point 2 --continue on a table with point 3 only: both rows stay. */
  snprintf(lines, sizeof(lines), "3,0.3,0.4,3,-1000,%lld,1.5\n",
           full_rows[3].iterations);
  write_table(partial, lines);
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s --point 2 --continue",
           data, data, partial);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(partial, rows, N_POINTS), 2);
  assert_int_equal(rows[0].point, 2);
  assert_true(rows[0].nll == full_rows[2].nll);
  assert_int_equal(rows[1].point, 3);
  assert_true(rows[1].nll == -1000.0);

  /* No table yet: every point, as without --continue. */
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s --continue",
           data, data, fresh);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(fresh, rows, N_POINTS), N_POINTS);
  for (int k = 0; k < N_POINTS; k++)
    assert_true(rows[k].nll == full_rows[k].nll);

  /* A table of another grid, and --continue with --from-tables. */
  snprintf(options, sizeof(options),
           "--grid 'l1=0,0.2 gamma=0.4 factors=2,3' --train %s --dataset "
           "/train --validation %s --validation-dataset /test --table %s "
           "--continue",
           data, data, full);
  run_select(1, options, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "the table was written for another --grid"));
  snprintf(options, sizeof(options),
           "--grid " GRID " --from-tables '%s/*.csv' --table %s --continue",
           fixture->dir, fresh);
  run_select(1, options, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "give one of them"));
}

/* Writes data [dims] as float64 dataset /data of a new file. */
static void write_data(const char *path, int rank, const hsize_t *dims,
                       const double *data)
{
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t space, dataset;

  assert_true(file >= 0);
  space = H5Screate_simple(rank, dims, NULL);
  assert_true(space >= 0);
  dataset = H5Dcreate2(file, "/data", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT,
                       H5P_DEFAULT, H5P_DEFAULT);
  assert_true(dataset >= 0);
  assert_true(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                       H5P_DEFAULT, data) >= 0);
  H5Dclose(dataset);
  H5Sclose(space);
  H5Fclose(file);
}

/* Writes the simulated data as files of their own. train.h5 [48, 23] and
 * validation.h5 [80, 23] have the periods one after another. joined3.h5
 * [4, 32, 23] has in period t its 12 training rows, then its 20 test rows.
 * joined2.h5 [128, 23] has every training row, then every test row. */
static void write_joined_files(const char *dir, const char *data)
{
  const size_t row = N_VARS;
  hsize_t count_train = 0, count_test = 0;
  double *train = read_dataset(data, "/train", &count_train);
  double *test = read_dataset(data, "/test", &count_test);
  double *joined = calloc(count_train + count_test, sizeof(double));
  char path[PATH_SIZE];

  assert_non_null(joined);
  for (int t = 0; t < N_PERIODS; t++) {
    double *period = joined + (size_t)t * (N_TRAIN + N_TEST) * row;

    memcpy(period, train + (size_t)t * N_TRAIN * row,
           N_TRAIN * row * sizeof(double));
    memcpy(period + N_TRAIN * row, test + (size_t)t * N_TEST * row,
           N_TEST * row * sizeof(double));
  }
  snprintf(path, sizeof(path), "%s/joined3.h5", dir);
  write_data(path, 3, (const hsize_t[]){N_PERIODS, N_TRAIN + N_TEST, N_VARS},
             joined);

  memcpy(joined, train, count_train * sizeof(double));
  memcpy(joined + count_train, test, count_test * sizeof(double));
  snprintf(path, sizeof(path), "%s/joined2.h5", dir);
  write_data(path, 2, (const hsize_t[]){N_PERIODS * (N_TRAIN + N_TEST), N_VARS},
             joined);
  snprintf(path, sizeof(path), "%s/train.h5", dir);
  write_data(path, 2, (const hsize_t[]){N_PERIODS * N_TRAIN, N_VARS}, train);
  snprintf(path, sizeof(path), "%s/validation.h5", dir);
  write_data(path, 2, (const hsize_t[]){N_PERIODS * N_TEST, N_VARS}, test);
  free(train);
  free(test);
  free(joined);
}

/* Fits the joined file with 'tcorex fit' into model. */
static void fit_joined(const char *joined, const char *extra, const char *model)
{
  char args[ARGS_MAX];
  run_output out;

  snprintf(args, sizeof(args),
           "fit -q --input %s %s " FIT_OPTIONS " --output %s", joined, extra,
           model);
  run_mpi(2, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
}

/* --refit equals 'tcorex fit' of the training and validation data joined by
 * this test: per period for [nt, ns, p] input and for [T, p] input split
 * with --periods, row after row for linear CorEx. */
static void refit_joins_data(void **state)
{
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], options[ARGS_MAX], table[PATH_SIZE], table2[PATH_SIZE],
      refit[PATH_SIZE], model[PATH_SIZE], joined[PATH_SIZE], merged[PATH_SIZE],
      extra[256];
  table_row rows[N_POINTS], rows2[N_POINTS];
  run_output out;
  int k;

  simulate(fixture->dir, data, sizeof(data));
  write_joined_files(fixture->dir, data);
  snprintf(table, sizeof(table), "%s/grid.csv", fixture->dir);
  snprintf(table2, sizeof(table2), "%s/grid2.csv", fixture->dir);
  snprintf(refit, sizeof(refit), "%s/refit.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/joined_fit.h5", fixture->dir);

  /* T-CorEx, [nt, ns, p] files. */
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --table %s --output %s --refit",
           data, data, table, refit);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(table, rows, N_POINTS), N_POINTS);
  k = lowest_nll(rows, N_POINTS);
  snprintf(joined, sizeof(joined), "%s/joined3.h5", fixture->dir);
  snprintf(extra, sizeof(extra), "--l1 %.17g --gamma %.17g --factors %d",
           L1[k / 2], GAMMA, FACTORS[k % 2]);
  fit_joined(joined, extra, model);
  assert_same_dataset(refit, model, "/factors", 0.0);
  assert_same_dataset(refit, model, "/mean", 0.0);

  /* The dependent job of a job array: merge tables, refit the best point.
   * The full table serves as the one table to merge. */
  snprintf(merged, sizeof(merged), "%s/merged.csv", fixture->dir);
  snprintf(options, sizeof(options),
           "--grid " GRID " --from-tables '%s' --table %s --train %s "
           "--dataset /train --validation %s --validation-dataset /test "
           "--output %s --refit",
           table, merged, data, data, refit);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_same_dataset(refit, model, "/factors", 0.0);

  /* T-CorEx, [T, p] files split with --periods: the same periods, so the
   * same table and refitted model. */
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s/train.h5 --validation "
           "%s/validation.h5 --periods %d --table %s --output %s --refit",
           fixture->dir, fixture->dir, N_PERIODS, table2, refit);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(table2, rows2, N_POINTS), N_POINTS);
  for (int j = 0; j < N_POINTS; j++)
    assert_true(rows2[j].nll == rows[j].nll);
  assert_same_dataset(refit, model, "/factors", 0.0);

  /* Linear CorEx, [T, p] files without periods. */
  snprintf(options, sizeof(options),
           "--grid 'factors=2,3' --train %s/train.h5 --validation "
           "%s/validation.h5 --table %s --output %s --refit",
           fixture->dir, fixture->dir, table2, refit);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  {
    FILE *file = fopen(table2, "r");
    char line[512];
    double nll[2];

    assert_non_null(file);
    assert_non_null(fgets(line, sizeof(line), file));
    assert_string_equal(line,
                        "point,factors,validation_nll,iterations,seconds\n");
    for (int j = 0; j < 2; j++) {
      long long point, factors, iterations;
      double seconds;

      assert_non_null(fgets(line, sizeof(line), file));
      assert_int_equal(sscanf(line, "%lld,%lld,%lf,%lld,%lf", &point, &factors,
                              &nll[j], &iterations, &seconds),
                       5);
      assert_int_equal(factors, j + 2);
    }
    fclose(file);
    snprintf(extra, sizeof(extra), "--factors %d", nll[1] < nll[0] ? 3 : 2);
  }
  snprintf(joined, sizeof(joined), "%s/joined2.h5", fixture->dir);
  fit_joined(joined, extra, model);
  assert_same_dataset(refit, model, "/factors", 0.0);
  assert_same_dataset(refit, model, "/std", 0.0);
}

/* Fits grid point k with 'tcorex fit --validation' on /test of data, with
 * the early-stopping options of early_stopping_matches_fit, on 2 ranks. */
static void fit_point_early_stopped(const char *data, int k, const char *model)
{
  char args[ARGS_MAX];
  run_output out;

  snprintf(args, sizeof(args),
           "fit -q --input %s --dataset /train --l1 %.17g --gamma %.17g "
           "--factors %d " FIT_OPTIONS " --validation %s "
           "--validation-dataset /test --validation-every 2 --patience 2 "
           "--output %s",
           data, L1[k / 2], GAMMA, FACTORS[k % 2], data, model);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
}

/* --early-stopping: every table NLL equals 'tcorex fit --validation' with
 * the same held-out rows, then 'tcorex score' on them, and the best model
 * equals that separate fit. */
static void early_stopping_matches_fit(void **state)
{
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], options[ARGS_MAX], table[PATH_SIZE], best[PATH_SIZE],
      model[PATH_SIZE], args[ARGS_MAX];
  table_row rows[N_POINTS];
  run_output out;
  double nll[N_POINTS];
  int k_best;

  simulate(fixture->dir, data, sizeof(data));
  snprintf(table, sizeof(table), "%s/grid.csv", fixture->dir);
  snprintf(best, sizeof(best), "%s/best.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/point.h5", fixture->dir);
  snprintf(options, sizeof(options),
           "--grid " GRID " --train %s --dataset /train --validation %s "
           "--validation-dataset /test --early-stopping --validation-every 2 "
           "--patience 2 --table %s --output %s",
           data, data, table, best);
  run_select(2, options, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(read_table(table, rows, N_POINTS), N_POINTS);
  assert_grid_order(rows);

  for (int k = 0; k < N_POINTS; k++) {
    fit_point_early_stopped(data, k, model);
    snprintf(args, sizeof(args),
             "score -q --model %s --input %s --dataset /test", model, data);
    run_mpi(2, args, &out);
    assert_int_equal(out.exit_code, 0);
    nll[k] = score_mean(out.text);
    assert_float_equal(rows[k].nll, nll[k], 1e-6);
  }
  k_best = lowest_nll(rows, N_POINTS);
  fit_point_early_stopped(data, k_best, model);
  assert_same_dataset(best, model, "/weights", 0.0);
  assert_same_dataset(best, model, "/factors", 0.0);
}

/* Bad grids and option clashes exit with 2 and name the problem; no table
 * is written. */
static void rejects_bad_requests(void **state)
{
  cli_fixture *fixture = *state;
  static const struct {
    const char *options;
    const char *phrase;
  } cases[] = {
      {"--grid 'alpha=1,2'", "unknown --grid key 'alpha' in 'alpha=1,2'; "
                             "accepted keys: factors, l1"},
      {"--grid 'l1='", "--grid key l1 has no values"},
      {"--grid 'l1=0,,1'", "--grid item 'l1=0,,1' has an empty value"},
      {"--grid 'l1=0,abc'", "invalid value for --l1: 'abc' is not a number"},
      {"--grid 'gamma=0.5,1.5'", "invalid value for --gamma: 1.5 is out of "
                                 "range"},
      {"--grid 'factors=2.5'", "'2.5' is not an integer"},
      {"--grid 'l1=0 l1=1'", "--grid sets key l1 twice"},
      {"--grid l1", "invalid --grid item 'l1': expected KEY=V1,V2"},
      {"--grid ' '", "--grid is empty"},
      {"--grid 'l1=0,1' --point 2", "--point: 2, but the grid has 2 points"},
      {"--grid 'l1=0,1' --point 0 --from-tables 'x*.csv'",
       "at most one of --point and --from-tables"},
      {"--grid 'l1=0,1' --reg-type sigma",
       "grid point 1 (l1=1): --reg-type sigma supports --l2 only"},
      {"--grid 'factors=2' --refit", "--refit applies to the --output model"},
      {"--grid 'factors=2' --patience 2",
       "--validation-every and --patience apply with --early-stopping"},
      {"--grid 'l1=0,1' --input x.h5", "unknown option '--input'"},
  };
  char args[ARGS_MAX], table[PATH_SIZE];
  run_output out;

  snprintf(table, sizeof(table), "%s/grid.csv", fixture->dir);
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    snprintf(args, sizeof(args),
             "select --factors 2 --train %s/t.h5 --validation %s/v.h5 "
             "--table %s %s",
             fixture->dir, fixture->dir, table, cases[k].options);
    run_cli(args, &out);
    if (out.exit_code != 2 || !strstr(out.text, cases[k].phrase))
      fprintf(stderr, "options '%s' gave exit %d and output:\n%s\n",
              cases[k].options, out.exit_code, out.text);
    assert_int_equal(out.exit_code, 2);
    assert_non_null(strstr(out.text, cases[k].phrase));
    assert_false(file_exists(table));
  }

  snprintf(args, sizeof(args), "select --grid 'l1=0,1' --table %s", table);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "missing required option --train"));
  snprintf(args, sizeof(args),
           "select --grid 'l1=0,1' --train a.h5 --validation b.h5 --table %s",
           table);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "missing --factors M; give it, or add "
                                   "factors to --grid"));
}

/* A T-CorEx key on data that linear CorEx fits is rejected after reading. */
static void rejects_tcorex_key_on_linear(void **state)
{
  cli_fixture *fixture = *state;
  char data[PATH_SIZE], args[ARGS_MAX], table[PATH_SIZE];
  run_output out;

  simulate(fixture->dir, data, sizeof(data));
  write_joined_files(fixture->dir, data);
  snprintf(table, sizeof(table), "%s/grid.csv", fixture->dir);
  snprintf(args, sizeof(args),
           "select --grid 'gamma=0.3,0.5' --factors 2 --train %s/train.h5 "
           "--validation %s/validation.h5 --table %s",
           fixture->dir, fixture->dir, table);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "--grid key gamma has no effect on "
                                   "linear CorEx"));
  assert_false(file_exists(table));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(rejects_bad_requests, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(rejects_tcorex_key_on_linear, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(table_matches_fit_and_score, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(early_stopping_matches_fit, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(continue_keeps_table_rows, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(point_tables_merge, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(refit_joins_data, setup_dir,
                                      teardown_dir),
  };

  return cmocka_run_group_tests_name("select", tests, NULL, NULL);
}
