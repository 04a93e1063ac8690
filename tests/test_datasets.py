"""The shipped datasets and the synthetic generator: dtypes, errors, and exact round trips."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import threadkit as tk
from threadkit import datasets
from threadkit.errors import InvalidInput, NotFound

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"airports": 3376, "elements": 36, "penguins": 344, "seattle-weather": 1461}
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$")
READ_DTYPES = {"Int64", "float64", "boolean", "string", "datetime64[ns, UTC]"}


@pytest.fixture
def db() -> Iterator[tk.Database]:
    peer = tk.Peer(memory=True)
    try:
        yield peer.new_db("d")
    finally:
        peer.close()


def _read_back(coll: tk.Collection) -> pd.DataFrame:
    """``coll.df`` with threadkit's documented additions undone: ``_mod`` and the ``_id`` index."""
    frame = coll.df
    assert frame.index.name == "_id"
    assert str(frame.index.dtype) == "string"
    assert frame.columns[-1] == "_mod"
    assert str(frame["_mod"].dtype) == "datetime64[ns, UTC]"
    return frame.drop(columns="_mod")


# --- names, paths, errors ------------------------------------------------------------


def test_names_lists_the_shipped_datasets() -> None:
    assert datasets.names() == sorted(SHIPPED)
    assert all(COLLECTION_NAME.match(name) for name in datasets.names())


def test_paths_are_package_data_linked_from_the_repositorys_datasets_directory() -> None:
    for name in datasets.names():
        file = datasets.path(name)
        assert file.parent == ROOT / "threadkit" / "data"
        assert file.is_file()
        assert (ROOT / "datasets" / file.name).resolve() == file.resolve()


def test_every_shipped_file_is_in_the_readme_with_a_licence() -> None:
    readme = (ROOT / "datasets" / "README.md").read_text(encoding="utf-8")
    for name in datasets.names():
        file = datasets.path(name).name
        rows = [line for line in readme.splitlines() if line.startswith(f"| `{file}`")]
        assert len(rows) == 1, f"{file} is not in datasets/README.md's table"
        assert re.search(r"CC0|public domain", rows[0], re.IGNORECASE), rows[0]
        digest = hashlib.sha256(datasets.path(name).read_bytes()).hexdigest()
        assert digest in readme, f"datasets/README.md does not record the sha256 of {file}"


@pytest.mark.parametrize("bad", ["iris", "", "Penguins", "penguins.csv", "../README"])
def test_unknown_name_is_a_clear_not_found(bad: str) -> None:
    with pytest.raises(datasets.DatasetNotFound, match="no dataset named") as info:
        datasets.load(bad)
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, LookupError)
    assert "penguins" in str(info.value)  # it says what there is
    with pytest.raises(datasets.DatasetNotFound):
        datasets.path(bad)


def test_non_string_name_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="string"):
        datasets.load(3)  # type: ignore[arg-type]


def test_missing_directory_is_a_clear_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(datasets.DatasetNotFound, match="does not exist") as info:
        datasets.load("penguins")
    assert datasets.ENV_VAR in str(info.value)
    assert "nowhere" in str(info.value)


def test_missing_file_is_a_clear_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    with pytest.raises(datasets.DatasetNotFound, match="not there"):
        datasets.load("elements")


def test_directory_override_and_gzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    original = datasets.load("penguins")
    (tmp_path / "penguins.csv.gz").write_bytes(
        gzip.compress(datasets.path("penguins").read_bytes())
    )
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    assert datasets.path("penguins") == tmp_path / "penguins.csv.gz"
    pd.testing.assert_frame_equal(datasets.load("penguins"), original)


# --- the shipped datasets ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_load_gives_read_dtypes_and_the_right_size(name: str) -> None:
    frame = datasets.load(name)
    assert len(frame) == SHIPPED[name]
    assert isinstance(frame.index, pd.RangeIndex)
    assert {str(dtype) for dtype in frame.dtypes} <= READ_DTYPES
    assert frame.columns.is_unique
    assert all(isinstance(c, str) and "." not in c and c != "_id" for c in frame.columns)


def test_load_returns_a_fresh_frame() -> None:
    first = datasets.load("elements")
    first.loc[0, "name"] = "changed"
    assert datasets.load("elements").loc[0, "name"] == "Hydrogen"


def test_penguins_missing_values_are_nullable() -> None:
    frame = datasets.load("penguins")
    assert frame.isna().sum().to_dict() == {
        "species": 0,
        "island": 0,
        "bill_length_mm": 2,
        "bill_depth_mm": 2,
        "flipper_length_mm": 2,
        "body_mass_g": 2,
        "sex": 11,
        "year": 0,
    }
    assert str(frame["body_mass_g"].dtype) == "Int64"
    assert frame["sex"].isna().sum() == 11 and "NA" not in set(frame["sex"].dropna())
    assert set(frame["species"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_seattle_weather_dates_are_utc_days() -> None:
    frame = datasets.load("seattle-weather")
    dates = frame["date"]
    assert str(dates.dtype) == "datetime64[ns, UTC]"
    assert dates.iloc[0] == pd.Timestamp("2012-01-01", tz="UTC")
    assert dates.iloc[-1] == pd.Timestamp("2015-12-31", tz="UTC")
    assert dates.is_unique and dates.is_monotonic_increasing
    assert (dates == dates.dt.floor("D")).all()


def test_airports_text_is_kept_verbatim() -> None:
    frame = datasets.load("airports")
    assert frame["iata"].is_unique
    assert not frame.isna().any().any()  # no "NA"/"null"-looking text read as missing
    assert frame.loc[frame["iata"] == "00M", "city"].item() == "Bay Springs"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_from_pandas_round_trips_exactly(db: tk.Database, name: str) -> None:
    frame = datasets.load(name)
    coll = db.from_pandas(name, frame)
    back = _read_back(coll).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert coll.count() == len(frame)


# --- synthetic -----------------------------------------------------------------------

SYNTHETIC_DTYPES = {
    "name": "string",
    "age": "Int64",
    "city": "string",
    "score": "float64",
    "height_m": "float64",
    "active": "boolean",
    "joined": "datetime64[ns, UTC]",
}


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 25_000])
def test_synthetic_size_and_dtypes(n: int) -> None:
    frame = datasets.synthetic(n)
    assert len(frame) == n
    assert {c: str(t) for c, t in frame.dtypes.items()} == SYNTHETIC_DTYPES
    assert frame.index.name == "_id" and str(frame.index.dtype) == "string"
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert not frame.isna().any().any()
    if n:
        assert frame["age"].between(18, 90).all()
        assert (frame["joined"] == frame["joined"].dt.floor("s")).all()
        assert frame["joined"].min() >= pd.Timestamp("2015-01-01", tz="UTC")
        assert frame["joined"].max() < pd.Timestamp("2025-01-01", tz="UTC")


def test_synthetic_is_deterministic_and_seeded() -> None:
    a = datasets.synthetic(2000, seed=5)
    pd.testing.assert_frame_equal(a, datasets.synthetic(2000, seed=5), check_exact=True)
    assert not a.equals(datasets.synthetic(2000, seed=6))
    assert not a.equals(datasets.synthetic(2000))


def test_synthetic_prefixes_agree() -> None:
    big = datasets.synthetic(5000, seed=3, missing=0.1)
    small = datasets.synthetic(1200, seed=3, missing=0.1)
    pd.testing.assert_frame_equal(big.head(1200), small, check_exact=True)


def test_synthetic_has_the_cities_queries_use() -> None:
    cities = set(datasets.synthetic(2000)["city"])
    assert {"Oslo", "Lima"} <= cities
    assert len(cities) == 20


def test_synthetic_missing_fraction() -> None:
    frame = datasets.synthetic(20_000, missing=0.25)
    holes = frame.isna().mean()
    for column in ("age", "city", "score", "active"):
        assert 0.22 < holes[column] < 0.28, (column, holes[column])
    for column in ("name", "height_m", "joined"):
        assert holes[column] == 0
    assert datasets.synthetic(100, missing=1.0)["age"].isna().all()


@pytest.mark.parametrize(
    ("n", "seed", "missing"),
    [
        (-1, 0, 0.0),
        (1.5, 0, 0.0),
        (True, 0, 0.0),
        ("3", 0, 0.0),
        (3, -1, 0.0),
        (3, 0.5, 0.0),
        (3, 0, -0.1),
        (3, 0, 1.5),
        (3, 0, "x"),
    ],
)
def test_synthetic_refuses_bad_arguments(n: object, seed: object, missing: object) -> None:
    with pytest.raises(InvalidInput):
        datasets.synthetic(n, seed, missing=missing)  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_synthetic_round_trips_exactly(db: tk.Database, missing: float) -> None:
    frame = datasets.synthetic(3000, seed=11, missing=missing)
    coll = db.from_pandas("People", frame)
    back = _read_back(coll)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert coll.find_by_id("p00000042")["name"] == frame.loc["p00000042", "name"]


def test_synthetic_queries_match_pandas(db: tk.Database) -> None:
    frame = datasets.synthetic(2000, seed=2)
    coll = db.from_pandas("People", frame)
    expr = "age > 30 and city in ['Oslo', 'Lima']"
    got = coll.query(expr).drop(columns="_mod")
    pd.testing.assert_frame_equal(got, frame.query(expr), check_exact=True)


# --- read_csv: the one CSV reader -----------------------------------------------------


def test_read_csv_of_a_shipped_file_is_load() -> None:
    """``threadkit share datasets/penguins.csv`` and ``load("penguins")`` read alike."""
    pd.testing.assert_frame_equal(
        datasets.read_csv(ROOT / "datasets" / "penguins.csv"), datasets.load("penguins")
    )
    pd.testing.assert_frame_equal(
        datasets.read_csv(datasets.path("elements")), datasets.load("elements")
    )


def test_read_csv_infers_nullable_dtypes(tmp_path: Path) -> None:
    file = tmp_path / "mixed.csv"
    file.write_text(
        "count,ratio,flag,label,empty,huge,code\n"
        "1,0.5,true,a,,99999999999999999999999,007\n"
        "NA,NaN,false,NA,,1,x1\n"
        "-3,1e3,,null,,2,\n",
        encoding="utf-8",
    )
    frame = datasets.read_csv(file)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "count": "Int64",
        "ratio": "float64",
        "flag": "boolean",
        "label": "string",
        "empty": "string",
        "huge": "float64",
        "code": "string",
    }
    assert frame["count"].tolist()[0] == 1 and frame["count"].isna().sum() == 1
    assert frame["label"].isna().sum() == 2 and frame["empty"].isna().all()
    assert frame["code"].tolist()[:2] == ["007", "x1"]  # text stays text, zeros kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("dir", "is a directory"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8"),
        (b"", "not a CSV table"),
        (b"a,b\n1,2,3,4\n", "not a CSV table"),
    ],
)
def test_read_csv_refuses_what_is_not_a_csv_file(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    target = tmp_path / "input.csv"
    if content == "dir":
        target.mkdir()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as info:
        datasets.read_csv(target)
    assert "input.csv" in str(info.value)
