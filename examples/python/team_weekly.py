# %% [markdown]
# # One team's week from mttx's facts table, in Python
#
# mttx keeps one row per incident in a Delta Lake table (`--facts`): every duration is
# already computed (docs/design.md says how). This notebook reads that table directly,
# with **polars** (`scan_delta`) and with the **deltalake** package, computes one team's
# weekly MTTA and MTTR p50/p90, and compares them with what mttx's API answers for the same
# team and week. On the way it shows three traps of reading the table yourself.
#
# It is a plain Python file in the "percent" format: VS Code, PyCharm and Jupyter (with
# jupytext) open it as a notebook, and `python team_weekly.py …` runs it top to bottom:
#
#     pip install -r examples/python/requirements.txt
#     python examples/python/team_weekly.py --facts .mttx/facts \
#         --api http://127.0.0.1:8080 --token "$MTTX_TOKEN" --account 1 --week 2026-W44
#
# Without `--team` it takes the team with the most incidents that week. The time zone is
# the week's (`--tz`, default UTC): mttx's weeks are local weeks.

# %%
import argparse
import datetime as dt
import json
import math
import sys
import urllib.parse
import urllib.request
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.compute as pc
from deltalake import DeltaTable

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--facts", required=True, help="the facts table: a folder or s3://… URL")
parser.add_argument("--api", required=True, help="mttx serve's address, http://host:port")
parser.add_argument("--token", required=True, help="an API token of the account")
parser.add_argument("--account", type=int, required=True)
parser.add_argument("--week", required=True, help="ISO week, such as 2026-W44")
parser.add_argument("--tz", default="UTC", help="IANA time zone of the week")
parser.add_argument("--team", type=int, help="team id (default: the busiest that week)")
args = parser.parse_args()

year, week = args.week.split("-W")
monday = dt.date.fromisocalendar(int(year), int(week), 1)
tz = ZoneInfo(args.tz)
# The week's bounds: local midnights, as instants (mttx's facts hold UTC times).
start = dt.datetime.combine(monday, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), tzinfo=tz).astimezone(
    dt.timezone.utc
)
print(f"week {args.week} in {args.tz}: [{start}, {end})")

# %% [markdown]
# ## Reading the table with polars
#
# `scan_delta` reads the table's current version: only the files its log lists. The table
# is partitioned by `account_id` and `month` (UTC months), so filtering on them first
# reads only those folders.

# %%
facts = pl.scan_delta(args.facts)
months = sorted({start.strftime("%Y-%m"), (end - dt.timedelta(microseconds=1)).strftime("%Y-%m")})
week_rows = facts.filter(
    (pl.col("account_id") == args.account)
    & pl.col("month").is_in(months)
    & (pl.col("created_at") >= start)
    & (pl.col("created_at") < end)
)
team = args.team
if team is None:
    busiest = (
        week_rows.group_by("team_id").len().sort(["len", "team_id"], descending=[True, False])
        .collect()
    )
    team = busiest["team_id"][0]
print(f"team {team}")
mine = week_rows.filter(pl.col("team_id") == team)

# %% [markdown]
# ## Trap 1: polars' default quantile is not `percentile_cont`
#
# mttx's percentiles are PostgreSQL's `percentile_cont`: linear interpolation between the
# two closest values, `x[lo] + (r - lo) * (x[hi] - x[lo])` with `r = q * (n - 1)`.
# polars' `quantile` defaults to `interpolation="nearest"`, which picks one of the values:
# on a small team's week the two differ by minutes. `interpolation="linear"` is the same
# interpolation, but computed in another order it can differ in the last bit;
# `percentile_cont` below writes PostgreSQL's formula as polars expressions, and gives
# mttx's numbers exactly.

# %%
def percentile_cont_expr(column: str, q: float) -> pl.Expr:
    """PostgreSQL's percentile_cont of `column` (NULLs left out) as a polars expression."""
    values = pl.col(column).drop_nulls().sort()
    r = (values.len() - 1).cast(pl.Float64) * q
    lo, hi = r.floor(), r.ceil()
    a = values.gather(lo.cast(pl.Int64)).first()
    b = values.gather(hi.cast(pl.Int64)).first()
    return pl.when(values.len() > 0).then(a + (r - lo) * (b - a))


DURATIONS = [("seconds_to_first_ack", "mtta"), ("seconds_to_resolve", "mttr")]


def polars_percentiles(rows: pl.LazyFrame, how: str) -> dict:
    def one(column: str, q: float) -> pl.Expr:
        if how == "percentile_cont":
            return percentile_cont_expr(column, q)
        return pl.col(column).quantile(q, interpolation=how)

    out = rows.select(
        pl.len().alias("incident_count"),
        *[one(c, q).alias(f"{name}_p{int(q * 100)}") for c, name in DURATIONS for q in (0.5, 0.9)],
    ).collect()
    return out.to_dicts()[0]


exact = polars_percentiles(mine, "percentile_cont")
linear = polars_percentiles(mine, "linear")
nearest = polars_percentiles(mine, "nearest")
print(f"{'metric':<10} {'percentile_cont':>20} {'linear':>20} {'nearest (default)':>20}")
for k in ("mtta_p50", "mtta_p90", "mttr_p50", "mttr_p90"):
    print(f"{k:<10} {exact[k]!s:>20} {linear[k]!s:>20} {nearest[k]!s:>20}")

# %% [markdown]
# ## The same with the deltalake package (pyarrow)
#
# `DeltaTable` reads the same version of the same files. The percentile here is
# PostgreSQL's `percentile_cont` written out: `pyarrow.compute.quantile(…,
# interpolation="linear")` interpolates the same way but rounds differently, and can
# differ from mttx's value in the last bit.

# %%
table = DeltaTable(args.facts).to_pyarrow_dataset().to_table(
    filter=(pc.field("account_id") == args.account)
    & pc.field("month").isin(months)
    & (pc.field("created_at") >= start)
    & (pc.field("created_at") < end)
    & (pc.field("team_id") == team)
)


def percentile_cont(values: list, q: float):
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    r = q * (len(values) - 1)
    lo, hi = math.floor(r), math.ceil(r)
    return values[lo] if lo == hi else values[lo] + (r - lo) * (values[hi] - values[lo])


by_arrow = {"incident_count": table.num_rows}
for column, name in DURATIONS:
    for q in (0.5, 0.9):
        by_arrow[f"{name}_p{int(q * 100)}"] = percentile_cont(table[column].to_pylist(), q)

# %% [markdown]
# ## mttx's own answer
#
# The API's team breakdown of the same week (`group_by=team`), its row for the team.

# %%
query = urllib.parse.urlencode(
    {"from": monday.isoformat(), "to": (monday + dt.timedelta(days=7)).isoformat(), "tz": args.tz, "group_by": "team"}
)
request = urllib.request.Request(
    f"{args.api}/api/v1/reports/incidents?{query}",
    headers={"Authorization": f"Bearer {args.token}"},
)
with urllib.request.urlopen(request) as answer:
    report = json.load(answer)
row = next((g for g in report["groups"] if g["key"] == str(team)), None)
if row is None:
    sys.exit(f"the API has no row for team {team} in {args.week}")
by_api = {k: row["metrics"][k]["value"] for k in exact}
print(f"API: team {team} ({row.get('name')}), facts version {report['facts_version']}")

# %% [markdown]
# ## Trap 2: a glob over the Parquet files counts rewritten files twice
#
# Compaction (`mttx etl upkeep`) and every MERGE write new files and mark the old ones
# removed in the log; the old files stay on disk until vacuum deletes them (after
# `--retain-hours`). Reading `**/*.parquet` sees both. Read through the Delta log
# (`scan_delta`, `DeltaTable`, DuckDB's `delta_scan`), never a glob.

# %%
if "://" not in args.facts:
    globbed = (
        # The data files only (`**/*.parquet` would also take the log's checkpoints).
        pl.scan_parquet(f"{args.facts}/account_id=*/month=*/*.parquet", hive_partitioning=True)
        .filter(pl.col("account_id") == args.account)
        .select(pl.len())
        .collect()
        .item()
    )
    logged = facts.filter(pl.col("account_id") == args.account).select(pl.len()).collect().item()
    print(f"account {args.account}: {logged} incidents through the Delta log, {globbed} rows in a glob of the files")
    if globbed > logged:
        print(f"  the glob counts {globbed - logged} rows of rewritten files twice")

# %% [markdown]
# ## Trap 3: the table holds every account
#
# mttx's API answers a token for its own account only. The table has no such scoping:
# whoever can read its files reads every account. Filter on `account_id` yourself, and
# give people the API, not the bucket.

# %%
accounts = facts.select(pl.col("account_id").unique().sort()).collect()["account_id"].to_list()
print(f"accounts in the table: {accounts}")

# %% [markdown]
# ## The numbers side by side
#
# The same week and team, three ways. They are equal to the last bit: the same values,
# the same interpolation.

# %%
equal = True
print(f"{'metric':<15} {'polars':>14} {'deltalake':>14} {'mttx API':>14}")
for k in exact:
    a, b, c = exact[k], by_arrow[k], by_api[k]
    same = a == b == c or all(v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b, c))
    equal &= same
    print(f"{k:<15} {a!s:>14} {b!s:>14} {c!s:>14} {'' if same else '  DIFFERENT'}")
if not equal:
    sys.exit("the numbers differ")
print("equal: polars, deltalake and the mttx API agree")
