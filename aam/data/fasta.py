"""Representative sequences: FASTA file or a QIIME 2 FeatureData[Sequence] .qza -> {feature id: sequence}."""

from __future__ import annotations

from pathlib import Path

from aam.data.qza import is_qza, read_payload
from aam.data.tokenizer import is_dna
from aam.errors import UserError


_RNA_TO_DNA = str.maketrans("Uu", "Tt")  # an RNA record (U) encodes the same sequence as its DNA form (T)


def read_sequences(path: str | Path) -> dict[str, str]:
    """Read FASTA (multi-line records allowed) or a rep-seqs `.qza` holding `dna-sequences.fasta`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sequences file not found: {path}")
    if is_qza(path):
        raw = read_payload(path, "dna-sequences.fasta", "sequences")
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read sequences file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"sequences file {path} is not a text FASTA file") from None
    return parse_fasta(text, path)


def parse_fasta(text: str, path: Path | str = "<fasta>") -> dict[str, str]:
    """{feature ID: sequence}, with RNA's U read as T."""
    records: dict[str, str] = {}
    name: str | None = None
    chunks: list[str] = []

    def close() -> None:
        if name is None:
            return
        sequence = "".join(chunks).translate(_RNA_TO_DNA)
        if not is_dna(sequence):
            raise UserError(f"sequences file {path}: record '{name}' is not a DNA sequence")
        if name in records:
            raise UserError(f"sequences file {path}: feature ID '{name}' appears twice")
        records[name] = sequence

    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            close()
            # The ID is the first word of the header, as in QIIME 2 and scikit-bio.
            name = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
            if not name:
                raise UserError(f"sequences file {path}: empty record name on line {line_no}")
            chunks = []
        elif name is None:
            raise UserError(f"sequences file {path} is not FASTA (line {line_no} comes before any '>' header)")
        else:
            chunks.append(line)
    close()
    if not records:
        raise UserError(f"sequences file {path} holds no FASTA records")
    return records
