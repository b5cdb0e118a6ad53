"""What every streaming writer shares: close on success, abort (remove temporaries) on error."""

from __future__ import annotations

from typing import Self


class AtomicWriter:
    """Base for writers that write to hidden temporaries and rename them into place in
    :meth:`close`; :meth:`abort` removes the temporaries so no partial record is visible."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise
