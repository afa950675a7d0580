/* Prototypes of the BLACS, PBLAS and ScaLAPACK routines that tcorex calls,
 * from Debian's libscalapack-openmpi (ScaLAPACK 2.2.1), which ships no C
 * header for them. Not part of the public interface.
 *
 * Three calling conventions meet here:
 * - The C BLACS interface (Cblacs_*, Csys2blacs_handle) takes values.
 * - PBLAS (pdgemm_, pdtrsm_) is written in C with Fortran-style arguments:
 *   every argument is a pointer and character arguments have no length.
 * - ScaLAPACK proper (descinit_, numroc_, pdpotrf_) is Fortran compiled by
 *   gfortran, so every CHARACTER argument adds a hidden size_t length at the
 *   end of the argument list. Omitting it is undefined behaviour that
 *   gfortran's sibling-call optimisation can turn into a crash.
 * All integers are 32-bit (the library is built without ILP64). PBLAS
 * routines have no info argument: on an invalid argument they print and
 * abort every process, so callers validate sizes and descriptors first. */
#ifndef TCX_SCALAPACK_H
#define TCX_SCALAPACK_H

#include <mpi.h>
#include <stddef.h>

int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int n_prow,
                     int n_pcol);
void Cblacs_gridinfo(int context, int *n_prow, int *n_pcol, int *my_row,
                     int *my_col);
int Cblacs_pnum(int context, int prow, int pcol);
void Cblacs_gridexit(int context);

int numroc_(const int *n, const int *nb, const int *iproc,
            const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb,
               const int *nb, const int *irsrc, const int *icsrc,
               const int *ictxt, const int *lld, int *info);

void pdgemm_(const char *transa, const char *transb, const int *m,
             const int *n, const int *k, const double *alpha, const double *a,
             const int *ia, const int *ja, const int *desca, const double *b,
             const int *ib, const int *jb, const int *descb,
             const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);
void pdtrsm_(const char *side, const char *uplo, const char *transa,
             const char *diag, const int *m, const int *n,
             const double *alpha, const double *a, const int *ia,
             const int *ja, const int *desca, double *b, const int *ib,
             const int *jb, const int *descb);

void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, int *info, size_t uplo_length);

#endif
