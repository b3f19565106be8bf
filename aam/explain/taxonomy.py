"""Taxonomy files: QIIME 2 FeatureData[Taxonomy] (.qza) or a TSV with `Feature ID` and `Taxon` columns.

A lineage is `d__Bacteria; p__Firmicutes; ...` (or without rank prefixes). Ranks are named from the
prefixes (k/d, p, c, o, f, g, s) when every assigned lineage uses them, else `level_1`, `level_2`, ...
Features the file does not list are "Unassigned".
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aam.data.qza import is_qza, read_payload
from aam.errors import UserError

UNASSIGNED = "Unassigned"
RANK_PREFIXES = {"k": "kingdom", "d": "domain", "p": "phylum", "c": "class", "o": "order", "f": "family",
                 "g": "genus", "s": "species"}


@dataclass
class Taxonomy:
    lineages: dict[str, list[str]]  # feature ID -> taxon names from the top rank down (may be shorter than ranks)
    ranks: list[str]  # rank names, top down

    def lineage(self, feature_id: str) -> str:
        """The full lineage text, or "Unassigned"."""
        parts = self.lineages.get(feature_id)
        return "; ".join(parts) if parts else UNASSIGNED

    def taxon_at(self, feature_id: str, depth: int) -> str:
        """The lineage down to rank `depth` (0-based), so equal names under different parents stay apart;
        a lineage that stops above that rank ends in "(unassigned <rank>)"."""
        parts = self.lineages.get(feature_id)
        if not parts:
            return UNASSIGNED
        if len(parts) > depth:
            return "; ".join(parts[: depth + 1])
        return "; ".join(parts) + f"; (unassigned {self.ranks[depth]})"


def read_taxonomy(path: str | Path, feature_ids: list[str]) -> Taxonomy:
    """Read a taxonomy for `feature_ids`; UserError when the file is unreadable, lacks the columns,
    or names none of the features."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--taxonomy {path}: file not found")
    if is_qza(path):
        text = read_payload(path, "taxonomy.tsv", "taxonomy (FeatureData[Taxonomy])").decode()
    else:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--taxonomy {path}: cannot read it ({exc})") from None
    try:
        frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, comment=None, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"--taxonomy {path}: not a TSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [c.strip() for c in frame.columns]
    id_column = next((c for c in frame.columns if c.lower() in ("feature id", "featureid", "feature-id", "#otuid")),
                     None)
    if id_column is None or "Taxon" not in frame.columns:
        raise UserError(f"--taxonomy {path}: needs columns 'Feature ID' and 'Taxon'; it has "
                        f"{', '.join(frame.columns[:6])}")
    frame = frame[~frame[id_column].str.startswith("#")]  # a '#q2:types' row
    lineages = {}
    for feature, taxon in zip(frame[id_column].str.strip(), frame["Taxon"]):
        parts = [p.strip() for p in taxon.split(";")]
        while parts and _empty(parts[-1]):
            parts.pop()  # "g__" with nothing after: not assigned at that rank
        if parts and parts[0] != UNASSIGNED:
            lineages[feature] = parts
    known = set(frame[id_column].str.strip())
    if not known & set(feature_ids):
        raise UserError(f"--taxonomy {path}: none of its {len(known)} feature IDs (e.g. '{next(iter(known), '')}') "
                        f"is in the table (e.g. '{feature_ids[0] if feature_ids else ''}')")
    return Taxonomy({f: lineages[f] for f in feature_ids if f in lineages}, _rank_names(lineages.values()))


def _empty(name: str) -> bool:
    return not name or (len(name) <= 3 and name.endswith("__"))


def _rank_names(lineages) -> list[str]:
    depth = max((len(p) for p in lineages), default=0)
    prefixes = [[p.split("__", 1)[0] if "__" in p else None for p in parts] for parts in lineages]
    names = []
    for level in range(depth):
        seen = {row[level] for row in prefixes if len(row) > level}
        if len(seen) == 1 and (key := next(iter(seen))) in RANK_PREFIXES and RANK_PREFIXES[key] not in names:
            names.append(RANK_PREFIXES[key])
        else:
            names.append(f"level_{level + 1}")
    return names
