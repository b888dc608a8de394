"""Largest error of uscale_ref (and of upstream, when installed) per dtype.

Runs every case of tests/cases.py in every dtype, compares with the exact
(float64/complex128 loop) results, and prints per dtype the largest absolute
error and the largest error in units of u(dtype) * magnitude, where magnitude
is the same sum built from absolute values (see tests/tolerance.py).

    python benchmarks/accuracy.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cases
import numpy as np
import reference
from tolerance import unit_roundoff

import uscale_ref

try:
    import test_upstream as upstream
except Exception:  # pragma: no cover - optional
    upstream = None


def main() -> None:
    rows = []
    for dtype in cases.DTYPES:
        worst = {"ours": (0.0, 0.0), "upstream": (0.0, 0.0)}
        for case_id in cases.CASES:
            case = cases.spec(case_id)
            kwargs = cases.conv_kwargs(case)
            x, w, b, g = cases.make_inputs(case_id, dtype)
            expected = reference.exact(x, w, b, g, cases.geometry(case))
            ours = {"output": uscale_ref.conv1d(x, w, b, **kwargs)}
            ours.update(uscale_ref.conv1d_backward(g, x, w, b, **kwargs)._asdict())
            results = {"ours": ours}
            if upstream is not None:
                results["upstream"], _ = upstream.run_upstream(
                    x, w, b, g, kwargs, "to_output_scale", (0.5, 0.5, 0.5)
                )
            for who, values in results.items():
                for name, (exact, magnitude, _) in expected.items():
                    error = np.abs(values[name].astype(np.complex128) - exact)
                    units = error / (unit_roundoff(dtype) * magnitude + 1e-300)
                    absolute, in_units = worst[who]
                    worst[who] = (max(absolute, error.max()), max(in_units, units.max()))
        rows.append((dtype, worst))
    print(
        f"{'dtype':<11}{'ours: max |err|':>17}{'in u*mag':>10}"
        f"{'upstream: max |err|':>21}{'in u*mag':>10}"
    )
    for dtype, worst in rows:
        line = f"{dtype:<11}{worst['ours'][0]:>17.3g}{worst['ours'][1]:>10.3f}"
        if upstream is not None:
            line += f"{worst['upstream'][0]:>21.3g}{worst['upstream'][1]:>10.3f}"
        print(line)


if __name__ == "__main__":
    main()
