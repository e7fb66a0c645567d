"""`warden backup PATH` and `warden restore PATH [--yes]` (the work is in ``storage/backup.py``).

backup: safe while the agent runs (SQLite's online backup, one consistent snapshot); exit 0, or
2 when there is no database, the destination folder is missing, or the file exists and
``--force`` was not given (an old backup is never replaced by accident).
restore: exit 0 restored; 2 the source is not a usable Warden database, or is a folder (the
newest backup in it is named, never picked silently), or no confirmation (nothing changed);
1 declined at the prompt; 75 an agent, a lease holder or another process is using the database
(nothing changed).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bot import exit_codes
from bot.commands.render import print_json
from bot.context import Context
from storage import backup as store
from storage.errors import StorageError
from storage.migrations import LATEST


def postgres_refusal(database: str, command: str) -> str:
    """What `warden backup/restore` say on PostgreSQL: the operator's tools do this there."""
    return (
        f"warden {command} copies the SQLite file; this store is PostgreSQL ({database}). Use "
        "PostgreSQL's own tools: "
        '`pg_dump --format=custom --file=warden.dump "$WARDEN_DATABASE_URL"` '
        "while the agents run (one consistent snapshot), and with every agent stopped "
        '`pg_restore --clean --if-exists --no-owner --dbname="$WARDEN_DATABASE_URL" warden.dump` '
        "(README: Deploying, On PostgreSQL)"
    )


def _db_path(ctx: Context, command: str) -> Path:
    if ctx.database_url is not None:
        raise StorageError(postgres_refusal(ctx.database, command))
    path = ctx.config.storage.path
    if path == ":memory:":
        raise StorageError("[storage] path is :memory:: there is no database file")
    return Path(path)


async def backup(ctx: Context) -> int:
    db_path, dest = _db_path(ctx, "backup"), Path(ctx.args.path)
    itself = dest.exists() and dest.resolve() == db_path.resolve()  # refused below, as such
    if dest.exists() and not dest.is_dir() and not itself and not ctx.args.force:
        print(
            f"warden backup: {dest} exists: not overwritten (--force replaces it, or give a "
            "folder for a new timestamped file)",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    result = store.backup(db_path, dest)
    if ctx.args.json:
        print_json(
            {
                "path": str(result.path),
                "schema_version": result.schema_version,
                "bytes": result.bytes,
                "seconds": round(result.seconds, 3),
            }
        )
    else:
        print(
            f"backup written: {result.path} ({result.bytes:,} bytes, schema "
            f"{result.schema_version}, {result.seconds:.2f}s)"
        )
    return exit_codes.OK


def _confirmed(question: str) -> bool | None:
    """True/False from the terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def newest_backup(folder: Path) -> Path | None:
    """The newest ``*.db`` file in ``folder`` (what `warden backup FOLDER` writes), by mtime."""
    files = [p for p in folder.glob("*.db") if p.is_file()]
    return max(files, key=lambda p: (p.stat().st_mtime, p.name)) if files else None


async def restore(ctx: Context) -> int:
    db_path = _db_path(ctx, "restore")
    source = Path(ctx.args.path)
    if source.is_dir():
        newest = newest_backup(source)
        hint = f"newest here: {newest}" if newest else "there is no .db file in it"
        print(
            f"warden restore: {source} is a folder: restore needs a backup file ({hint})",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    info = store.inspect(source)  # refuse a bad source before asking anything
    if not ctx.args.yes:
        answer = _confirmed(
            f"replace {db_path} with {source} (schema {info.schema_version})? The current "
            "database is kept beside it"
        )
        if answer is None:
            print("warden: refusing without --yes: no terminal to confirm on", file=sys.stderr)
            return exit_codes.USAGE
        if not answer:
            print("warden: not confirmed; nothing was restored", file=sys.stderr)
            return exit_codes.REFUSED
    try:
        result = store.restore(source, db_path)
    except store.DatabaseInUse as exc:
        print(f"warden: busy: {exc}", file=sys.stderr)
        return exit_codes.BUSY
    kept = f"; the previous database is kept as {result.kept}" if result.kept else ""
    upgrade = (
        f"; Warden migrates it from schema {result.schema_version} to {LATEST} when it opens it"
        if result.schema_version < LATEST
        else ""
    )
    print(f"restored {result.database} from {result.source}{kept}{upgrade}")
    return exit_codes.OK
