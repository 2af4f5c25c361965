/* repr(x) of a finite double, as CPython prints it (shortest.c). */
#ifndef ERCOT_FAST_SHORTEST_H
#define ERCOT_FAST_SHORTEST_H

#define SHORTEST_MAX 24  /* "-2.2250738585072014e-308" */

int shortest_repr(double f, char* result);

#endif
