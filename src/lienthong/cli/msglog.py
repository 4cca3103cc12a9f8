"""``lienthong log``: the verifiable message log (issue 13 §3).

- ``log keygen NAME --out FILE``: a checkpoint signing key (to FILE, readable by its owner only) and its
  verifier key (printed: give it to whoever checks the log);
- ``log verify CONFIG``: the whole log against its checkpoints; names the first bad record;
- ``log prove CONFIG SUBJECT``: inclusion proofs of the records about a message id or a payment reference;
- ``log check PROOF VERIFIER``: check such a proof with the verifier key alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

CONFIG_HELP = "the YAML config file of the node whose store holds the log"


def add_commands(sub: Any) -> None:
    log = sub.add_parser("log", help="the verifiable message log: keys, verification, inclusion proofs")
    commands = log.add_subparsers(title="log commands", metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="make a checkpoint signing key and print its verifier key")
    keygen.add_argument("name", help="the key's name, e.g. lienthong.ha-noi (no spaces or '+')")
    keygen.add_argument("--out", type=Path, required=True, help="file to write the signing key to (new)")
    keygen.set_defaults(handler=_keygen)

    verify = commands.add_parser("verify", help="check every record and checkpoint; name the first bad one")
    verify.add_argument("config", type=Path, help=CONFIG_HELP)
    verify.add_argument(
        "--verifier", help="the log's verifier key, or @FILE holding it: checkpoints' signatures are checked"
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint kept elsewhere (a signed note): the log must still agree with it (repeatable)",
    )
    verify.add_argument(
        "--forms",
        action="store_true",
        help="also parse every record: finds records lienthong itself wrote wrong (14-26% slower, measured)",
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.set_defaults(handler=_verify)

    prove = commands.add_parser("prove", help="inclusion proofs of the records about a message or payment")
    prove.add_argument("config", type=Path, help=CONFIG_HELP)
    prove.add_argument("subject", help="a message id, a payment reference or a look-up's request id")
    prove.set_defaults(handler=_prove)

    export = commands.add_parser("export", help="one day's records in a signed archive (a tar file)")
    export.add_argument("config", type=Path, help=CONFIG_HELP + " (and the checkpoint key that signs)")
    export.add_argument("--day", type=date.fromisoformat, required=True, help="the day, YYYY-MM-DD (+07:00)")
    export.add_argument("--out", type=Path, required=True, help="the archive to write (a new file)")
    export.set_defaults(handler=_export)

    check = commands.add_parser("check", help="check a proof from `log prove` with the verifier key alone")
    check.add_argument("proof", type=Path, help="the JSON that `log prove` printed")
    check.add_argument("verifier", help="the log's verifier key, or @FILE holding it")
    check.set_defaults(handler=_check)


def _key_text(value: str) -> str:
    """A key given as itself or as @FILE."""
    return Path(value[1:]).read_text(encoding="ascii").strip() if value.startswith("@") else value.strip()


def _keygen(args: argparse.Namespace) -> int:
    from lienthong.msglog.checkpoints import NoteError, SigningKey  # noqa: PLC0415

    try:
        key = SigningKey.generate(args.name)
    except NoteError as exc:
        print(f"cannot make a key named {args.name!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(
            f"cannot write {args.out}: {exc.strerror} (an existing key is never overwritten)", file=sys.stderr
        )
        return EXIT_USAGE
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.text() + "\n")
    print(key.verifier())
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from lienthong.cli.dlq import run_on_store  # noqa: PLC0415
    from lienthong.msglog.checkpoints import Checkpoint, NoteError  # noqa: PLC0415
    from lienthong.msglog.verify import verify  # noqa: PLC0415

    try:
        verifier = _key_text(args.verifier) if args.verifier else None
        outside = [_outside(path, Checkpoint, verifier) for path in args.checkpoint]
    except (OSError, NoteError) as exc:
        print(f"cannot use {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def work(node: Any) -> int:
        verdict = await verify(node.store, verifier=verifier, outside=outside, forms=args.forms)
        if args.json:
            print(json.dumps({**vars(verdict), "ok": verdict.ok}, ensure_ascii=False))
        else:
            for problem in verdict.problems:
                print(problem)
            signed = "" if verifier else " (signatures not checked: give --verifier)"
            state = "ok" if verdict.ok else f"{len(verdict.problems)} problems"
            print(f"{verdict.records:,} records, {verdict.checkpoints:,} checkpoints: {state}{signed}")
        return EXIT_OK if verdict.ok else EXIT_FAILED

    return run_on_store(args.config, work)


def _outside(path: Path, checkpoint: Any, verifier: str | None) -> Any:
    """A checkpoint kept elsewhere: a signed note (checked when ``verifier`` is given), or its text."""
    from lienthong.msglog.checkpoints import NoteError, open_checkpoint  # noqa: PLC0415

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"{path}: {exc.strerror}") from exc
    try:
        return open_checkpoint(text, verifier) if verifier else checkpoint.parse(text.split("\n\n")[0] + "\n")
    except NoteError as exc:
        raise NoteError(f"{path}: {exc}") from exc


def _prove(args: argparse.Namespace) -> int:
    from lienthong.cli.dlq import run_on_store  # noqa: PLC0415
    from lienthong.msglog.verify import prove  # noqa: PLC0415

    async def work(node: Any) -> int:
        try:
            proofs = await prove(node.store, args.subject)
        except LookupError as exc:
            print(str(exc).strip("'\""), file=sys.stderr)
            return EXIT_FAILED
        print(json.dumps(proofs, ensure_ascii=False, indent=2))
        return EXIT_OK

    return run_on_store(args.config, work)


def _export(args: argparse.Namespace) -> int:
    from lienthong.cli.dlq import run_on_store  # noqa: PLC0415
    from lienthong.msglog.export import export_day  # noqa: PLC0415

    async def work(node: Any) -> int:
        checkpointer = node.checkpointer
        if checkpointer is None:
            print(
                "the archive is signed with message_log.key_file, and the config names none", file=sys.stderr
            )
            return EXIT_USAGE
        try:
            count, _ = await export_day(node.store, args.day, checkpointer.key, checkpointer.origin, args.out)
        except FileExistsError:
            print(f"{args.out} exists: an archive is never overwritten", file=sys.stderr)
            return EXIT_USAGE
        except LookupError as exc:
            print(f"no archive: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{args.out}: {count:,} records of {args.day.isoformat()}, signed")
        return EXIT_OK

    return run_on_store(args.config, work)


def _check(args: argparse.Namespace) -> int:
    from lienthong.msglog.proofcheck import main  # noqa: PLC0415

    try:
        verifier = _key_text(args.verifier)
    except OSError as exc:
        print(f"cannot read the verifier key: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return main([str(args.proof), verifier])
