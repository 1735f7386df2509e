"""List and delete stored symbol files (they are never pruned with reports).

    python -m chalicelib.symbol_admin list
    python -m chalicelib.symbol_admin delete DEBUG_FILE DEBUG_ID [--dry-run]

Deleting removes the .sym file and its index; reports processed with them keep their
names until they are processed again (`python -m chalicelib.processing --reprocess`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from chalicelib import config
from chalicelib.bucket import StoreError
from chalicelib.symbol_store import SymbolStore, valid_module_id


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.symbol_admin",
                                     description="List or delete stored symbol files.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every stored symbol file, newest upload first")
    delete = commands.add_parser("delete", help="delete one module's symbol file and index")
    delete.add_argument("debug_file")
    delete.add_argument("debug_id")
    delete.add_argument("--dry-run", action="store_true", help="say what would go")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        cfg = config.load()
    except config.ConfigError as error:
        parser.error(str(error))
    symbols = SymbolStore.from_config(cfg)
    try:
        if args.command == "list":
            count = 0
            for upload in symbols.iter_uploads():
                count += 1
                print(f"{upload.debug_file}\t{upload.debug_id}\t{upload.os}\t{upload.cpu}\t"
                      f"{upload.size}\t{upload.uploaded_at:%Y-%m-%d %H:%M:%S}Z\t{upload.uploader}")
            print(f"{count} symbol files", file=sys.stderr)
            return 0
        if not valid_module_id(args.debug_file, args.debug_id):
            parser.error("not a debug file and debug id (33 to 40 upper-case hex digits)")
        keys = symbols.module_keys(args.debug_file, args.debug_id)
        if not keys:
            print(f"no symbol file stored for {args.debug_file}/{args.debug_id}",
                  file=sys.stderr)
            return 1
        for key in keys:
            print(("would delete " if args.dry_run else "deleting ") + key)
        if not args.dry_run:
            symbols.delete_module(args.debug_file, args.debug_id)
        return 0
    except StoreError as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
