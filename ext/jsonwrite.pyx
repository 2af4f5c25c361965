"""JSON writer kernel: timestamps and float64 price columns -> compact JSON bytes.

    {"timestamps":["2021-02-17T06:00:00Z",...],
     "data":[{"hub":"HB_NORTH","prices":[8998.99,null,...]},...]}

The pure-Python twin, ercot_fast/kernels/_jsonwrite_py.py, writes the same bytes and is
the test oracle. Everything is checked once in ``write_prices``; the cdef
functions below trust their arguments.
"""
cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.math cimport fabs, isfinite, signbit
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import json

import numpy as np
import pyarrow as pa

from ercot_fast.errors import KernelInputError

FLOAT64 = pa.float64()

# Local times must fall in years 0001..9999 (four-digit years, as datetime).
cdef int64_t MIN_LOCAL_MS = -62135596800000    # 0001-01-01T00:00:00.000
cdef int64_t MAX_LOCAL_MS = 253402300799999    # 9999-12-31T23:59:59.999
cdef int64_t DAY_MS = 86400000
cdef int32_t MAX_OFFSET_MIN = 24 * 60 - 1
# Below 2**46 one ulp is at most 2**-7 < 0.01, below 2**39 at most
# 2**-14 < 0.0001 (see put_fixed).
cdef double CENTS_LIMIT = 70368744177664.0
cdef double TEN_THOUSANDTHS_LIMIT = 549755813888.0
cdef extern from "shortest.h":
    # Room one double takes: its longest repr is 24 bytes, a sign, 17 digits,
    # a point and "e-308" ("-2.2250738585072014e-308"), and shortest_repr
    # stores up to 25 (see shortest.h); the cents path writes at most 18.
    int SHORTEST_MAX
    int shortest_repr(double f, char* result) noexcept nogil
cdef Py_ssize_t MAX_PRICE_LEN = SHORTEST_MAX
cdef extern from "Python.h":
    # the raw C API: a bytes object under construction is a PyObject* whose
    # one reference this module owns until the object is complete
    PyObject* _bytes_new "PyBytes_FromStringAndSize"(const char* text, Py_ssize_t size) except NULL
    char* _bytes_data "PyBytes_AS_STRING"(PyObject* bytes)
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t size) except -1

# Longest timestamp element: ',"YYYY-MM-DDTHH:MM:SS.mmm+HH:MM"'.
cdef Py_ssize_t MAX_STAMP_LEN = 32

# "00" "01" ... "99": two digits per table lookup (a static C string).
cdef const char* PAIRS = (
    b"00010203040506070809"
    b"10111213141516171819"
    b"20212223242526272829"
    b"30313233343536373839"
    b"40414243444546474849"
    b"50515253545556575859"
    b"60616263646566676869"
    b"70717273747576777879"
    b"80818283848586878889"
    b"90919293949596979899")


cdef struct Out:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef inline int reserve(Out* out, Py_ssize_t extra) noexcept nogil:
    """0 when ``extra`` more bytes fit, else -1. The writer sizes the output
    for its worst case before it starts, so -1 means a bug, never a retry."""
    return 0 if out.capacity - out.size >= extra else -1


cdef inline int check(int status) except -1:
    """Turn a C status from the writers in this module into an exception."""
    if status < 0:
        raise SystemError("jsonwrite: the output outgrew its worst-case size")
    return 0


cdef inline int append(Out* out, const char* text, Py_ssize_t length) noexcept nogil:
    if reserve(out, length) < 0:
        return -1
    memcpy(out.data + out.size, text, length)
    out.size += length
    return 0


cdef inline char* put2(char* p, int value) noexcept nogil:
    memcpy(p, PAIRS + 2 * value, 2)
    return p + 2


@cython.cdivision(True)
cdef inline void civil_from_days(int64_t days, int* year, int* month, int* day) noexcept nogil:
    """Proleptic Gregorian date of ``days`` since 1970-01-01 (Howard Hinnant's
    civil_from_days, written for C's truncating division)."""
    cdef int64_t z = days + 719468                        # days since 0000-03-01
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097                   # [0, 146096]
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # [0, 399]
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # [0, 365], from March 1
    cdef int64_t mp = (5 * doy + 2) // 153                # [0, 11], March = 0
    day[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    month[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    year[0] = <int>(yoe + era * 400 + (month[0] <= 2))


cdef struct DateCache:
    int64_t start        # ms since the epoch of the first instant of ``text``'s day
    char text[11]        # "YYYY-MM-DDT"


@cython.cdivision(True)
cdef char* put_stamp(char* p, int64_t local_ms, bint has_offset, int32_t offset,
                     DateCache* date) noexcept nogil:
    """Write '"YYYY-MM-DDTHH:MM:SS[.mmm](Z|+HH:MM)"' at p; return the end.
    Precondition: local_ms within [MIN_LOCAL_MS, MAX_LOCAL_MS], |offset| <= MAX_OFFSET_MIN."""
    cdef int64_t days
    cdef int ms_of_day, year, month, day, ms
    cdef char* d
    # PERF: consecutive instants share their date: the civil date is computed
    # once a day, and within the cached day no 64-bit division is needed.
    if not date.start <= local_ms < date.start + DAY_MS:
        days = local_ms // DAY_MS
        if local_ms % DAY_MS < 0:
            days -= 1
        civil_from_days(days, &year, &month, &day)
        d = put2(put2(date.text, year // 100), year % 100)
        d[0] = b'-'
        d = put2(d + 1, month)
        d[0] = b'-'
        d = put2(d + 1, day)
        d[0] = b'T'
        date.start = days * DAY_MS
    ms_of_day = <int>(local_ms - date.start)
    p[0] = b'"'
    memcpy(p + 1, date.text, 11)
    p = put2(p + 12, ms_of_day // 3600000)
    p[0] = b':'
    p = put2(p + 1, ms_of_day // 60000 % 60)
    p[0] = b':'
    p = put2(p + 1, ms_of_day // 1000 % 60)
    ms = ms_of_day % 1000
    if ms:
        p[0] = b'.'
        p[1] = PAIRS[2 * (ms // 100) + 1]   # the pair "0d" ends in the digit d
        p = put2(p + 2, ms % 100)
    if has_offset:
        p[0] = b'-' if offset < 0 else b'+'
        offset = -offset if offset < 0 else offset
        p = put2(p + 1, offset // 60)
        p[0] = b':'
        p = put2(p + 1, offset % 60)
    else:
        p[0] = b'Z'
        p += 1
    p[0] = b'"'
    return p + 1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t first_bad_row(const int64_t* stamps, const int32_t* offsets, Py_ssize_t n) noexcept nogil:
    """Index of the first row whose offset or local time is out of range, else -1."""
    cdef Py_ssize_t i
    cdef int32_t offset
    cdef int64_t local_ms
    for i in range(n):
        offset = offsets[i] if offsets != NULL else 0
        # NOTE: the bounds on stamps[i] come first so that the sum cannot overflow.
        if (offset < -MAX_OFFSET_MIN or offset > MAX_OFFSET_MIN
                or stamps[i] < MIN_LOCAL_MS - DAY_MS or stamps[i] > MAX_LOCAL_MS + DAY_MS):
            return i
        local_ms = stamps[i] + 60000 * <int64_t>offset
        if local_ms < MIN_LOCAL_MS or local_ms > MAX_LOCAL_MS:
            return i
    return -1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int write_stamps(Out* out, const int64_t* stamps, const int32_t* offsets, Py_ssize_t n) noexcept nogil:
    """Append the n timestamps, comma-separated: 0, or -1 when memory runs out."""
    cdef Py_ssize_t i
    cdef char* p
    cdef int32_t offset
    cdef DateCache date
    date.start = INT64_MIN   # no day cached yet: no instant is in [start, start + DAY_MS)
    # NOTE: n counts the rows of an array in memory, so n * 32 cannot overflow.
    if reserve(out, n * MAX_STAMP_LEN) < 0:
        return -1
    # PERF: a local cursor; the compiler must assume that stores through
    # out.data alias *out, and would reload out.size after every byte.
    p = out.data + out.size
    for i in range(n):
        if i:
            p[0] = b','
            p += 1
        offset = offsets[i] if offsets != NULL else 0
        p = put_stamp(p, stamps[i] + 60000 * <int64_t>offset, offsets != NULL, offset, &date)
    out.size = p - out.data
    return 0


@cython.cdivision(True)
cdef inline char* put_uint(char* p, uint64_t value) noexcept nogil:
    """Write value in decimal at p; return the end."""
    cdef uint64_t rest = value
    cdef char* end = p + 1
    while rest >= 10:
        rest //= 10
        end += 1
    p = end
    while value >= 100:
        p -= 2
        memcpy(p, PAIRS + 2 * (value % 100), 2)
        value //= 100
    if value >= 10:
        memcpy(p - 2, PAIRS + 2 * value, 2)
    else:
        (p - 1)[0] = PAIRS[2 * value + 1]
    return end


@cython.cdivision(True)
cdef inline char* put_fixed(char* p, double x, double scale, double limit, int digits) noexcept nogil:
    """Write repr(x) at p and return the end when x is a whole number of
    1/scale units (scale = 10**digits: cents, or 1/10000 for means of cents)
    below ``limit`` in magnitude; else return NULL (bytes at p are then garbage).

    Why the bytes equal repr(x). Let c be the integer nearest |x| * scale (any
    candidate will do: the check decides). c < scale * limit < 2**53, so
    (double)c is exact and, IEEE division being correctly rounded,
    (double)c / scale == |x| says that |x| is the double nearest to D = c/scale.
    repr(x) prints, of the decimals that round to x (an interval I around x),
    one with the fewest significant digits. I is at most one ulp wide, and the
    limits (2**46 for cents, 2**39 for 4 digits) keep ulp(x) below 1/scale, so
    D is the only multiple of 1/scale in I: every other member of I has a
    non-zero digit after D's last one, so none is shorter. All members of I
    share D's leading digit position unless I straddles a power of ten; that
    power would be a multiple of 1/scale in I, i.e. D itself. So repr prints
    D's digits, and as 1/scale <= |x| < 1e16 (or x == 0), in positional form
    with trailing zeros dropped but one fractional digit kept:
    4520 cents -> "45.2", 4500 -> "45.0", 4523 -> "45.23", 5 -> "0.05".
    The bound matters: just above 2**46, 2**46 + 15/64 passes the cents check
    with c ending in 24, but repr prints the nearer "70368744177664.23".
    """
    cdef double magnitude = fabs(x)
    cdef int64_t c
    cdef int fraction, width
    if not magnitude < limit:   # also rejects NaN and infinities
        return NULL
    # PERF: truncating |x| * scale + 0.5 rounds without llround's libm call;
    # int64_t converts to and from double in one instruction, uint64_t divides
    # without sign fix-ups.
    c = <int64_t>(magnitude * scale + 0.5)
    if <double>c / scale != magnitude:
        return NULL
    if signbit(x):   # NOTE: covers -0.0, which compares equal to 0.0 above
        p[0] = b'-'
        p += 1
    p = put_uint(p, <uint64_t>c // <uint64_t>scale)
    fraction = <int>(<uint64_t>c % <uint64_t>scale)
    p[0] = b'.'
    if digits == 2:
        memcpy(p + 1, PAIRS + 2 * fraction, 2)
    else:
        memcpy(p + 1, PAIRS + 2 * (fraction // 100), 2)
        memcpy(p + 3, PAIRS + 2 * (fraction % 100), 2)
    width = digits
    while width > 1 and p[width] == b'0':   # drop trailing zeros, keep one digit
        width -= 1
    return p + 1 + width


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int write_column(Out* out, const double* values, const uint8_t* validity,
                      Py_ssize_t offset, Py_ssize_t n) except -1:
    """Append values[offset:offset + n] as comma-separated JSON numbers: null where
    the validity bit is 0 (validity may be NULL: all valid) or the value is not
    finite, each as repr(x) prints it."""
    cdef Py_ssize_t i, j
    cdef double x
    cdef char* p
    cdef char* end
    check(reserve(out, n * (1 + MAX_PRICE_LEN)))
    p = out.data + out.size   # PERF: a local cursor, as in write_stamps
    for i in range(n):
        if i:
            p[0] = b','
            p += 1
        j = offset + i
        x = values[j]
        if validity != NULL and not (validity[j >> 3] >> (j & 7)) & 1:
            memcpy(p, b"null", 4)
            p += 4
            continue
        # PERF: ERCOT prices are whole cents, and hourly means of them
        # multiples of 0.0025; integer printing skips the shortest-round-trip
        # search for them. Below 2**39 one check covers both (a cent is 100
        # ten-thousandths), so a value that is neither costs one check only.
        if fabs(x) < TEN_THOUSANDTHS_LIMIT:
            end = put_fixed(p, x, 10000.0, TEN_THOUSANDTHS_LIMIT, 4)
        else:
            end = put_fixed(p, x, 100.0, CENTS_LIMIT, 2)
        if end != NULL:
            p = end
        elif not isfinite(x):
            memcpy(p, b"null", 4)
            p += 4
        else:
            p += shortest_repr(x, p)  # repr(x), from Zmij's shortest decimal (ext/shortest.c)
    out.size = p - out.data
    return 0


cdef _check_array(array, dtype, str what, Py_ssize_t length=-1):
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise KernelInputError(f"{what} must be a 1-D numpy {np.dtype(dtype)} array",
                               f"got {type(array).__name__} {getattr(array, 'dtype', '')}")
    if not (array.flags.c_contiguous and array.flags.aligned):
        raise KernelInputError(f"{what} must be C-contiguous and aligned",
                               "pass np.ascontiguousarray(...) of it")
    if length >= 0 and array.shape[0] != length:
        raise KernelInputError(f"{what} has {array.shape[0]} rows, timestamps {length}")


cdef dict _NAME_JSON = {}   # series name -> its JSON string literal, as bytes


cdef bytes _name_json(str name):
    """json.dumps(name) as bytes, memoised: the same few names recur in every request."""
    cdef bytes text = _NAME_JSON.get(name)
    if text is None:
        text = json.dumps(name).encode()
        if len(_NAME_JSON) < 100_000:   # bounded, whatever names callers invent
            _NAME_JSON[name] = text
    return text


cdef _column_buffers(column, Py_ssize_t n):
    """(validity or None, values, offset) of a float64 pyarrow.Array of length n."""
    if not isinstance(column, pa.Array) or column.type != FLOAT64:
        raise KernelInputError("each column must be a pyarrow.Array of float64",
                               f"got {type(column).__name__} {getattr(column, 'type', '')}")
    if len(column) != n:
        raise KernelInputError(f"a column has {len(column)} values, timestamps {n}")
    validity, values = column.buffers()
    end = column.offset + n
    if n and (values is None or values.size < 8 * end or values.address % 8
              or (validity is not None and validity.size < (end + 7) // 8)):
        raise KernelInputError("a column's buffers are too short or misaligned",
                               "build it with pyarrow (pa.array) rather than from_buffers")
    return validity, values, column.offset


cdef struct Column:
    const double* values       # NULL when the table has no rows
    const uint8_t* validity    # NULL: every value is valid
    Py_ssize_t offset          # the Arrow array's offset, in values


cdef class PriceTable:
    """The writer's view of a price table: sorted UTC instants and float64
    Arrow columns, checked once and held as raw pointers, so that writing a
    slice of it costs no per-call checks or Arrow objects (the store builds one
    per data set at load time).

    timestamps: 1-D C-contiguous int64 ndarray, ms since the epoch (UTC), in
        years 0001..9999.
    names, columns: series names (str) and float64 pyarrow.Arrays of the same
        length as timestamps, which may be slices and may hold nulls.
    A broken precondition raises KernelInputError.
    """
    cdef readonly object timestamps
    cdef readonly tuple names
    cdef tuple _columns          # NOTE: owns the memory the pointers below read
    cdef tuple _names_json
    cdef const int64_t* _stamps
    cdef Py_ssize_t _rows
    cdef Column* _cols

    def __cinit__(self, timestamps, names, columns):
        cdef const int64_t[::1] stamps
        cdef Py_ssize_t i, bad
        self._cols = NULL
        _check_array(timestamps, np.int64, "timestamps")
        names = tuple(names)
        columns = tuple(columns)
        if len(names) != len(columns):
            raise KernelInputError(f"{len(names)} names but {len(columns)} columns")
        if not all(isinstance(name, str) for name in names):
            raise KernelInputError("names must be str")
        self._rows = timestamps.shape[0]
        self._stamps = NULL
        if self._rows:
            stamps = timestamps
            self._stamps = &stamps[0]
        bad = first_bad_row(self._stamps, NULL, self._rows)
        if bad >= 0:
            raise KernelInputError(f"timestamps[{bad}] = {self._stamps[bad]} is out of range",
                                   "instants must lie in years 0001..9999")
        self._cols = <Column*>malloc(max(1, len(columns)) * sizeof(Column))
        if self._cols == NULL:
            raise MemoryError("jsonwrite: cannot allocate the column table")
        for i, column in enumerate(columns):
            validity, values, offset = _column_buffers(column, self._rows)
            self._cols[i].values = NULL
            self._cols[i].validity = NULL
            self._cols[i].offset = offset
            if self._rows:
                self._cols[i].values = <const double*><uintptr_t>values.address
            if validity is not None:
                self._cols[i].validity = <const uint8_t*><uintptr_t>validity.address
        self.timestamps = timestamps
        self.names = names
        self._columns = columns
        self._names_json = tuple(_name_json(name) for name in names)

    def __dealloc__(self):
        free(self._cols)

    def __len__(self):
        return self._rows

    def write(self, Py_ssize_t lo, Py_ssize_t hi, column_indices, utc_offsets=None):
        """The /api/prices body for rows [lo, hi) of the columns at
        ``column_indices`` (in that order), as compact JSON bytes.

        utc_offsets: None (times written in UTC, "Z") or a 1-D C-contiguous
            int32 ndarray of hi - lo minutes east of UTC, one per row (times
            written in local time with their offset, e.g. "-05:00"); local
            times must stay in years 0001..9999 and |offset| < 24 h.
        Prices are written as repr(float) writes them; nulls, NaN and
        infinities as null.
        """
        cdef const int32_t[::1] offsets
        cdef const int32_t* offsets_ptr = NULL
        cdef Py_ssize_t n, bad, index, count = 0
        cdef const int64_t* stamps
        cdef Column* column
        cdef Py_ssize_t bound
        cdef PyObject* raw
        cdef Out out
        if not 0 <= lo <= hi <= self._rows:
            raise KernelInputError(f"rows [{lo}, {hi}) are not within the table's {self._rows}")
        n = hi - lo
        stamps = self._stamps + lo if n else NULL
        if utc_offsets is not None:
            _check_array(utc_offsets, np.int32, "utc_offsets", n)
            if n:
                offsets = utc_offsets
                offsets_ptr = &offsets[0]
                bad = first_bad_row(stamps, offsets_ptr, n)
                if bad >= 0:
                    raise KernelInputError(
                        f"timestamps[{lo + bad}] = {stamps[bad]} with utc_offsets[{bad}] = {offsets_ptr[bad]} "
                        "is out of range",
                        "local times must lie in years 0001..9999 and offsets within +-1439 minutes")
        column_indices = tuple(column_indices)
        for index in column_indices:
            if not 0 <= index < len(self._names_json):
                raise KernelInputError(f"no column {index} in a table of {len(self._names_json)}")

        # PERF: the answer is written straight into the bytes object that is
        # returned: sized for the worst case (pages never written are never
        # touched), then shrunk once. No scratch buffer, no copy.
        bound = 64 + n * MAX_STAMP_LEN
        for index in column_indices:
            bound += len(<bytes>self._names_json[index]) + 24 + n * (1 + MAX_PRICE_LEN)
        raw = _bytes_new(NULL, bound)   # NOTE: our own reference, dropped in finally
        try:
            out.data = _bytes_data(raw)
            out.size = 0
            out.capacity = bound
            check(append(&out, b'{"timestamps":[', 15))
            check(write_stamps(&out, stamps, offsets_ptr, n))
            check(append(&out, b'],"data":[', 10))
            for index in column_indices:
                name = <bytes>self._names_json[index]
                check(append(&out, b',{"hub":' if count else b'{"hub":', 8 if count else 7))
                check(append(&out, name, len(name)))
                check(append(&out, b',"prices":[', 11))
                if n:
                    column = &self._cols[index]
                    write_column(&out, column.values, column.validity, column.offset + lo, n)
                check(append(&out, b']}', 2))
                count += 1
            check(append(&out, b']}', 2))
            _PyBytes_Resize(&raw, out.size)   # sets raw to NULL if it fails
            body = <object>raw
        finally:
            Py_XDECREF(raw)
        return body


def write_prices(timestamps, utc_offsets, names, columns):
    """Write a whole price table as compact JSON bytes: the PriceTable of
    (timestamps, names, columns), all rows and columns (see PriceTable)."""
    table = PriceTable(timestamps, names, columns)
    return table.write(0, len(table), range(len(table.names)), utc_offsets)
