"""Positive-only interaction data: the container, the built-in synthetic set, file loaders.

One concept per module: :mod:`.interactions` (the :class:`Interactions` container and
:func:`from_pairs`), :mod:`.synthetic` (the seeded generator), :mod:`.files` (CSV / TSV /
Parquet / MovieLens parsing and :func:`load_source`) and :mod:`.movielens` (download and
checksum). This package re-exports the names the rest of the project imports.
"""

from ocfb.data.files import FORMATS, FileFormat, load_file, load_source
from ocfb.data.interactions import DataError, Interactions, from_pairs, gini
from ocfb.data.movielens import MOVIELENS_ARCHIVES, fetch_movielens
from ocfb.data.synthetic import SYNTHETIC_SOURCE, activity_cap, synthetic_influencer

__all__ = [
    "FORMATS",
    "MOVIELENS_ARCHIVES",
    "SYNTHETIC_SOURCE",
    "DataError",
    "FileFormat",
    "Interactions",
    "activity_cap",
    "fetch_movielens",
    "from_pairs",
    "gini",
    "load_file",
    "load_source",
    "synthetic_influencer",
]
