/* repr(x) of a double as CPython prints it (float_repr: format 'r'), from
 * Zmij's shortest round-trip decimal (zmij/, vendored unchanged; its writer
 * prints the shortest decimal d1...dn x 10^e closest to x, as David Gay's
 * dtoa mode 0 that CPython uses, in repr's layout: fixed notation when
 * -4 <= e < 16, else d1.d2...dn e+XX with at least two exponent digits).
 * The one difference: an integer in fixed notation ("45") needs repr's ".0".
 * Tested against repr on random and edge doubles (tests/test_jsonwrite.py). */
#include "zmij/zmij.c"

#include <math.h>

#include "shortest.h"

/* Write repr(f) of a finite f at result (room for SHORTEST_MAX bytes); return its length. */
int shortest_repr(double f, char* result) {
  if (f == 0) {  /* zmij writes "0" */
    if (signbit(f)) {
      memcpy(result, "-0.0", 4);
      return 4;
    }
    memcpy(result, "0.0", 3);
    return 3;
  }
  char* end = zmij_detail_write_double(f, result);
  if (fabs(f) < 1e16 && f == (double) (int64_t) f) {  /* an integer in fixed notation */
    memcpy(end, ".0", 2);
    end += 2;
  }
  return (int) (end - result);
}
