/* NIfTI-1 images in and out, through nifticlib: a 4-D BOLD series becomes
 * an HDF5 input file, and per-voxel results go back into 3-D images on the
 * same grid. Each function does its work on rank 0 and is collective only
 * in that every rank returns the same status. */
#ifndef TCOREX_NIFTI_H
#define TCOREX_NIFTI_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts the 4-D image bold_path (.nii or .nii.gz) to the HDF5 file
 * out_path: /data [T, p] float32 contains the time series of the p voxels
 * selected by mask_path (a 3-D image on the same grid, nonzero inside). A
 * NULL mask_path selects the voxels with at least two distinct values over
 * time (NaN not counted) or an infinite value. Voxels are ordered as
 * NIfTI stores them, i fastest, then j, then k; scl_slope and scl_inter
 * are applied. NaN is a missing value and stays NaN; an infinite value in a
 * selected voxel fails with TCX_ERR_INPUT naming the voxel and the volume.
 * The file also holds the voxel coordinates and the geometry that the
 * export functions need (docs/FORMATS.md lists every dataset). Written
 * atomically through out_path.tmp. */
int tcx_nifti_convert(tcx_ctx *ctx, const char *bold_path,
                      const char *mask_path, const char *out_path);

/* Writes labels (length p, one per voxel of the converted file
 * reference_h5, the same on every rank) into a 3-D int32 NIfTI image with
 * the reference's grid, sform and qform. Voxels outside the mask are 0, so
 * labels should start at 1. out_path ends in .nii or .nii.gz; the image is
 * written under a temporary name with the same extension, then renamed. */
int tcx_nifti_export_labels(tcx_ctx *ctx, const char *reference_h5,
                            const int32_t *labels, int64_t p,
                            const char *out_path);

/* Writes per-voxel values (length p, the same on every rank) into a 3-D
 * float32 NIfTI image, like tcx_nifti_export_labels(). Voxels outside the
 * mask are 0. */
int tcx_nifti_export_values(tcx_ctx *ctx, const char *reference_h5,
                            const double *values, int64_t p,
                            const char *out_path);

#ifdef __cplusplus
}
#endif

#endif
