"""The ``frptw`` command line.

``frptw verify --config FILE [--role frpc|frps] [--no-strict-config]`` checks a configuration
the way ``frpc verify -c FILE`` / ``frps verify -c FILE`` do: exit status 0 and
``FILE: syntax is ok`` (warnings on stderr), or the one-line error on stderr and status 1.
Running the services is twistd's job (``twistd -n frpc --config FILE``).
"""

import argparse
import sys
import traceback
from typing import List, Optional, TextIO

from frptw.config import load_config
from frptw.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frptw", description="frp (fast reverse proxy) on Twisted")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="check a configuration file like frpc/frps verify")
    verify.add_argument("--config", "-c", required=True, metavar="FILE", help="frp INI, TOML, YAML or JSON file")
    verify.add_argument("--role", choices=("frpc", "frps"), help="default: tell from the file's content")
    verify.add_argument(
        "--no-strict-config",
        dest="strict",
        action="store_false",
        help="ignore unknown keys in TOML/YAML/JSON (frp's --strict-config=false)",
    )
    return parser


def verify(path: str, role: Optional[str], strict: bool, out: TextIO, err: TextIO) -> int:
    """Check ``path``; print the verdict; return the exit status."""
    try:
        config = load_config(path, role=role, strict=strict)
    except ConfigError as e:
        print(str(e), file=err)
        return 1
    except Exception as e:  # a bug of ours: say so first, then the traceback to report
        print(f"{path}: internal error while checking the file ({type(e).__name__}: {e}); please report it", file=err)
        traceback.print_exc(file=err)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=err)
    print(f"{path}: syntax is ok", file=out)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    return verify(args.config, args.role, args.strict, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
