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
  char digits[18];
  const int n = (int) decimalLength17(v.mantissa);
  uint64_t m = v.mantissa;
  int i = n;
  while (m >= 100) {  /* two digits a step, from Ryu's digit table */
    const uint32_t pair = (uint32_t) (m % 100);
    m /= 100;
    i -= 2;
    memcpy(digits + i, DIGIT_TABLE + 2 * pair, 2);
  }
  if (m >= 10) {
    memcpy(digits + i - 2, DIGIT_TABLE + 2 * m, 2);
  } else {
    digits[i - 1] = (char) ('0' + m);
  }
  const int decpt = n + v.exponent;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {  /* 0.000ddd */
      result[index++] = '0';
      result[index++] = '.';
      memset(result + index, '0', (size_t) -decpt);
      index += -decpt;
      memcpy(result + index, digits, (size_t) n);
      index += n;
    } else if (decpt >= n) {  /* ddd000.0 */
      memcpy(result + index, digits, (size_t) n);
      index += n;
      memset(result + index, '0', (size_t) (decpt - n));
      index += decpt - n;
      result[index++] = '.';
      result[index++] = '0';
    } else {  /* dd.ddd */
      memcpy(result + index, digits, (size_t) decpt);
      index += decpt;
      result[index++] = '.';
      memcpy(result + index, digits + decpt, (size_t) (n - decpt));
      index += n - decpt;
    }
    return index;
  }
  result[index++] = digits[0];  /* d.ddde+XX */
  if (n > 1) {
    result[index++] = '.';
    memcpy(result + index, digits + 1, (size_t) (n - 1));
    index += n - 1;
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
