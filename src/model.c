/* The fitted model in memory and in its HDF5 file. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5io_internal.h"
#include "tcorex/model.h"

/* Root attributes that describe the file itself; docs/FORMATS.md lists
 * them. */
#define TCX_MODEL_FORMAT "tcorex-model"
#define TCX_MODEL_FORMAT_VERSION 1

/* Allocates the per-column and replicated arrays of a model. */
static int tcx_model_allocate(tcx_ctx *ctx, tcx_model *model)
{
  const int64_t periods = model->n_periods;
  const int64_t m = model->n_factors;
  const int64_t n_local = model->n_local;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, periods * n_local, sizeof(double), "model means",
                     &model->mean));
  TCX_TRY(tcx_calloc(ctx, periods * n_local, sizeof(double),
                     "model standard deviations", &model->std));
  TCX_TRY(tcx_calloc(ctx, periods * m * n_local, sizeof(double),
                     "model weights", &model->weights));
  TCX_TRY(tcx_calloc(ctx, periods * m * n_local, sizeof(double),
                     "model factor loadings", &model->factors));
  TCX_TRY(tcx_calloc(ctx, periods * m * n_local, sizeof(double),
                     "model mutual information", &model->mi));
  TCX_TRY(tcx_calloc(ctx, periods * n_local, sizeof(int32_t),
                     "model clusters", &model->clusters));
  TCX_TRY(tcx_calloc(ctx, periods * m, sizeof(double),
                     "model total correlations", &model->tcs));

cleanup:
  return rc;
}

int tcx_model_create(tcx_ctx *ctx, int n_periods, int64_t n_factors,
                     int64_t n_vars, int64_t col_begin, int64_t n_local,
                     tcx_model **model)
{
  tcx_model *result = NULL;
  int rc = TCX_OK;

  *model = NULL;
  TCX_CHECK(n_periods >= 1 && n_factors >= 1 && n_vars >= 1, ctx,
            TCX_ERR_INTERNAL,
            "invalid model size: %d periods, %lld factors, %lld variables",
            n_periods, (long long)n_factors, (long long)n_vars);
  TCX_CHECK(col_begin >= 0 && n_local >= 0 && col_begin + n_local <= n_vars,
            ctx, TCX_ERR_INTERNAL,
            "model columns %lld..%lld lie outside its %lld variables",
            (long long)col_begin, (long long)(col_begin + n_local - 1),
            (long long)n_vars);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*result), "model", &result));
  result->n_periods = n_periods;
  result->n_factors = n_factors;
  result->n_vars = n_vars;
  result->col_begin = col_begin;
  result->n_local = n_local;
  TCX_TRY(tcx_model_allocate(ctx, result));
  *model = result;
  result = NULL;

cleanup:
  tcx_model_destroy(&result);
  return rc;
}

void tcx_model_destroy(tcx_model **model)
{
  tcx_model *m = model ? *model : NULL;

  if (!m)
    return;
  free(m->mean);
  free(m->std);
  free(m->weights);
  free(m->factors);
  free(m->mi);
  free(m->clusters);
  free(m->tcs);
  free(m->objective);
  free(m->objective_main);
  free(m->objective_regularization);
  free(m);
  *model = NULL;
}

int tcx_model_set_objective(tcx_ctx *ctx, tcx_model *model,
                            const double *values, int64_t count)
{
  double *copy = NULL;
  int rc = TCX_OK;

  TCX_CHECK(count >= 0, ctx, TCX_ERR_INTERNAL,
            "objective history of negative length %lld", (long long)count);
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "objective history",
                     &copy));
  if (count > 0)
    memcpy(copy, values, (size_t)count * sizeof(double));
  free(model->objective);
  model->objective = copy;
  model->n_objective = count;

cleanup:
  return rc;
}

int tcx_model_set_objective_parts(tcx_ctx *ctx, tcx_model *model,
                                  const double *main_part,
                                  const double *regularization, int64_t count)
{
  double *sum = NULL, *main_copy = NULL, *regularization_copy = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "objective history", &sum));
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "objective history",
                     &main_copy));
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "objective history",
                     &regularization_copy));
  for (int64_t k = 0; k < count; k++) {
    main_copy[k] = main_part[k];
    regularization_copy[k] = regularization[k];
    sum[k] = main_part[k] + regularization[k];
  }
  TCX_TRY(tcx_model_set_objective(ctx, model, sum, count));
  free(model->objective_main);
  free(model->objective_regularization);
  model->objective_main = main_copy;
  model->objective_regularization = regularization_copy;
  main_copy = regularization_copy = NULL;

cleanup:
  free(sum);
  free(main_copy);
  free(regularization_copy);
  return rc;
}

/* Returns the attribute called name, adding an empty one when there is
 * none. */
static int tcx_model_find_attr(tcx_ctx *ctx, tcx_model *model,
                               const char *name, tcx_model_attr **attr)
{
  int rc = TCX_OK;

  *attr = NULL;
  TCX_CHECK(name[0] != '\0' && strlen(name) < TCX_MODEL_ATTR_LENGTH, ctx,
            TCX_ERR_USAGE,
            "model attribute name \"%.40s...\" is empty or longer than %d "
            "characters",
            name, TCX_MODEL_ATTR_LENGTH - 1);
  for (int k = 0; k < model->n_attrs; k++)
    if (strcmp(model->attrs[k].name, name) == 0) {
      *attr = &model->attrs[k];
      break;
    }
  if (*attr)
    goto cleanup;
  TCX_CHECK(model->n_attrs < TCX_MODEL_MAX_ATTRS, ctx, TCX_ERR_USAGE,
            "cannot add model attribute \"%s\": a model holds at most %d",
            name, TCX_MODEL_MAX_ATTRS);
  *attr = &model->attrs[model->n_attrs++];
  memset(*attr, 0, sizeof(**attr));
  memcpy((*attr)->name, name, strlen(name) + 1);

cleanup:
  return rc;
}

int tcx_model_set_string(tcx_ctx *ctx, tcx_model *model, const char *name,
                         const char *value)
{
  tcx_model_attr *attr = NULL;
  int rc = TCX_OK;

  TCX_CHECK(strlen(value) < TCX_MODEL_ATTR_LENGTH, ctx, TCX_ERR_USAGE,
            "value of model attribute \"%s\" has %zu characters; at most %d "
            "fit",
            name, strlen(value), TCX_MODEL_ATTR_LENGTH - 1);
  TCX_TRY(tcx_model_find_attr(ctx, model, name, &attr));
  attr->type = -1;
  memcpy(attr->text, value, strlen(value) + 1);

cleanup:
  return rc;
}

int tcx_model_set_int(tcx_ctx *ctx, tcx_model *model, const char *name,
                      int64_t value)
{
  tcx_model_attr *attr = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_model_find_attr(ctx, model, name, &attr));
  attr->type = TCX_H5_INT32;
  attr->integer = value;

cleanup:
  return rc;
}

int tcx_model_set_double(tcx_ctx *ctx, tcx_model *model, const char *name,
                         double value)
{
  tcx_model_attr *attr = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_model_find_attr(ctx, model, name, &attr));
  attr->type = TCX_H5_DOUBLE;
  attr->number = value;

cleanup:
  return rc;
}

/* Writes the column datasets and the replicated ones. Collective. */
static int tcx_model_write_arrays(tcx_ctx *ctx, tcx_h5_output *out,
                                  const tcx_model *model)
{
  const int64_t per_period[2] = {model->n_periods, model->n_vars};
  const int64_t per_factor[3] = {model->n_periods, model->n_factors,
                                 model->n_vars};
  const int64_t tcs_dims[2] = {model->n_periods, model->n_factors};
  const int64_t objective_dims[1] = {model->n_objective};
  const int64_t begin = model->col_begin, n_local = model->n_local;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_write_columns(ctx, out, "/mean", TCX_H5_DOUBLE, 2,
                               per_period, begin, n_local, model->mean));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/std", TCX_H5_DOUBLE, 2,
                               per_period, begin, n_local, model->std));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/weights", TCX_H5_DOUBLE, 3,
                               per_factor, begin, n_local, model->weights));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/factors", TCX_H5_DOUBLE, 3,
                               per_factor, begin, n_local, model->factors));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/mi", TCX_H5_DOUBLE, 3, per_factor,
                               begin, n_local, model->mi));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/clusters", TCX_H5_INT32, 2,
                               per_period, begin, n_local, model->clusters));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/tcs", TCX_H5_DOUBLE, 2,
                                  tcs_dims, model->tcs));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/objective", TCX_H5_DOUBLE, 1,
                                  objective_dims, model->objective));
  if (model->objective_main && model->objective_regularization) {
    TCX_TRY(tcx_h5_write_replicated(ctx, out, "/objective_main",
                                    TCX_H5_DOUBLE, 1, objective_dims,
                                    model->objective_main));
    TCX_TRY(tcx_h5_write_replicated(ctx, out, "/objective_regularization",
                                    TCX_H5_DOUBLE, 1, objective_dims,
                                    model->objective_regularization));
  }

cleanup:
  return rc;
}

/* Writes the caller's attributes, then the sizes and format ones, which
 * replace caller attributes of the same name. Collective. */
static int tcx_model_write_attrs(tcx_ctx *ctx, tcx_h5_output *out,
                                 const tcx_model *model)
{
  int rc = TCX_OK;

  for (int k = 0; k < model->n_attrs; k++) {
    const tcx_model_attr *attr = &model->attrs[k];

    if (attr->type == TCX_H5_DOUBLE)
      TCX_TRY(tcx_h5_write_attr_double(ctx, out, attr->name, attr->number));
    else if (attr->type == TCX_H5_INT32)
      TCX_TRY(tcx_h5_write_attr_int(ctx, out, attr->name, attr->integer));
    else
      TCX_TRY(tcx_h5_write_attr_string(ctx, out, attr->name, attr->text));
  }
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_periods", model->n_periods));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_factors", model->n_factors));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_vars", model->n_vars));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "format", TCX_MODEL_FORMAT));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "format_version",
                                TCX_MODEL_FORMAT_VERSION));

cleanup:
  return rc;
}

int tcx_model_write(tcx_ctx *ctx, const char *path, const tcx_model *model)
{
  tcx_h5_output *out = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_create(ctx, path, &out));
  TCX_TRY(tcx_model_write_arrays(ctx, out, model));
  TCX_TRY(tcx_model_write_attrs(ctx, out, model));
  TCX_TRY(tcx_h5_commit(ctx, &out));

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

/* Reads a size attribute and checks that it is a whole number in
 * [1, limit]. Collective. */
static int tcx_model_read_size(tcx_ctx *ctx, const char *path,
                               const char *name, int64_t limit,
                               int64_t *size)
{
  double value = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_attr_double(ctx, path, name, &value));
  TCX_CHECK(value >= 1 && value <= (double)limit && value == floor(value),
            ctx, TCX_ERR_INPUT,
            "%s: root attribute \"%s\" is %g; a model needs a whole number "
            "from 1 to %lld",
            path, name, value, (long long)limit);
  *size = (int64_t)value;

cleanup:
  return rc;
}

/* Reads one column dataset into dest (n_values doubles per rank). */
static int tcx_model_read_doubles(tcx_ctx *ctx, const char *path,
                                  const char *name, int n_dims,
                                  const int64_t *dims, const tcx_model *model,
                                  double *dest)
{
  const int64_t count = model->n_local * (n_dims == 3 ? dims[0] * dims[1]
                                                      : dims[0]);
  double *local = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_columns(ctx, path, name, n_dims, dims, model->col_begin,
                              model->n_local, &local));
  memcpy(dest, local, (size_t)count * sizeof(double));

cleanup:
  free(local);
  return rc;
}

/* Reads /clusters and checks that every entry is a factor index. */
static int tcx_model_read_clusters(tcx_ctx *ctx, const char *path,
                                   const int64_t dims[2], tcx_model *model)
{
  const int64_t count = dims[0] * model->n_local;
  double *local = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_columns(ctx, path, "/clusters", 2, dims,
                              model->col_begin, model->n_local, &local));
  for (int64_t k = 0; k < count && rc == TCX_OK; k++) {
    if (local[k] >= 0 && local[k] < (double)model->n_factors)
      model->clusters[k] = (int32_t)local[k];
    else
      rc = tcx_error(ctx, TCX_ERR_INPUT,
                     "%s: /clusters holds %g for variable %lld, but factors "
                     "are numbered 0 to %lld",
                     path, local[k],
                     (long long)(model->col_begin + k % model->n_local),
                     (long long)model->n_factors - 1);
  }
  rc = tcx_ctx_agree(ctx, rc);

cleanup:
  free(local);
  return rc;
}

/* Reads the replicated /tcs and /objective datasets. */
static int tcx_model_read_replicated(tcx_ctx *ctx, const char *path,
                                     tcx_model *model)
{
  double *tcs = NULL, *objective = NULL;
  int64_t dims[3];
  int n_dims = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_replicated(ctx, path, "/tcs", &n_dims, dims, &tcs));
  TCX_CHECK(n_dims == 2 && dims[0] == model->n_periods &&
                dims[1] == model->n_factors,
            ctx, TCX_ERR_INPUT,
            "%s: dataset \"/tcs\" should have shape [%d x %lld]", path,
            model->n_periods, (long long)model->n_factors);
  memcpy(model->tcs, tcs, (size_t)(dims[0] * dims[1]) * sizeof(double));
  TCX_TRY(tcx_h5_read_replicated(ctx, path, "/objective", &n_dims, dims,
                                 &objective));
  TCX_CHECK(n_dims == 1, ctx, TCX_ERR_INPUT,
            "%s: dataset \"/objective\" should have 1 dimension, not %d",
            path, n_dims);
  TCX_TRY(tcx_model_set_objective(ctx, model, objective, dims[0]));

cleanup:
  free(tcs);
  free(objective);
  return rc;
}

/* Reads every dataset of an allocated model. Collective. */
static int tcx_model_read_arrays(tcx_ctx *ctx, const char *path,
                                 tcx_model *model)
{
  const int64_t per_period[2] = {model->n_periods, model->n_vars};
  const int64_t per_factor[3] = {model->n_periods, model->n_factors,
                                 model->n_vars};
  int rc = TCX_OK;

  TCX_TRY(tcx_model_read_doubles(ctx, path, "/mean", 2, per_period, model,
                                 model->mean));
  TCX_TRY(tcx_model_read_doubles(ctx, path, "/std", 2, per_period, model,
                                 model->std));
  TCX_TRY(tcx_model_read_doubles(ctx, path, "/weights", 3, per_factor, model,
                                 model->weights));
  TCX_TRY(tcx_model_read_doubles(ctx, path, "/factors", 3, per_factor, model,
                                 model->factors));
  TCX_TRY(tcx_model_read_doubles(ctx, path, "/mi", 3, per_factor, model,
                                 model->mi));
  TCX_TRY(tcx_model_read_clusters(ctx, path, per_period, model));
  TCX_TRY(tcx_model_read_replicated(ctx, path, model));

cleanup:
  return rc;
}

int tcx_model_read(tcx_ctx *ctx, const char *path, tcx_model **model)
{
  int64_t periods = 0, factors = 0, vars = 0, col_begin = 0, n_local = 0;
  tcx_model *result = NULL;
  int rc = TCX_OK;

  *model = NULL;
  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_h5_check_file(ctx, path, "model file",
                           "pass a model file written by 'tcorex fit'");
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_model_read_size(ctx, path, "n_periods", INT32_MAX, &periods));
  TCX_TRY(tcx_model_read_size(ctx, path, "n_factors", INT32_MAX, &factors));
  TCX_TRY(tcx_model_read_size(ctx, path, "n_vars", INT64_MAX / 2, &vars));
  rc = tcx_partition(ctx, vars, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                     &col_begin, &n_local);
  if (rc == TCX_OK)
    rc = tcx_model_create(ctx, (int)periods, factors, vars, col_begin,
                          n_local, &result);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_model_read_arrays(ctx, path, result));
  *model = result;
  result = NULL;

cleanup:
  tcx_model_destroy(&result);
  return rc;
}
