"""Loading data set pickles without running them: a restricted unpickler.

A pickle names the callables it wants called (its "globals") and the unpickler calls them, so
``pickle.load`` on a downloaded file runs whatever that file asks for. ``load`` admits only
what a data set's annotation pickle needs (HO-3D's ``meta/%04d.pkl``):

- numpy arrays, dtypes and scalars: ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy.core.multiarray.scalar``, also under numpy 2's ``numpy._core``
  names. They are resolved to numpy's own objects here, never imported by the file's name;
- plain containers and values (dict, list, tuple, str, bytes, numbers, None), which the
  pickle opcodes build without any global;
- ``_codecs.encode(text, 'latin1')`` and nothing else of ``_codecs``: Python 3 writes every
  ``bytes`` object (a numpy array's raw data) that way in protocols 0-2, so a protocol 2
  pickle written by Python 3 holds it (one written by Python 2, as the HO-3D release, does
  not). It is answered by ``str.encode('latin1')``; no codec is looked up. Likewise
  ``bytes()`` with no argument, Python 3's form of an empty ``bytes`` in those protocols.

Any other global (``os.system``, ``builtins.eval``, a class) is refused when the file asks
for it, before anything is called: a one-line ``UserError`` names the file and the global.
Persistent ids and out-of-band buffers are refused too. Strings of Python 2 pickles are
decoded as latin1, as the HO-3D toolkit does (``load_pickle_data``), so that numpy's raw
array data comes back byte for byte.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import UserError, one_line

try:                                     # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:                      # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1")


class _Refused(Exception):
    """A global or value the file may not have; carries the one-line reason."""


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or not isinstance(encoding, str) or \
            encoding.lower() not in LATIN1:
        raise _Refused(f"_codecs.encode is admitted only as Python 3's latin1 bytes "
                       f"encoding, got encoding {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise _Refused("bytes(...) is admitted only as Python 3's empty bytes, bytes()")
    return b""


ADMITTED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ADMITTED[module, name]
        except (KeyError, TypeError):
            raise _Refused(f"the pickle asks for the global {module}.{name}, which is not "
                           f"admitted (only numpy arrays, dtypes, scalars and plain "
                           f"containers); nothing was run") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("the pickle holds a persistent id, which is not admitted")


def loads(raw: bytes, where: Path | str) -> Any:
    """Unpickle ``raw`` (the bytes of the file ``where``) with the restricted unpickler."""
    try:
        return _Unpickler(io.BytesIO(raw), encoding="latin1").load()
    except _Refused as err:
        raise UserError(f"{where}: refused to unpickle: {err}") from None
    except RecursionError:
        raise UserError(f"{where}: not a readable pickle (nested too deeply)") from None
    except Exception as err:             # truncated, corrupt, or not a pickle at all
        raise UserError(f"{where}: not a readable pickle ({type(err).__name__}: "
                        f"{one_line(err)})") from None


def load(path: Path | str) -> Any:
    """The object in the pickle file ``path``, or a one-line UserError naming the file
    (missing, unreadable, malformed, or asking for a global that is not admitted)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"{path}: no such file") from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    return loads(raw, path)
