"""Other frameworks' conv1d as kernels under test: each framework's own unscaled convolution
and its own autograd (or vjp), with uscale_ref's scales applied.

An adapter gives the ``(forward, backward)`` pair that
:func:`uscale_ref.testing.assert_conv1d` takes. Both take and return NumPy arrays
(bfloat16 as ``ml_dtypes.bfloat16``), so the default ``to_array`` serves every
framework; inside, the arrays become the framework's tensors, and everything the
framework computes (the convolution, its gradients, the bias gradient's sum, the
multiplication by each scale) is the framework's own::

    output      = s_output * conv(x, w, b)              (the bias inside, as upstream)
    grad_input  = s_grad_input  * vjp_x(g)
    grad_weight = s_grad_weight * vjp_w(g)
    grad_bias   = s_grad_bias   * vjp_b(g)

with the scales of :func:`uscale_ref.conv1d_scales`, each multiplication made as
upstream's PyTorch makes it: a float16 or bfloat16 tensor times the scale in float32,
rounded once (JAX, TensorFlow and tinygrad would otherwise round the scale itself to the
narrow format first, a scale error of up to half a unit of it). Padding is applied explicitly
(``pad_left``, ``pad_right`` of :func:`uscale_ref.conv1d_geometry`), so ``"same"``
with an even kernel means the same thing for every framework. Complex gradients follow
PyTorch's convention (the conjugate Wirtinger derivative); JAX's vjp is its conjugate,
so the JAX adapters conjugate the cotangent and the result.

No framework is needed by uscale_ref itself: each is imported when its adapter is
built, and :func:`missing` says why one cannot be.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..functional import Conv1dGrads
from ..geometry import conv1d_geometry
from ..scales import conv1d_scales

__all__ = ["ADAPTERS", "Adapter", "adapter", "missing"]

Kernel = Callable[..., Any]
_SHAPE_ARGS = ("stride", "padding", "dilation", "groups")


@dataclass(frozen=True)
class Adapter:
    """A framework's conv1d, as a kernel under test.

    Attributes
    ----------
    name : str
        ``torch``, ``torch-channels-last``, ``torch-no-onednn``, ``jax``,
        ``jax-highest``, ``tensorflow``, ``onnxruntime`` or ``tinygrad``.
    module : str
        The framework's import name.
    description : str
        What runs, in words.
    dtypes : tuple of str
        The dtypes the survey runs it on (a dtype the framework then refuses is
        reported as unsupported, not as a failure).
    build : callable
        ``build() -> (forward, backward)``; backward is None for a framework without
        gradients (onnxruntime).
    """

    name: str
    module: str
    description: str
    dtypes: tuple[str, ...]
    build: Callable[[], tuple[Kernel, Kernel | None]]

    def kernels(self) -> tuple[Kernel, Kernel | None]:
        """``(forward, backward)`` for :func:`uscale_ref.testing.assert_conv1d`.

        Raises
        ------
        ImportError
            When the framework is not installed (:func:`missing` says so first).
        """
        reason = missing(self)
        if reason is not None:
            raise ImportError(f"adapter {self.name!r}: {reason}")
        return self.build()

    def version(self) -> str:
        """The framework's version (from its installed metadata, without importing it), or
        ``"not installed"``."""
        return version_of(self.module)


def version_of(module: str) -> str:
    """An installed framework's version, or ``"not installed"``."""
    from importlib import metadata

    if importlib.util.find_spec(module) is None:
        return "not installed"
    for distribution in _DISTRIBUTIONS.get(module, (module,)):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu")}


def missing(chosen: Adapter) -> str | None:
    """Why ``chosen`` cannot run here (its framework not installed, or without a device),
    or None when it can."""
    if importlib.util.find_spec(chosen.module) is None:
        command = _PIP.get(chosen.module, chosen.module)
        return f"{chosen.module} is not installed (pip install {command})"
    if chosen.module == "onnxruntime" and importlib.util.find_spec("onnx") is None:
        return "onnx is not installed (pip install onnx), needed to build the model"
    if chosen.module == "tinygrad":
        try:
            from tinygrad.device import Device

            Device.DEFAULT  # noqa: B018 - choosing a device fails where none can run
        except Exception as error:
            return f"tinygrad has no usable device here ({error}; its CPU device needs clang)"
    return None


_PIP = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow-cpu",
        "onnxruntime": "onnxruntime onnx", "tinygrad": "tinygrad"}  # fmt: skip


# -- shared plumbing ---------------------------------------------------------------------------


def _geometry(x: np.ndarray, w: np.ndarray, kwargs: dict[str, Any]) -> Any:
    return conv1d_geometry(x.shape, w.shape, **{k: kwargs[k] for k in _SHAPE_ARGS})


def _scales(x: np.ndarray, w: np.ndarray, kwargs: dict[str, Any]) -> Any:
    return conv1d_scales(x.shape, w.shape, **kwargs)


def _batched(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 3 else x[None]


def _unbatched_like(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y if x.ndim == 3 else y[0]


def _is_bfloat16(a: np.ndarray) -> bool:
    return bool(a.dtype.name == "bfloat16")


def _to_bfloat16(a: np.ndarray) -> np.ndarray:
    import ml_dtypes

    return a.astype(ml_dtypes.bfloat16)


@dataclass(frozen=True)
class _Framework:
    """What an autograd framework brings to an adapter.

    ``tensor`` turns a NumPy array into the framework's (None stays None); ``conv``
    is its unscaled convolution, ``conv(x, w, b, geometry)`` with the bias inside (b may
    be None); ``gradients(f, inputs, g)`` its vector-Jacobian product of ``f`` at
    ``inputs`` with the cotangent ``g``, in PyTorch's convention; ``scaled(t, s)`` a
    result times a scale, as a NumPy array; ``context`` the settings both passes run
    under.
    """

    tensor: Callable[[np.ndarray | None], Any]
    conv: Callable[[Any, Any, Any, Any], Any]
    gradients: Callable[[Callable[..., Any], list[Any], Any], list[Any]]
    scaled: Callable[[Any, float], np.ndarray]
    context: Callable[[], Any] = contextlib.nullcontext


def _kernels(framework: _Framework) -> tuple[Kernel, Kernel]:
    """The ``(forward, backward)`` pair of a framework: its convolution and its gradients,
    each result times its scale."""
    fw = framework

    def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, **kwargs: Any) -> np.ndarray:
        geo, scales = _geometry(x, w, kwargs), _scales(x, w, kwargs)
        with fw.context():
            return fw.scaled(fw.conv(fw.tensor(x), fw.tensor(w), fw.tensor(b), geo), scales.output)

    def backward(
        g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, **kwargs: Any
    ) -> Conv1dGrads:
        geo, scales = _geometry(x, w, kwargs), _scales(x, w, kwargs)
        inputs = [fw.tensor(x), fw.tensor(w)] + ([] if b is None else [fw.tensor(b)])

        def unscaled(*arrays: Any) -> Any:
            return fw.conv(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None, geo)

        with fw.context():
            grads = fw.gradients(unscaled, inputs, fw.tensor(g))
            return Conv1dGrads(
                fw.scaled(grads[0], scales.grad_input),
                fw.scaled(grads[1], scales.grad_weight),
                None if b is None else fw.scaled(grads[2], scales.grad_bias),
            )

    return forward, backward


# -- PyTorch -----------------------------------------------------------------------------------


def _torch(layout: str = "default", onednn: bool = True) -> tuple[Kernel, Kernel]:
    import torch
    import torch.nn.functional as F

    def tensor(a: np.ndarray | None) -> Any:
        if a is None:
            return None
        if _is_bfloat16(a):
            return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(np.ascontiguousarray(a))

    def numpy(t: Any) -> np.ndarray:
        t = t.detach().resolve_conj()
        if t.dtype == torch.bfloat16:
            return _to_bfloat16(t.float().numpy())
        return np.array(t.contiguous().numpy())

    @contextlib.contextmanager
    def flags() -> Any:
        if onednn:
            yield
            return
        with warnings.catch_warnings():  # its note on Intel GPUs' TF32, irrelevant here
            warnings.simplefilter("ignore", UserWarning)
            context = torch.backends.mkldnn.flags(enabled=False)
            context.__enter__()
        try:
            yield
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                context.__exit__(None, None, None)

    def conv(x: Any, w: Any, b: Any, geo: Any) -> Any:
        batched = x.ndim == 3
        x = x if batched else x[None]
        x = F.pad(x, (geo.pad_left, geo.pad_right))
        if layout == "channels_last":  # as a 2-D convolution over (1, L), NHWC in memory
            x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            y = F.conv2d(x4, w4, b, stride=(1, geo.stride), dilation=(1, geo.dilation),
                         groups=geo.groups).squeeze(2)  # fmt: skip
        else:
            y = F.conv1d(x, w, b, stride=geo.stride, dilation=geo.dilation, groups=geo.groups)
        return y if batched else y[0]

    def gradients(f: Callable[..., Any], inputs: list[Any], g: Any) -> list[Any]:
        for t in inputs:
            t.requires_grad_()
        f(*inputs).backward(g)
        return [t.grad for t in inputs]

    def scaled(t: Any, scale: float) -> np.ndarray:
        with torch.no_grad():  # as upstream: a narrow tensor times a Python float, rounded once
            return numpy(t * scale)

    return _kernels(_Framework(tensor, conv, gradients, scaled, flags))


# -- JAX ---------------------------------------------------------------------------------------


def _jax(highest: bool = False) -> tuple[Kernel, Kernel]:
    import jax

    settings: Any = jax.config  # typed in some JAX releases, not in others
    settings.update("jax_enable_x64", True)  # float64 and complex128 cases need it
    import jax.numpy as jnp

    precision = jax.lax.Precision.HIGHEST if highest else None

    def conv(x: Any, w: Any, b: Any, geo: Any) -> Any:
        batched = x.ndim == 3
        y = jax.lax.conv_general_dilated(
            x if batched else x[None], w, window_strides=(geo.stride,),
            padding=[(geo.pad_left, geo.pad_right)], rhs_dilation=(geo.dilation,),
            feature_group_count=geo.groups, dimension_numbers=("NCH", "OIH", "NCH"),
            precision=precision,
        )  # fmt: skip
        if b is not None:
            y = y + b[:, None]
        return y if batched else y[0]

    def array(a: np.ndarray | None) -> Any:
        return None if a is None else jnp.asarray(a)

    def scaled(t: Any, scale: float) -> np.ndarray:
        if t.dtype in (jnp.float16, jnp.bfloat16):
            return np.asarray((t.astype(jnp.float32) * np.float32(scale)).astype(t.dtype))
        return np.asarray(t * np.asarray(scale, dtype=t.real.dtype))

    def gradients(f: Callable[..., Any], inputs: list[Any], g: Any) -> list[Any]:
        complex_ = jnp.iscomplexobj(g)
        _, vjp = jax.vjp(f, *inputs)
        grads = vjp(jnp.conj(g) if complex_ else g)
        # PyTorch's convention is the conjugate of JAX's.
        return [jnp.conj(t) if complex_ else t for t in grads]

    return _kernels(_Framework(array, conv, gradients, scaled))


# -- TensorFlow --------------------------------------------------------------------------------


def _tensorflow() -> tuple[Kernel, Kernel]:
    import tensorflow as tf

    def tensor(a: np.ndarray | None) -> Any:
        if a is None:
            return None
        if _is_bfloat16(a):
            return tf.cast(tf.constant(a.astype(np.float32)), tf.bfloat16)
        return tf.constant(a)

    def numpy(t: Any) -> np.ndarray:
        if t.dtype == tf.bfloat16:
            return _to_bfloat16(tf.cast(t, tf.float32).numpy())
        return np.asarray(t.numpy())

    def scaled(t: Any, scale: float) -> np.ndarray:
        if t.dtype in (tf.float16, tf.bfloat16):
            return numpy(tf.cast(tf.cast(t, tf.float32) * tf.constant(scale, tf.float32), t.dtype))
        return numpy(t * tf.constant(scale, dtype=t.dtype))

    def conv(x: Any, w: Any, b: Any, geo: Any) -> Any:
        batched = len(x.shape) == 3
        x = x if batched else x[None]
        x = tf.pad(x, [[0, 0], [0, 0], [geo.pad_left, geo.pad_right]])
        # TensorFlow's CPU convolution takes channels last: (N, L, C) and (K, C_g, O).
        y = tf.nn.conv1d(tf.transpose(x, [0, 2, 1]), tf.transpose(w, [2, 1, 0]),
                         stride=geo.stride, padding="VALID", dilations=geo.dilation)  # fmt: skip
        if b is not None:  # as Keras' Conv1D adds it (its gradient is BiasAddGrad's sum)
            y = tf.nn.bias_add(y, b)
        y = tf.transpose(y, [0, 2, 1])
        return y if batched else y[0]

    def gradients(f: Callable[..., Any], inputs: list[Any], g: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = f(*inputs)
        return list(tape.gradient(y, inputs, output_gradients=g))

    return _kernels(_Framework(tensor, conv, gradients, scaled))


# -- onnxruntime -------------------------------------------------------------------------------


def _onnxruntime() -> tuple[Kernel, None]:
    import onnxruntime
    from onnx import TensorProto, helper

    kinds = {"float16": TensorProto.FLOAT16, "float32": TensorProto.FLOAT,
             "float64": TensorProto.DOUBLE, "bfloat16": TensorProto.BFLOAT16}  # fmt: skip

    def session(dtype: str, geo: Any, bias: bool) -> Any:
        kind = kinds[dtype]
        inputs = [helper.make_tensor_value_info("x", kind, None),
                  helper.make_tensor_value_info("w", kind, None)]  # fmt: skip
        if bias:
            inputs.append(helper.make_tensor_value_info("b", kind, None))
        node = helper.make_node(
            "Conv", [v.name for v in inputs], ["y"], strides=[geo.stride],
            dilations=[geo.dilation], group=geo.groups, pads=[geo.pad_left, geo.pad_right],
        )  # fmt: skip
        graph = helper.make_graph([node], "conv1d", inputs,
                                  [helper.make_tensor_value_info("y", kind, None)])  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip

    def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, **kwargs: Any) -> np.ndarray:
        geo, scales = _geometry(x, w, kwargs), _scales(x, w, kwargs)
        dtype = x.dtype.name
        if dtype not in kinds:
            raise TypeError(f"onnxruntime's Conv takes no {dtype}")
        feeds = {"x": _batched(x), "w": w}
        if b is not None:
            feeds["b"] = b
        (y,) = session(dtype, geo, b is not None).run(None, feeds)
        # The scale applied as upstream does: in float32, the product rounded once.
        wide = np.asarray(y, dtype=np.float64 if dtype == "float64" else np.float32)
        scaled = wide * np.asarray(scales.output, dtype=wide.dtype)
        return _unbatched_like(x, scaled.astype(x.dtype))

    return forward, None


# -- tinygrad ----------------------------------------------------------------------------------


def _tinygrad() -> tuple[Kernel, Kernel]:
    from tinygrad.dtype import dtypes
    from tinygrad.tensor import Tensor

    kinds = {"float16": dtypes.float16, "float32": dtypes.float32, "float64": dtypes.float64,
             "bfloat16": dtypes.bfloat16}  # fmt: skip

    def tensor(a: np.ndarray | None) -> Any:
        if a is None:
            return None
        name = a.dtype.name
        if name not in kinds:
            raise TypeError(f"tinygrad has no {name}")
        t = Tensor(a.astype(np.float32) if name == "bfloat16" else np.ascontiguousarray(a))
        return t.cast(kinds[name]) if name == "bfloat16" else t

    def numpy(t: Any) -> np.ndarray:
        if t.dtype == dtypes.bfloat16:
            return _to_bfloat16(t.cast(dtypes.float32).numpy())
        return np.asarray(t.numpy())

    def scaled(t: Any, scale: float) -> np.ndarray:
        if t.dtype in (dtypes.float16, dtypes.bfloat16):
            return numpy((t.cast(dtypes.float32) * scale).cast(t.dtype))
        return numpy(t * scale)

    def conv(x: Any, w: Any, b: Any, geo: Any) -> Any:
        batched = x.ndim == 3
        x = x if batched else x.unsqueeze(0)
        y = x.pad(((0, 0), (0, 0), (geo.pad_left, geo.pad_right))).conv2d(
            w, b, groups=geo.groups, stride=geo.stride, dilation=geo.dilation)  # fmt: skip
        return y if batched else y[0]

    def gradients(f: Callable[..., Any], inputs: list[Any], g: Any) -> list[Any]:
        return list(f(*inputs).gradient(*inputs, gradient=g))

    return _kernels(_Framework(tensor, conv, gradients, scaled))


_REAL = ("float16", "bfloat16", "float32", "float64")
_ALL = (*_REAL, "complex64", "complex128")

#: Every adapter, by name.
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in [
        Adapter("torch", "torch", "PyTorch: F.conv1d and autograd, default settings", _ALL,
                lambda: _torch()),
        Adapter("torch-channels-last", "torch",
                "PyTorch: F.conv2d over (1, L) in channels_last memory, and autograd", _ALL,
                lambda: _torch(layout="channels_last")),
        Adapter("torch-no-onednn", "torch",
                "PyTorch with oneDNN off (torch.backends.mkldnn.flags(enabled=False))", _ALL,
                lambda: _torch(onednn=False)),
        Adapter("jax", "jax", "JAX: lax.conv_general_dilated and jax.vjp, default precision",
                _ALL, lambda: _jax()),
        Adapter("jax-highest", "jax", "JAX: as jax, with precision=HIGHEST", _ALL,
                lambda: _jax(highest=True)),
        Adapter("tensorflow", "tensorflow",
                "TensorFlow: tf.nn.conv1d (channels last), tf.nn.bias_add as Keras' Conv1D, "
                "and GradientTape", _ALL,
                _tensorflow),
        Adapter("onnxruntime", "onnxruntime", "onnxruntime: one ONNX Conv node (forward only)",
                _REAL, _onnxruntime),
        Adapter("tinygrad", "tinygrad", "tinygrad: Tensor.conv2d over 1-D and its backward",
                _REAL, _tinygrad),
    ]
}  # fmt: skip


def adapter(name: str) -> Adapter:
    """The adapter called ``name`` (one of :data:`ADAPTERS`)."""
    if not isinstance(name, str) or name not in ADAPTERS:
        raise ValueError(f"adapter must be one of {sorted(ADAPTERS)}, got {name!r}")
    return ADAPTERS[name]
