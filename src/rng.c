/* Counter-based random numbers. Each draw hashes its key (seed, stream,
 * index) with the splitmix64 finaliser, so a draw needs no generator state
 * and any rank can draw the numbers of its own columns. */
#include <math.h>

#include "tcorex/rng.h"

/* Fractional part of the golden ratio times 2^64, the splitmix64 increment. */
#define TCX_RNG_GOLDEN 0x9e3779b97f4a7c15ull

/* The splitmix64 output function (Stafford's "Mix13" constants). Each of its
 * xor-shift and odd-multiply steps is a bijection of 64-bit words. */
static uint64_t tcx_rng_mix(uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Hashes the key and a lane number into 64 random bits. Every step is a
 * bijection of its last input, so for a fixed (seed, stream, lane) distinct
 * indices never collide. */
static uint64_t tcx_rng_bits(uint64_t seed, uint64_t stream, uint64_t index,
                             uint64_t lane)
{
  uint64_t h = tcx_rng_mix(seed + TCX_RNG_GOLDEN);

  h = tcx_rng_mix(h ^ (stream + lane * TCX_RNG_GOLDEN));
  h = tcx_rng_mix(h + index * TCX_RNG_GOLDEN);
  return h;
}

/* Maps the top 53 bits to the midpoint of one of 2^53 equal cells of (0, 1),
 * so 0 and 1 are never returned. */
static double tcx_rng_open_unit(uint64_t bits)
{
  return ((double)(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double tcx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
  return tcx_rng_open_unit(tcx_rng_bits(seed, stream, index, 0));
}

/* Box-Muller transform of two uniforms from lanes 1 and 2. The sine half of
 * the pair is dropped, so that a draw depends on its key alone. */
double tcx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
  const double u1 = tcx_rng_open_unit(tcx_rng_bits(seed, stream, index, 1));
  const double u2 = tcx_rng_open_unit(tcx_rng_bits(seed, stream, index, 2));

  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
