import datetime as dt
import types

import pytest

from readatl06.errors import NotATL06Error, UsageError
from readatl06.atl06.names import Selection, parse_int_list, parse_name, parse_time, select


def args(**kw):
    base = dict(start=None, end=None, segments=None, rgts=None, cycles=None, releases=None)
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_parse_fields_by_name():
    g = parse_name("/data/processed_ATL06_20190222031203_08500210_001_01.h5")
    assert g.time == dt.datetime(2019, 2, 22, 3, 12, 3)
    assert (g.rgt, g.cycle, g.region, g.release, g.revision) == (850, 2, 10, "001", "01")
    assert g.processed and g.name == "processed_ATL06_20190222031203_08500210_001_01.h5"
    assert g.stem == "processed_ATL06_20190222031203_08500210_001_01"


def test_other_products_refused_by_name_and_garbage_is_valueerror():
    with pytest.raises(NotATL06Error, match="ATL07"):
        parse_name("processed_ATL07-01_20190225115500_09020201_003_02.h5")
    with pytest.raises(NotATL06Error, match="ATL03"):
        parse_name("ATL03_20190225115500_09020201_003_02.h5")
    for bad in ("notes.h5", "ATL06_2019_0850_001_01.h5", "ATL06_20191322031203_08500210_001_01.h5",
                "ATL06_20190222031203_08500215_001_01.h5"):
        with pytest.raises(ValueError):
            parse_name(bad)


def test_int_lists_and_ranges():
    assert parse_int_list(["10-12", "14", "3,5"], "--segments", 1, 14) == {3, 5, 10, 11, 12, 14}
    for bad in (["15"], ["12-10"], ["x"]):
        with pytest.raises(UsageError):
            parse_int_list(bad, "--segments", 1, 14)


def test_time_bounds_inclusive():
    assert parse_time("2019-02-22") == dt.datetime(2019, 2, 22)
    assert parse_time("2019-02-22", end=True) == dt.datetime(2019, 2, 22, 23, 59, 59, 999999)
    assert parse_time("2019-02-22T03:12:03Z") == dt.datetime(2019, 2, 22, 3, 12, 3)
    with pytest.raises(UsageError):
        parse_time("22/02/2019")


NAMES = [
    "ATL06_20181014001049_02350102_001_01.h5",
    "ATL06_20181014001049_02350102_003_01.h5",
    "processed_ATL06_20181015100401_02560110_003_01.h5",
    "processed_ATL06_20190222031203_08500210_001_01.h5",
    "ATL06_20230816161508_08782002_006_02.h5",
    "sub/ATL06_20230816161508_08782002_006_02.h5",            # the same granule found twice
    "processed_ATL06_20181014001049_02350102_001_01.h5",       # processed_X and X
    "readme.h5",
    "ATL03_20181014001049_02350102_006_01.h5",
]


def test_select_each_field_and_duplicates():
    def names(**kw):
        return [g.name for g, _ in select(NAMES, Selection.from_args(args(**kw))).granules]
    everything = select(NAMES, Selection(all_releases=True))
    assert [g.name for g, _ in everything.granules] == [
        "ATL06_20181014001049_02350102_001_01.h5", "ATL06_20181014001049_02350102_003_01.h5",
        "processed_ATL06_20181015100401_02560110_003_01.h5",
        "processed_ATL06_20190222031203_08500210_001_01.h5", "ATL06_20230816161508_08782002_006_02.h5"]
    assert len(everything.duplicates) == 2
    assert any("processed_ATL06_20181014001049_02350102_001_01.h5" in m for m in everything.duplicates)
    assert len(everything.unparsed) == 1 and "readme.h5" in everything.unparsed[0]
    assert len(everything.refused) == 1 and "ATL03" in everything.refused[0]
    assert names(segments=["10-12"]) == ["processed_ATL06_20181015100401_02560110_003_01.h5",
                                         "processed_ATL06_20190222031203_08500210_001_01.h5"]
    assert names(rgts=["878"]) == ["ATL06_20230816161508_08782002_006_02.h5"]
    assert names(cycles=["2"]) == ["processed_ATL06_20190222031203_08500210_001_01.h5"]
    assert names(releases=["1"]) == ["ATL06_20181014001049_02350102_001_01.h5",    # picked explicitly
                                     "processed_ATL06_20190222031203_08500210_001_01.h5"]
    assert names(releases=["3"]) == ["ATL06_20181014001049_02350102_003_01.h5",
                                     "processed_ATL06_20181015100401_02560110_003_01.h5"]
    # both ends inclusive: a date-only end keeps the whole day, a date-time start keeps its instant
    assert names(start="2018-10-15T10:04:01", end="2019-02-22") == [
        "processed_ATL06_20181015100401_02560110_003_01.h5", "processed_ATL06_20190222031203_08500210_001_01.h5"]
    with pytest.raises(UsageError):
        Selection.from_args(args(start="2020-01-02", end="2020-01-01"))


@pytest.mark.parametrize("name", [
    "ATL06_20181014001049_02350102_001_01_gt2r.h5",
    "ATL06_20181014001049_02350102_001_01_gt2r_A.h5",
    "processed_ATL06_20181015100401_02560110_003_01_gt1l_D.h5",
    "sub/ATL06_20230816161508_08782002_006_02_gt3r_A.h5",
])
def test_per_beam_outputs_are_not_granules(name):
    from readatl06.atl06.names import PerBeamOutputError
    with pytest.raises(PerBeamOutputError) as info:
        parse_name(name)
    assert isinstance(info.value, NotATL06Error)
    assert str(info.value) == f"{name.rsplit('/', 1)[-1]}: a readatl06 per-beam output, not a granule"


def test_per_beam_outputs_refused_by_select_and_granule_kept():
    g = "ATL06_20181014001049_02350102_001_01.h5"
    sel = select([g, g.replace(".h5", "_gt2r.h5"), g.replace(".h5", "_gt2r_A.h5")])
    assert [x.name for x, _ in sel.granules] == [g]
    assert sel.refused == [f"{g[:-3]}_gt2r.h5: a readatl06 per-beam output, not a granule",
                           f"{g[:-3]}_gt2r_A.h5: a readatl06 per-beam output, not a granule"]
    assert not sel.duplicates and not sel.unparsed


def test_real_names_and_subsetter_suffixes_still_parse():
    from conftest import REAL
    for p in REAL:                                       # real names: no suffix, NSIDC prefix processed_
        g = parse_name(p)
        assert g.name == p.name and g.processed == p.name.startswith("processed_")
    # a suffix that is not a readatl06 beam/direction is still a subsetter's (kept as before)
    assert parse_name("ATL06_20181014001049_02350102_001_01_subsetted.h5").rgt == 235
    assert parse_name("ATL06_20181014001049_02350102_001_01_gt4r.h5").rgt == 235


def test_signed_url_query_is_not_part_of_the_name():
    from readatl06.atl06.names import parse_name
    url = ("https://data.example.org/ATLAS/ATL06/006/ATL06_20190101001723_00540211_006_01.h5"
           "?X-Amz-Signature=abc&X-Amz-Expires=3600#frag")
    g = parse_name(url)
    assert g.name == "ATL06_20190101001723_00540211_006_01.h5" and g.rgt == 54 and g.region == 11


def test_newest_release_then_revision_wins_and_is_named():
    names = ["ATL06_20181014001049_02350102_001_01.h5", "ATL06_20181014001049_02350102_003_01.h5",
             "ATL06_20181014001052_02350102_003_02.h5",    # a later revision (its start time may differ)
             "ATL06_20181014001049_02350103_001_01.h5",    # another region: not the same granule
             "ATL06_20190113201010_02350202_006_01.h5"]    # another cycle
    sel = select(names)
    assert [g.name for g, _ in sel.granules] == ["ATL06_20181014001049_02350103_001_01.h5",
                                                "ATL06_20181014001052_02350102_003_02.h5",
                                                "ATL06_20190113201010_02350202_006_01.h5"]
    assert sel.superseded == [("ATL06_20181014001049_02350102_001_01.h5", "ATL06_20181014001052_02350102_003_02.h5"),
                              ("ATL06_20181014001049_02350102_003_01.h5", "ATL06_20181014001052_02350102_003_02.h5")]
    line = sel.superseded_line()
    assert line.startswith("2 granules superseded by a newer release or revision, not selected (--all-releases")
    assert "ATL06_20181014001049_02350102_001_01.h5 (by ATL06_20181014001052_02350102_003_02.h5)" in line
    assert sel.messages()[-1] == line
    assert len(select(names, Selection(all_releases=True)).granules) == 5
    assert select(names, Selection(all_releases=True)).superseded == []
    # an explicit --releases picks among what it names: the newest of those
    only = select(names, Selection.from_args(args(releases=["1"])))
    assert [g.name for g, _ in only.granules] == ["ATL06_20181014001049_02350102_001_01.h5",
                                                 "ATL06_20181014001049_02350103_001_01.h5"]
    assert Selection.from_args(args(all_releases=True)).as_dict()["all_releases"] is True
    assert "all_releases" not in Selection().as_dict()      # default runs keep their parameters key
