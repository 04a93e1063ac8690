"""Small real datasets shipped with threadkit, and synthetic data of any size for benchmarks.

The real datasets are CSV files shipped inside the package, in ``threadkit/data/``
(sources and licences in its ``README.md``; the repository's ``datasets/`` links
to the same files); they are read with explicit dtypes chosen so that a frame
survives a trip through a collection unchanged:

============================ ======= ==================================================
name                         rows    what
============================ ======= ==================================================
``airports``                 3,376   US airports: IATA code, name, city, state, lat/long
``elements``                 36      the first 36 chemical elements
``penguins``                 344     Palmer Archipelago penguins (has missing values)
``seattle-weather``          1,461   daily Seattle weather 2012–2015 (has a date column)
============================ ======= ==================================================

Dtypes are the ones threadkit reads back (see :mod:`threadkit.frames.dtypes`):
whole numbers are ``Int64``, other numbers ``float64`` (missing = NaN), text
``string`` (missing = ``<NA>``) and dates ``datetime64[ns, UTC]``. So for every
dataset, ``db.from_pandas(name, load(name)).df`` equals ``load(name)`` once
``_mod`` is dropped and the ``_id`` index is reset. Dataset names are valid
collection names.

The files are package data, so an installed wheel has them as a source checkout
does; set ``THREADKIT_DATASETS`` to a directory to read the files from somewhere
else. :func:`read_csv` reads any CSV file the same way, inferring the dtypes
(``threadkit share`` uses it).

Examples
--------
>>> from threadkit import datasets
>>> "penguins" in datasets.names()
True
>>> penguins = datasets.load("penguins")
>>> penguins.shape, str(penguins["body_mass_g"].dtype)
((344, 8), 'Int64')
>>> people = datasets.synthetic(3)
>>> list(people.columns)
['name', 'age', 'city', 'score', 'height_m', 'active', 'joined']
>>> people.index.name, len(people)
('_id', 3)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from threadkit.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NA_MARKERS", "DatasetNotFound", "load", "names", "path", "read_csv", "synthetic"]

_TEXT = "string[pyarrow]"  # what threadkit reads text back as, under pandas 2 and 3 alike

ENV_VAR = "THREADKIT_DATASETS"
"""Environment variable naming a directory to read the dataset files from instead."""


class DatasetNotFound(NotFound):
    """A dataset name threadkit does not ship, or a dataset whose file is not on disk."""


@dataclass(frozen=True)
class _Spec:
    file: str
    dtypes: dict[str, str]
    dates: dict[str, str] = field(default_factory=dict)  # column -> strptime format
    na: tuple[str, ...] = ("",)


_SPECS: dict[str, _Spec] = {
    "airports": _Spec(
        file="airports.csv",
        dtypes={
            "iata": _TEXT,
            "name": _TEXT,
            "city": _TEXT,
            "state": _TEXT,
            "country": _TEXT,
            "latitude": "float64",
            "longitude": "float64",
        },
    ),
    "elements": _Spec(
        file="elements.csv",
        dtypes={
            "number": "Int64",
            "symbol": _TEXT,
            "name": _TEXT,
            "atomic_weight": "float64",
            "group": "Int64",
            "period": "Int64",
            "category": _TEXT,
        },
    ),
    "penguins": _Spec(
        file="penguins.csv",
        dtypes={
            "species": _TEXT,
            "island": _TEXT,
            "bill_length_mm": "float64",
            "bill_depth_mm": "float64",
            "flipper_length_mm": "Int64",
            "body_mass_g": "Int64",
            "sex": _TEXT,
            "year": "Int64",
        },
        na=("NA",),
    ),
    "seattle-weather": _Spec(
        file="seattle-weather.csv",
        dtypes={
            "date": _TEXT,
            "precipitation": "float64",
            "temp_max": "float64",
            "temp_min": "float64",
            "wind": "float64",
            "weather": _TEXT,
        },
        dates={"date": "%Y/%m/%d"},
    ),
}


def names() -> list[str]:
    """The names of the shipped datasets, sorted.

    Examples
    --------
    >>> names()
    ['airports', 'elements', 'penguins', 'seattle-weather']
    """
    return sorted(_SPECS)


def _directory() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent / "data"


def _spec(name: object) -> _Spec:
    if not isinstance(name, str):
        raise InvalidInput(f"a dataset name is a string, got {name!r} ({type(name).__name__})")
    spec = _SPECS.get(name)
    if spec is None:
        raise DatasetNotFound(
            f"no dataset named {name!r}; threadkit ships {', '.join(repr(n) for n in names())}"
        )
    return spec


def path(name: str) -> Path:
    """The file a dataset is read from.

    Raises
    ------
    InvalidInput
        When ``name`` is not a string.
    DatasetNotFound
        For a name threadkit does not ship, or when the file (or the whole
        data directory) is not on disk.

    Examples
    --------
    >>> path("elements").name
    'elements.csv'
    """
    spec = _spec(name)
    directory = _directory()
    where = f"{ENV_VAR}={os.environ[ENV_VAR]!r}" if os.environ.get(ENV_VAR) else "the package"
    if not directory.is_dir():
        raise DatasetNotFound(
            f"the datasets directory {str(directory)!r} (found from {where}) does not exist; "
            "datasets ship inside the threadkit package (threadkit/data): reinstall "
            f"threadkit, or point {ENV_VAR} at a copy of that directory"
        )
    for candidate in (directory / spec.file, directory / (spec.file + ".gz")):
        if candidate.is_file():
            return candidate
    raise DatasetNotFound(
        f"dataset {name!r} should be in {str(directory / spec.file)!r} (found from {where}), "
        "but that file is not there"
    )


def load(name: str) -> pd.DataFrame:
    """A shipped dataset as a DataFrame, with dtypes that round-trip through a collection.

    Read by :func:`read_csv` (the one CSV reader, ``threadkit share`` uses it too) with
    the dataset's own dtypes, missing-value markers and date formats.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    pandas.DataFrame
        A new frame (yours to change) with a default ``RangeIndex``.

    Raises
    ------
    InvalidInput
        When ``name`` is not a string.
    DatasetNotFound
        For an unknown name or a missing file (see :func:`path`).

    Examples
    --------
    >>> weather = load("seattle-weather")
    >>> str(weather["date"].dtype), weather["date"].iloc[0].isoformat()
    ('datetime64[ns, UTC]', '2012-01-01T00:00:00+00:00')
    """
    spec = _spec(name)
    frame = read_csv(path(name), na=spec.na, dtypes=spec.dtypes, dates=spec.dates)
    if list(frame.columns) != list(spec.dtypes):
        raise InvalidInput(
            f"dataset {name!r} has columns {list(frame.columns)}, expected {list(spec.dtypes)}"
        )
    return frame


NA_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL")
"""Cells :func:`read_csv` reads as missing unless told otherwise (R's ``NA`` among them)."""

_INTEGER = r"[+-]?\d+"
_BOOLEANS = {"true": True, "false": False, "True": True, "False": False}


def read_csv(
    source: str | os.PathLike[str],
    *,
    na: tuple[str, ...] = NA_MARKERS,
    dtypes: dict[str, str] | None = None,
    dates: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A CSV file (UTF-8, a header row) as a DataFrame with the dtypes threadkit reads back.

    Without ``dtypes``, each column's type comes from its text: whole numbers are
    ``Int64``, other numbers ``float64``, ``true``/``false`` ``boolean``, anything else
    ``string``; the ``na`` markers are missing values in every column (so a column
    of numbers with ``NA`` holes is numeric). ``db.from_pandas(name, read_csv(path))``
    then gives typed documents with the missing fields left out.

    Parameters
    ----------
    source : str or PathLike
        The file (``.gz`` compressed files too).
    na : tuple of str
        Cell texts read as missing.
    dtypes : dict, optional
        Column → dtype, instead of inferring them.
    dates : dict, optional
        Column → ``strptime`` format: parsed to ``datetime64[ns, UTC]``.

    Raises
    ------
    InvalidInput
        When the file does not exist, is a directory, is not UTF-8 text, or is not a
        CSV table (no header, ragged rows); the message names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = file.write_text("n,x,flag,name\\n1,2.5,true,Ada\\nNA,NA,false,NA\\n")
    >>> frame = read_csv(file)
    >>> [str(t) for t in frame.dtypes], int(frame.isna().sum().sum())
    (['Int64', 'float64', 'boolean', 'string'], 3)
    """
    import pandas as pd

    file = Path(source).expanduser()
    if not file.exists():
        raise InvalidInput(f"{str(file)!r}: no such file")
    if file.is_dir():
        raise InvalidInput(f"{str(file)!r} is a directory, not a CSV file")
    try:
        with warnings.catch_warnings():
            # more cells in a row than in the header: pandas would drop them
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                file,
                dtype=dtypes if dtypes is not None else str,
                keep_default_na=False,
                na_values=list(na),
                encoding="utf-8",
                index_col=False,
            )
    except UnicodeDecodeError:
        raise InvalidInput(f"{str(file)!r} is not UTF-8 text (a binary file?)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{str(file)!r} is not a CSV table: {first}") from None
    except OSError as exc:
        raise InvalidInput(f"{str(file)!r} cannot be read: {exc.strerror or exc}") from None
    if dtypes is None:
        for column in frame.columns:
            frame[column] = _typed(frame[column])
    for column, fmt in (dates or {}).items():
        stamps = pd.to_datetime(frame[column], format=fmt, utc=True)
        frame[column] = stamps.astype("datetime64[ns, UTC]")
    return frame


def _typed(column: pd.Series) -> pd.Series:
    """A column of text (missing = NaN) as Int64, float64, boolean or string."""
    import pandas as pd

    values = column.dropna()
    if len(values):
        if values.str.fullmatch(_INTEGER).all():
            try:
                return column.astype("Int64")
            except (OverflowError, TypeError, ValueError):
                pass  # beyond 64 bits: a float, below
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all():
            return pd.to_numeric(column, errors="coerce").astype("float64")
        if values.isin(list(_BOOLEANS)).all():
            return column.map(_BOOLEANS, na_action="ignore").astype("boolean")
    return column.astype(_TEXT)


# --- synthetic data ------------------------------------------------------------------

_FIRST = (
    "Ada", "Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Grace", "Hugo", "Ines",
    "Jonas", "Kai", "Lea", "Lin", "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa",
    "Sami", "Tariq", "Uma", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
_LAST = (
    "Andersen", "Borg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ivanova", "Jensen", "Kowalski", "Lopez", "Mensah", "Nakamura", "Okafor", "Perez",
    "Quispe", "Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Wong", "Yilmaz",
)  # fmt: skip
_CITIES = (
    "Oslo", "Lima", "Accra", "Berlin", "Bogotá", "Cairo", "Dhaka", "Hanoi", "Lagos",
    "Madrid", "Manila", "Montréal", "Nairobi", "Osaka", "Paris", "Quito", "Seoul",
    "Sydney", "Tallinn", "Zürich",
)  # fmt: skip
_START = 1_420_070_400  # 2015-01-01T00:00:00Z, in seconds
_SPAN = 10 * 365 * 86_400  # about ten years of seconds


def synthetic(n: int, seed: int = 0, *, missing: float = 0.0) -> pd.DataFrame:
    """A frame of ``n`` made-up people, for benchmarks and tests.

    Parameters
    ----------
    n : int
        Number of rows (0 or more).
    seed : int
        The same ``n`` and ``seed`` always give the same frame, and the first
        ``k`` rows of ``synthetic(n, seed)`` equal ``synthetic(k, seed)``
        (each column draws from its own random stream).
    missing : float
        Fraction (0 to 1) of the ``age``, ``city``, ``score`` and ``active``
        cells left missing; none by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``_id`` (``string``; ``p00000000``, ``p00000001``, … in row
        order, so ``from_pandas`` uses them as document ids and they sort in
        row order), with columns ``name`` (``string``), ``age`` (``Int64``,
        18–90), ``city`` (``string``, 20 cities including Oslo and Lima),
        ``score`` (``float64``, about 50 ± 15, two decimals), ``height_m``
        (``float64``), ``active`` (``boolean``) and ``joined``
        (``datetime64[ns, UTC]``, whole seconds in 2015–2024). These are the
        dtypes threadkit reads back, so ``db.from_pandas(name, frame).df``
        equals the frame once ``_mod`` is dropped.

    Raises
    ------
    InvalidInput
        For a negative or non-integer ``n``, a non-integer ``seed`` or a
        ``missing`` outside [0, 1].

    Examples
    --------
    >>> frame = synthetic(1000, seed=7)
    >>> frame.equals(synthetic(1000, seed=7)), frame.head(10).equals(synthetic(10, seed=7))
    (True, True)
    >>> int(frame["age"].min()) >= 18, int(frame["age"].max()) <= 90
    (True, True)
    """
    import numpy as np
    import pandas as pd

    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidInput(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(missing, bool) or not isinstance(missing, int | float) or not 0 <= missing <= 1:
        raise InvalidInput(f"missing must be a fraction between 0 and 1, got {missing!r}")
    n = int(n)
    streams = iter(np.random.SeedSequence(int(seed)).spawn(12))

    def rng() -> np.random.Generator:
        return np.random.default_rng(next(streams))

    first = np.asarray(_FIRST, dtype=object)[rng().integers(0, len(_FIRST), n)]
    last = np.asarray(_LAST, dtype=object)[rng().integers(0, len(_LAST), n)]
    ages = rng().integers(18, 91, n)
    cities = np.asarray(_CITIES, dtype=object)[rng().integers(0, len(_CITIES), n)]
    scores = np.round(rng().normal(50.0, 15.0, n), 2)
    heights = np.round(rng().normal(1.70, 0.09, n), 3)
    active = rng().random(n) < 0.7
    joined = _START + rng().integers(0, _SPAN, n)

    width = max(8, len(str(n - 1)))
    frame = pd.DataFrame(
        {
            "name": pd.array(first + " " + last, dtype=_TEXT),
            "age": pd.array(ages, dtype="Int64"),
            "city": pd.array(cities, dtype=_TEXT),
            "score": scores.astype("float64"),
            "height_m": heights.astype("float64"),
            "active": pd.array(active, dtype="boolean"),
            "joined": pd.to_datetime(joined, unit="s", utc=True).astype("datetime64[ns, UTC]"),
        },
        index=pd.Index([f"p{i:0{width}d}" for i in range(n)], dtype=_TEXT, name="_id"),
    )
    if missing:
        for column in ("age", "city", "score", "active"):
            holes = rng().random(n) < missing
            frame.loc[holes, column] = np.nan if column == "score" else pd.NA
    return frame
