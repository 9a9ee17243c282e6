"""The ``ctplan`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import sample_series.cli as samples_cli


def _serve(args: argparse.Namespace) -> int:
    from api.server import serve
    from api.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "dicom_port": args.dicom_port,
            "http_port": args.http_port,
            "storage_dir": args.storage_dir,
        }.items()
        if v is not None
    }
    serve(Settings(**overrides))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctplan",
        description="CT-guided infiltration planning service for painful bone metastases.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the DICOM SCP and the HTTP API",
        description="Run the DICOM SCP and the HTTP API in one process. Settings come from "
        "CTPLAN_* environment variables (see README); these options override them.",
    )
    serve.add_argument("--host", help="bind address (CTPLAN_HOST)")
    serve.add_argument("--dicom-port", type=int, help="DICOM port (CTPLAN_DICOM_PORT)")
    serve.add_argument("--http-port", type=int, help="HTTP port (CTPLAN_HTTP_PORT)")
    serve.add_argument("--storage-dir", help="storage folder (CTPLAN_STORAGE_DIR)")
    serve.set_defaults(func=_serve)
    samples_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
