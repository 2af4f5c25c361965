"""Cut the small real-ERCOT fixture of tests/data/ from ../shared/data/ercot.

Each cut is the header and every row of some delivery dates of one shared report
CSV, copied byte for byte (no value parsed or rewritten), stored as a ZIP holding
that one CSV, as ERCOT ships its reports. The ZIPs are reproducible: the same
source gives the same bytes.

    python tests/data/make_fixture.py            # rewrite tests/data/*/*.zip
    python tests/data/make_fixture.py --check    # exit 1 unless they are what it would write

The source folder is ERCOT_FAST_SHARED_DATA, by default ../shared/data/ercot
beside the checkout (tests/reference_layout.py decides, for the tests too).
"""
import argparse
import datetime as dt
import io
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from reference_layout import SHARED_DATA  # noqa: E402

# (ZIP under tests/data, source CSV under the shared folder, first and last delivery date)
CUTS = [
    ("np4_190_cd/dam_spp_hub_lz_20190404_20190408.zip", "np4_190_cd/dam_spp_hub_lz_2019.csv", "2019-04-04", "2019-04-08"),
    ("np4_190_cd/dam_spp_hub_lz_20200308.zip", "np4_190_cd/dam_spp_hub_lz_2020.csv", "2020-03-08", "2020-03-08"),
    ("np4_190_cd/dam_spp_hub_lz_20201101.zip", "np4_190_cd/dam_spp_hub_lz_2020.csv", "2020-11-01", "2020-11-01"),
    ("np4_190_cd/dam_spp_hub_lz_20210214_20210220.zip", "np4_190_cd/dam_spp_hub_lz_2021.csv", "2021-02-14", "2021-02-20"),
    ("np6_905_cd/rtm_spp_hub_lz_20210214_20210220.zip", "np6_905_cd/rtm_spp_hub_lz_2021-02.csv", "2021-02-14", "2021-02-20"),
]
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so that a re-run writes the same bytes


def delivery_dates(first, last):
    """The MM/DD/YYYY spellings of the days first..last (ISO dates), as the reports write them."""
    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    dates = set()
    while day <= end:
        dates.add(day.strftime("%m/%d/%Y").encode())
        day += dt.timedelta(days=1)
    return dates


def cut(source, dates):
    """The header line and the lines of ``dates`` of a report CSV, as bytes."""
    with open(source, "rb") as f:
        header = f.readline()
        return header + b"".join(line for line in f if line[:10] in dates)


def zipped(member, data):
    info = zipfile.ZipInfo(member, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def build(shared):
    """{path under tests/data: ZIP bytes} of every cut."""
    files = {}
    for target, source, first, last in CUTS:
        member = Path(target).with_suffix(".csv").name
        files[target] = zipped(member, cut(Path(shared) / source, delivery_dates(first, last)))
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED_DATA, help=f"source folder (default {SHARED_DATA})")
    parser.add_argument("--out", type=Path, default=HERE, help=f"fixture folder (default {HERE})")
    parser.add_argument("--check", action="store_true", help="compare with the fixture instead of writing it")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        parser.error(f"the real ERCOT data is not there: {args.shared}")
    stale = []
    for target, data in build(args.shared).items():
        path = args.out / target
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(target)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{target}: {len(data):,} bytes")
    if stale:
        print("differs from what make_fixture.py cuts from", args.shared, ":", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
