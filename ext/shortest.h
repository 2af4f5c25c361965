/* repr(x) of a finite double, as CPython prints it (shortest.c). */
#ifndef ERCOT_FAST_SHORTEST_H
#define ERCOT_FAST_SHORTEST_H

/* room a call needs: the longest repr is 24 bytes ("-2.2250738585072014e-308"),
 * and zmij stores eight bytes at a time, up to 25 bytes from the start */
#define SHORTEST_MAX 25

int shortest_repr(double f, char* result);

#endif
