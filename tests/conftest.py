"""Backends, array conversion and Hypothesis settings shared by the tests.

The ``backend`` fixture is parametrized over every Array API library we can
reach: NumPy, array-api-strict (its default device, ``Device("device1")`` and
the ``"no_float64"`` device), torch through array-api-compat, JAX when
installed (immutable arrays), and CuPy when a GPU is present. Each is skipped
with a reason when it cannot run.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@dataclass(frozen=True)
class Backend:
    """One Array API library on one device, with conversions to and from NumPy."""

    name: str
    xp: Any
    device: Any = None
    has_float16: bool = True
    has_float64: bool = True

    def supports(self, dtype: Any) -> bool:
        dtype = np.dtype(dtype)
        if dtype == np.float16:
            return self.has_float16
        if dtype in (np.float64, np.complex128):
            return self.has_float64
        return True

    def asarray(self, a: np.ndarray) -> Any:
        """The NumPy array ``a`` as an array of this backend, same dtype."""
        dtype = getattr(self.xp, np.dtype(a.dtype).name)
        if self.name == "torch":
            return self.xp.asarray(np.ascontiguousarray(a), dtype=dtype)
        if self.device is None:
            return self.xp.asarray(a, dtype=dtype)
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.name == "torch":
            return x.detach().resolve_conj().cpu().numpy()
        if self.name == "cupy":
            return x.get()
        if self.name == "jax":
            return np.asarray(x)
        return np.from_dlpack(x)


def _backends() -> list[Any]:
    params = [pytest.param(Backend("numpy", np), id="numpy")]

    if importlib.util.find_spec("array_api_strict"):
        import array_api_strict as strict

        params += [
            pytest.param(Backend("strict", strict, has_float16=False), id="strict"),
            pytest.param(
                Backend("strict-device1", strict, strict.Device("device1"), has_float16=False),
                id="strict-device1",
            ),
            pytest.param(
                Backend(
                    "strict-no_float64",
                    strict,
                    strict.Device("no_float64"),
                    has_float16=False,
                    has_float64=False,
                ),
                id="strict-no_float64",
            ),
        ]
    else:  # pragma: no cover
        params.append(
            pytest.param(None, id="strict", marks=pytest.mark.skip("no array_api_strict"))
        )

    if importlib.util.find_spec("torch"):
        import array_api_compat.torch as torch_xp

        params.append(pytest.param(Backend("torch", torch_xp), id="torch"))
    else:
        params.append(
            pytest.param(None, id="torch", marks=pytest.mark.skip("torch is not installed"))
        )

    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        # JAX computes in 32 bits unless x64 is switched on globally.
        x64 = bool(jax.config.read("jax_enable_x64"))
        params.append(pytest.param(Backend("jax", jnp, has_float64=x64), id="jax"))
    else:
        params.append(pytest.param(None, id="jax", marks=pytest.mark.skip("jax is not installed")))

    reason = "cupy is not installed"
    if importlib.util.find_spec("cupy"):
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                params.append(pytest.param(Backend("cupy", cupy), id="cupy"))
                reason = ""
            else:  # pragma: no cover
                reason = "no CUDA device"
        except Exception as error:  # pragma: no cover - depends on the machine
            reason = f"cupy cannot reach a GPU: {error}"
    if reason:
        params.append(pytest.param(None, id="cupy", marks=pytest.mark.skip(reason)))
    return params


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


IMPLEMENTATIONS = [pytest.param("kernels", id="kernels"), pytest.param("textbook", id="textbook")]


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Any:
    """The public functions (fast kernels) or ``uscale_ref.textbook``: same names, same answers."""
    import uscale_ref
    import uscale_ref.textbook

    return uscale_ref if request.param == "kernels" else uscale_ref.textbook


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)
