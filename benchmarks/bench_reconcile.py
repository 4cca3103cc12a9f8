"""Bank reconciliation at scale: a camt.054 file of N entries (generated) against N confirmed payments.

Every figure is measured in the same run, next to its baseline:

- parse: ``bank.statements.read_statements`` over the file, against a bare ``lxml.etree.iterparse`` scan
  of the same file (every element's end event, each entry cleared as it ends): the ratio is the bare
  scan's time over ours (issue 12: at least 0.5);
- match: ``bank.matching`` over the parsed transactions and the payments, against a DuckDB join of the
  same two tables on the reference (issue 12: at most 3x DuckDB's time), and a pandas merge;
- end to end: parse, match, classify and write the report, under 60 s, with the peak memory of this
  process (issue 12: under 1 GB).

Run ``python benchmarks/bench_reconcile.py`` (``--entries N``, default 1,000,000; ``--smoke`` for 20,000;
``--profile`` to print where one more match, untimed, spends its time).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import pickle
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from lienthong.bank.matching import Matcher, Payment
from lienthong.bank.records import Transaction
from lienthong.bank.statements import read_statements

DAY = date(2026, 11, 1)


def cases(n: int, seed: int = 12) -> Iterator[tuple[str, int, date, str, str]]:
    """(reference, amount, booked, end-to-end id, remittance) per bank entry, with the messiness of real
    files: most carry the reference as end-to-end id, some only in the payer's text, some none at all,
    some pay the wrong amount, some pay twice, some are unknown to lienthong."""
    rng = random.Random(seed)
    for i in range(n):
        reference = f"LTPAY-{i:09d}"
        amount = 10_000 * rng.randint(1, 200)
        booked = DAY + timedelta(days=i % 28)
        roll = rng.random()
        if roll < 0.90:
            yield reference, amount, booked, reference, f"{reference} nop le phi ho so"
        elif roll < 0.95:
            yield reference, amount, booked, "NOTPROVIDED", f"TT {reference} nop phi"
        elif roll < 0.96:
            yield reference, amount, booked, "NOTPROVIDED", "nop le phi"  # found by amount and date
        elif roll < 0.97:
            yield reference, amount + 5_000, booked, reference, reference  # amount mismatch
        elif roll < 0.98:
            yield f"UNKNOWN-{i:09d}", amount + 1, booked, f"UNKNOWN-{i:09d}", "chuyen tien"
        else:
            yield reference, amount, booked, reference, reference  # paid, and paid again below
            yield reference, amount, booked, reference, reference


def payments(n: int, seed: int = 12) -> list[Payment]:
    """The payments lienthong confirmed for the same references (1% never reached the bank)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        amount = 10_000 * rng.randint(1, 200)
        rng.random()
        out.append(Payment(f"LTPAY-{i:09d}", amount, DAY + timedelta(days=i % 28)))
    out.extend(Payment(f"LTPAY-X{i:08d}", 50_000, DAY) for i in range(n // 100))
    return out


def write_camt054(path: Path, n: int) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn>\n'
            "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-12-01T23:00:00+07:00</CreDtTm></GrpHdr>\n"
            "<Ntfctn><Id>N1</Id><Acct><Id><Othr><Id>118000123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>\n"
        )
        for reference, amount, booked, e2e, text in cases(n):
            count += 1
            out.write(
                f'<Ntry><NtryRef>N{count}</NtryRef><Amt Ccy="VND">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
                f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>"
                f"<AcctSvcrRef>FT{count:010d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>{e2e}"
                f"</EndToEndId><TxId>TX{count:010d}</TxId></Refs>"
                f'<Amt Ccy="VND">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><RltdPties><Dbtr><Pty><Nm>NGUYEN VAN'
                f" {reference[-4:]}</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>0011{count:08d}</Id></Othr></Id>"
                f"</DbtrAcct></RltdPties><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n"
            )
        out.write("</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n")
    return count


def bare_scan(path: Path) -> int:
    """The floor: lxml's iterparse over every element, each entry cleared when it ends."""
    count = 0
    for _, element in etree.iterparse(str(path), events=("end",)):
        count += 1
        if element.tag.endswith("}Ntry"):
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
    return count


def parse(path: Path) -> int:
    """Read every transaction and summary of the file, keeping none (the parse alone)."""
    count = 0
    for _ in read_statements(path):
        count += 1
    return count


def materialise(path: Path) -> list[Transaction]:
    return [item for item in read_statements(path) if isinstance(item, Transaction)]


def end_to_end(path: Path, n: int, report_dir: Path, answer: Any) -> None:
    """In a process of its own, as the job runs: payments loaded, the file parsed and matched as it is
    read (nothing kept but what pass 2 needs), classified, written. Sends (seconds, peak RSS in MB)."""
    started = time.perf_counter()
    matcher = Matcher(payments(n), date_tolerance_days=3, amount_tolerance=0, payer_threshold=5)
    summaries: list[Any] = []

    def transactions() -> Iterator[Transaction]:
        for item in read_statements(path):
            if isinstance(item, Transaction):
                yield item
            else:
                summaries.append(item)

    matcher.add_all(transactions(), last=True)  # one file, as the job's last
    report = matcher.finish()
    report.write(report_dir)
    elapsed = time.perf_counter() - started
    answer.send((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, dict(report.counts)))


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def duckdb_join(transactions: list[Transaction], paid: list[Payment]) -> tuple[float, float]:
    """A full outer join of the two tables on the reference: (seconds for the join of tables already in
    DuckDB, seconds from the same Python lists our matcher starts from, loading included)."""
    import duckdb  # noqa: PLC0415 (a baseline, in the dev extras)
    import pyarrow as pa  # noqa: PLC0415

    connection = duckdb.connect()
    started = time.perf_counter()
    bank = pa.table(
        {
            "reference": [t.references[0] if t.references else "" for t in transactions],
            "amount": [int(t.amount) for t in transactions],
        }
    )
    ours = pa.table({"reference": [p.reference for p in paid], "amount": [p.amount for p in paid]})
    connection.register("bank", bank)
    connection.register("ours", ours)
    connection.execute("CREATE TABLE b AS SELECT * FROM bank; CREATE TABLE o AS SELECT * FROM ours")
    joined = time.perf_counter()
    connection.execute("SELECT count(*) FROM o FULL OUTER JOIN b ON o.reference = b.reference").fetchone()
    done = time.perf_counter()
    return done - joined, done - started


def pandas_merge(transactions: list[Transaction], paid: list[Payment]) -> float:
    import pandas as pd  # noqa: PLC0415 (a baseline, in the dev extras)

    bank = pd.DataFrame(
        {
            "reference": [t.references[0] if t.references else "" for t in transactions],
            "amount": [int(t.amount) for t in transactions],
        }
    )
    ours = pd.DataFrame({"reference": [p.reference for p in paid], "amount": [p.amount for p in paid]})
    started = time.perf_counter()
    pd.merge(ours, bank, on="reference", how="outer", indicator=True)
    return time.perf_counter() - started


def match(transactions: list[Transaction], paid: list[Payment]) -> Any:
    matcher = Matcher(paid, date_tolerance_days=3, amount_tolerance=0, payer_threshold=5)
    matcher.add_all(transactions, last=True)  # one file, as the job's last
    return matcher.finish()


def _seconds(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 entries: checks the benchmark works")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the match and of DuckDB, the best of each kept"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then one more match under cProfile, its top functions"
    )
    args = parser.parse_args()
    n = 20_000 if args.smoke else args.entries
    with tempfile.TemporaryDirectory(prefix="lienthong-reconcile-") as tmp:
        path = Path(tmp) / "camt054.xml"
        entries = write_camt054(path, n)
        size = path.stat().st_size
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(
            target=end_to_end, args=(path, n, Path(tmp) / "report", send)
        )
        child.start()
        end_to_end_s, peak_mb, counts = receive.recv()
        child.join()
        bare_s, _ = timed(bare_scan, path)
        parse_s, _ = timed(parse, path)
        transactions = materialise(path)
    paid = payments(n)
    # Interleaved, best of ``--repeat`` for each side, so that a busy moment of a shared machine does
    # not decide the ratio. Ours runs on a fresh copy of the transactions each time (strings that have
    # not yet been hashed, as they come from the parser); DuckDB reads the same lists each time.
    import duckdb  # noqa: F401, PLC0415 (imported before any timing: an import is no part of a join)
    import pyarrow  # noqa: F401, PLC0415

    match_times, duck_times, join_times = [], [], []
    for _ in range(args.repeat):
        fresh = pickle.loads(pickle.dumps(transactions, pickle.HIGHEST_PROTOCOL))
        seconds, report = timed(match, fresh, paid)
        del fresh
        match_times.append(seconds)
        join_s, from_lists_s = duckdb_join(transactions, paid)
        duck_times.append(from_lists_s)
        join_times.append(join_s)
    match_s, duck_s, duck_join_s = min(match_times), min(duck_times), min(join_times)
    pandas_s = pandas_merge(transactions, paid)
    figures = {
        "entries": entries,
        "file_mb": size / 1e6,
        "bare_iterparse_s": bare_s,
        "parse_s": parse_s,
        "parse_ratio": bare_s / parse_s,
        "match_s": match_s,
        "duckdb_s": duck_s,
        "duckdb_join_only_s": duck_join_s,
        "match_over_duckdb": match_s / duck_s,
        "match_runs_s": match_times,
        "duckdb_runs_s": duck_times,
        "pandas_merge_s": pandas_s,
        "end_to_end_s": end_to_end_s,
        "peak_rss_mb": peak_mb,
        "counts": counts,
    }
    assert counts == dict(report.counts), (counts, report.counts)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"reconciliation benchmark: {entries:,} camt.054 entries ({size / 1e6:,.0f} MB), {len(paid):,} payments"
    )
    print(
        f"  parse            {parse_s:7.2f} s   bare iterparse scan {bare_s:6.2f} s   bare/ours {bare_s / parse_s:.2f} (>= 0.5)"
    )
    print(
        f"  match            {match_s:7.2f} s   DuckDB, from the same lists {duck_s:6.2f} s   ours/DuckDB {match_s / duck_s:.2f} (<= 3)"
        f"   (best of {args.repeat}: ours {_seconds(match_times)}, DuckDB {_seconds(duck_times)})"
    )
    print(
        f"                                DuckDB, join of loaded tables {duck_join_s:5.2f} s   ours/that {match_s / duck_join_s:.2f}"
    )
    print(f"  pandas merge     {pandas_s:7.2f} s")
    print(
        f"  end to end       {end_to_end_s:7.2f} s (< 60 s), its own process: peak memory {peak_mb:,.0f} MB (< 1,024)"
    )
    print(f"  results          {counts}")
    if args.profile:
        profile_match(transactions, paid)
    return 0


def profile_match(transactions: list[Transaction], paid: list[Payment]) -> None:
    """One more match, on a fresh copy, under cProfile (which slows it): where the time goes."""
    import cProfile  # noqa: PLC0415 (only with --profile)
    import pstats  # noqa: PLC0415

    fresh = pickle.loads(pickle.dumps(transactions, pickle.HIGHEST_PROTOCOL))
    profiler = cProfile.Profile()
    profiler.runcall(match, fresh, paid)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    sys.exit(main())
