/* Counter-based random numbers: a draw is a pure function of (seed, stream,
 * index), so a rank can draw the numbers of its own columns and get the same
 * values whatever the number of ranks. */
#ifndef TCOREX_RNG_H
#define TCOREX_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns a uniform double in (0, 1) for the given key. */
double tcx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);

/* Returns a standard normal draw for the given key. */
double tcx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);

#ifdef __cplusplus
}
#endif

#endif
