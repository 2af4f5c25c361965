/* repr(x) of a double as CPython prints it (float_repr: format 'r', ".0" added),
 * from Ryu's shortest round-trip digits (ryu/, vendored; its d2d() gives the
 * shortest decimal d1...dn x 10^e closest to x, ties to even, as David Gay's
 * dtoa mode 0 that CPython uses).
 *
 * CPython writes the digits in fixed notation when the decimal point falls at
 * -4 < decpt <= 16 (decpt: where the point sits after d1...dn, so x = 0.d1...dn
 * x 10^decpt), else as d1.d2...dn e+XX (at least two exponent digits). Tested
 * against repr on random and edge doubles (tests/test_jsonwrite.py). */
#include "ryu/d2s.c"

#include "shortest.h"

/* The decimal digits of m, written backwards so that the last ends just before end. */
static inline void put_digits(char* end, uint64_t m) {
  while (m >= 100) {  /* two digits a step, from Ryu's digit table */
    const uint32_t pair = (uint32_t) (m % 100);
    m /= 100;
    end -= 2;
    memcpy(end, DIGIT_TABLE + 2 * pair, 2);
  }
  if (m >= 10) {
    memcpy(end - 2, DIGIT_TABLE + 2 * m, 2);
  } else {
    end[-1] = (char) ('0' + m);
  }
}

/* Write repr(f) of a finite f at result (room for SHORTEST_MAX bytes); return its length. */
int shortest_repr(double f, char* result) {
  const uint64_t bits = double_to_bits(f);
  const bool sign = ((bits >> (DOUBLE_MANTISSA_BITS + DOUBLE_EXPONENT_BITS)) & 1) != 0;
  const uint64_t ieeeMantissa = bits & ((1ull << DOUBLE_MANTISSA_BITS) - 1);
  const uint32_t ieeeExponent = (uint32_t) ((bits >> DOUBLE_MANTISSA_BITS) & ((1u << DOUBLE_EXPONENT_BITS) - 1));
  int index = 0;
  if (sign) {
    result[index++] = '-';
  }
  if (ieeeExponent == 0 && ieeeMantissa == 0) {
    memcpy(result + index, "0.0", 3);
    return index + 3;
  }
  floating_decimal_64 v;
  if (d2d_small_int(ieeeMantissa, ieeeExponent, &v)) {
    for (;;) {  /* an integer: its trailing zeros go to the exponent, as d2d's */
      const uint64_t q = div10(v.mantissa);
      const uint32_t r = ((uint32_t) v.mantissa) - 10 * ((uint32_t) q);
      if (r != 0) {
        break;
      }
      v.mantissa = q;
      ++v.exponent;
    }
  } else {
    v = d2d(ieeeMantissa, ieeeExponent);
  }
  const int n = (int) decimalLength17(v.mantissa);
  const int decpt = n + v.exponent;
  char* const p = result + index;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {  /* 0.000ddd */
      p[0] = '0';
      p[1] = '.';
      memset(p + 2, '0', (size_t) -decpt);
      put_digits(p + 2 - decpt + n, v.mantissa);
      return index + 2 - decpt + n;
    }
    if (decpt >= n) {  /* ddd000.0 */
      put_digits(p + n, v.mantissa);
      memset(p + n, '0', (size_t) (decpt - n));
      p[decpt] = '.';
      p[decpt + 1] = '0';
      return index + decpt + 2;
    }
    put_digits(p + 1 + n, v.mantissa);  /* dd.ddd: the digits one place right, then the point */
    memmove(p, p + 1, (size_t) decpt);
    p[decpt] = '.';
    return index + n + 1;
  }
  put_digits(p + 1 + n, v.mantissa);  /* d.ddde+XX */
  p[0] = p[1];
  index += 1;
  if (n > 1) {
    p[1] = '.';
    index += n;
  }
  int exponent = decpt - 1;
  result[index++] = 'e';
  result[index++] = exponent < 0 ? '-' : '+';
  if (exponent < 0) {
    exponent = -exponent;
  }
  if (exponent >= 100) {
    result[index++] = (char) ('0' + exponent / 100);
  }
  result[index++] = (char) ('0' + exponent / 10 % 10);
  result[index++] = (char) ('0' + exponent % 10);
  return index;
}
