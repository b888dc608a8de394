"""Exact sums of the convolution, rounded once: what the golden fixtures' expected values are.

- :mod:`uscale_ref.exact.ozaki`: error-free matrix products through any BLAS
  (operands cut into few-bit integer slices, slice products summed as 64-bit
  integers) and the correct rounding of the exact sums;
- :mod:`uscale_ref.exact.sliced`: the forward, dgrad and wgrad of whole
  arrays on them, blocked so that memory stays bounded;
- :mod:`uscale_ref.exact.points`: the same sums at chosen positions only,
  from inputs generated where they are needed (compact fixtures);
- :mod:`uscale_ref.exact.filtered`: the same bytes for whole arrays, faster:
  float64 sums with a proven error bound, exact (``points``) only where the
  bound leaves the rounding open (whole fixtures);
- :mod:`uscale_ref.exact.doubledouble`: a second, element-wise route to the
  same values (double-double sums), kept as an independent check.

The golden fixtures (:mod:`uscale_ref.golden`) are built on it.
"""
