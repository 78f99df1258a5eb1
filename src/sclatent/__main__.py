"""``python -m sclatent demo``: run the README demo."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the command line."""
    parser = argparse.ArgumentParser(prog="sclatent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train on bundled data; write demo.h5ad, demo.png and rnx.png")
    demo.add_argument("--out", default="sclatent_demo", help="output folder")
    demo.add_argument("--epochs", type=int, default=20, help="scVAE epochs")
    demo.add_argument("--groupenc-epochs", type=int, default=100, help="GroupEnc epochs")
    demo.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.out, epochs=args.epochs, groupenc_epochs=args.groupenc_epochs, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
