"""The Ray seam: how actors are started, placed and reached.

- ``wiring``: starts the app's named actors (and finds a running one); the only module that
  imports every actor. Import it by name (``from actors.runtime import wiring``): this package's
  own surface stays light, because every actor process imports it.
- ``boot``: what runs first in an actor's process (logging, saved settings, secrets).
- ``handles`` / ``ray_handles``: the untyped :class:`Handle` (in-process or Ray).
"""

from actors.runtime.handles import Handle, LocalHandle

__all__ = ["Handle", "LocalHandle"]
