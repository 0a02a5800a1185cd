"""Which operations of the published ``hevlayer`` client the suite calls.

The client's operations are the methods of its ``HevlayerProtocol`` (the typed surface every
client implements); ``install()`` wraps each on ``AsyncHevlayer`` so a call made by a test (or by
the client's own worker loop, ``run_udf_worker``) is recorded — calls one operation makes to
another inside the client (``wait_for_scan`` polling ``get_scan``) are not, so every operation
must be called by a test itself. ``conftest.py`` gathers the records of every xdist worker and,
when ``LAYER_COMPAT_ALL_OPS=1`` (``scripts/test`` sets it for the run through the gateway), fails
the session naming every operation no test called.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Set

from hevlayer import client as hevlayer_client

CALLED: Set[str] = set()
_INSIDE = contextvars.ContextVar("hevlayer_op_inside", default=False)


def operations() -> Set[str]:
    """Every operation of the client: the public methods of its protocol."""
    proto = hevlayer_client.HevlayerProtocol
    return {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}


def _wrap(name: str, fn):
    @functools.wraps(fn)
    async def recorded(self, *args, **kwargs):
        if not _INSIDE.get():
            CALLED.add(name)
        token = _INSIDE.set(True)
        try:
            return await fn(self, *args, **kwargs)
        finally:
            _INSIDE.reset(token)

    recorded.__hevlayer_recorded__ = True  # type: ignore[attr-defined]
    return recorded


def install() -> None:
    """Wraps every operation of ``AsyncHevlayer`` (once)."""
    cls = hevlayer_client.AsyncHevlayer
    for name in operations():
        fn = getattr(cls, name, None)
        if fn is None or getattr(fn, "__hevlayer_recorded__", False):
            continue
        setattr(cls, name, _wrap(name, fn))
