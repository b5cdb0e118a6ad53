"""What every streaming writer shares: close on success, abort (remove temporaries) on error;
and whole small files (JSON cards, run files) written the same way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary beside it, renamed into place: readers
    see the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
