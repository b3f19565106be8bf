"""QIIME 2 artifacts (.qza) are zip files: `<uuid>/data/<payload>`; read the payload without QIIME 2."""

from __future__ import annotations

import zipfile
from pathlib import Path

from aam.errors import UserError


def is_qza(path: Path) -> bool:
    return path.suffix.lower() == ".qza"


def read_payload(path: Path, filename: str, what: str) -> bytes:
    """Bytes of `<uuid>/data/<filename>` inside the artifact `path`; UserError if it is not there."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for name in names:
                parts = name.split("/")
                if len(parts) == 3 and parts[1] == "data" and parts[2] == filename:
                    return archive.read(name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable QIIME 2 artifact (.qza is a zip file): {exc}") from None
    payloads = sorted({n.split("/", 2)[2] for n in names if n.count("/") >= 2 and n.split("/")[1] == "data"})
    held = ", ".join(payloads) if payloads else "nothing"
    raise UserError(f"{path}: this QIIME 2 artifact holds no {what} ({filename}); it holds {held}")
