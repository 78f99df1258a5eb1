"""The command line: ``sclatent <tool> IN OUT [--param value ...]``, one sub-command per ``tl`` tool.

Options are generated from the ``tl`` functions' signatures, so names, types and defaults always
match the Python API (``n_latent`` -> ``--n-latent``; booleans get ``--flag`` / ``--no-flag``; tuples
take several values; ``none`` passes None). Usage and input errors print one line and exit with 2;
no output file is written unless the tool succeeded.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import Choice, Choices, Integer

USAGE_ERROR = 2
#: Exit code after Ctrl-C, as shells report SIGINT.
INTERRUPTED = 130
#: Arguments of the tl functions that the command line sets itself.
_FIXED = {"adata", "copy"}
#: Options of the command line that are not arguments of the tool.
_CLI_ONLY = {"command", "input", "output", "threads", "plot", "backed", "sub_commands"}


def _tools() -> dict[str, Callable[..., Any]]:
    """Each sub-command's ``tl`` function; its docstring documents the options, ``.checks`` checks them."""
    from . import tl

    return {
        "scvae": tl.scvae,
        "groupenc": tl.groupenc,
        "ae-sampling": tl.ae_sampling,
        "rnx": tl.rnx,
        "latent-accuracy": tl.latent_accuracy,
    }


def _none_or(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _option(
    parser: argparse.ArgumentParser, name: str, parameter: inspect.Parameter, hint: Any, **how: Any
) -> None:
    """Add ``--name`` to ``parser`` with a type read from the annotation ``hint``.

    ``how`` holds ``help`` and ``choices`` (None: any value).
    """
    flag = "--" + name.replace("_", "-")
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    kinds = [a for a in args if a is not type(None)]
    required = parameter.default is inspect.Parameter.empty
    default = None if required else parameter.default
    if not required and "default" not in how["help"].lower():
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        how["help"] += f" (default: {shown})"
    how = {"required": required, "default": default, **how}
    if bool in kinds:
        del how["choices"]
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **how)
        return
    sequences = [k for k in kinds if typing.get_origin(k) in (Sequence, list, tuple)]
    if sequences:
        item = (typing.get_args(sequences[0]) or (str,))[0]
        metavar = item.__name__.upper() if how["choices"] is None else None
        parser.add_argument(flag, nargs="+", type=item, metavar=metavar, **how)
        return
    kind = kinds[0] if kinds[0] in (int, float, str) else str
    parser.add_argument(flag, type=_none_or(kind) if type(None) in args else kind, **how)


def _parameter_docs(function: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's description in a numpydoc docstring, as plain text."""
    found: dict[str, str] = {}
    names: list[str] = []
    for line in inspect.getdoc(function).splitlines():
        if line.startswith("    ") and names:
            for name in names:
                found[name] = f"{found.get(name, '')} {line.strip()}".strip()
        else:
            names = [n.strip() for n in line.split(",")] if line and " " not in line.strip(", ") else []
    return {name: _plain(text) for name, text in found.items()}


def _plain(text: str) -> str:
    """ReStructuredText roles and literals as plain text: ``:class:`a.B``` -> ``B``."""
    text = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`", r"\1", text)
    return text.replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    """The ``sclatent`` argument parser with one sub-command per tool, plus ``demo``."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="sclatent", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sclatent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(sub_commands={})
    for command, tool in _tools().items():
        summary = inspect.getdoc(tool).splitlines()[0]
        sub = commands.add_parser(command, help=summary, description=summary)
        parser.get_default("sub_commands")[command] = sub
        sub.add_argument("input", metavar="IN", help="input AnnData (.h5ad or .zarr)")
        sub.add_argument("output", metavar="OUT", help="output AnnData (.h5ad or .zarr)")
        hints = typing.get_type_hints(tool)
        docs = _parameter_docs(tool)
        for name, parameter in inspect.signature(tool).parameters.items():
            if name in _FIXED:
                continue
            check = tool.checks.get(name)
            choices = check.choices if isinstance(check, Choice | Choices) else None
            _option(sub, name, parameter, hints[name], help=docs.get(name, ""), choices=choices)
        if "random_state" in hints:
            sub.add_argument("--seed", dest="random_state", type=int, help="alias of --random-state")
        sub.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all)")
        sub.add_argument(
            "--backed",
            action="store_true",
            help="leave the input matrix on disk and stream it in blocks (for data larger than memory)",
        )
        if command == "rnx":
            sub.add_argument("--plot", metavar="PNG", help="also save the sl.pl.rnx figure here")
    demo = commands.add_parser("demo", help="train on bundled data; write demo.h5ad, demo.png and rnx.png")
    demo.add_argument("--out", default="sclatent_demo", help="output folder (default: sclatent_demo)")
    demo.add_argument("--epochs", type=int, default=20, help="scVAE epochs (default: 20)")
    demo.add_argument("--groupenc-epochs", type=int, default=100, help="GroupEnc epochs (default: 100)")
    demo.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)"
    )
    return parser


def positionals_first(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with a sub-command's IN and OUT moved before its options.

    argparse lets an option that takes several values (``--hidden 64 32``) take every word after it,
    the paths included. Its values end here at the first word that is an option, does not convert to
    the option's type or choices, or names an AnnData file (``.h5ad`` / ``.zarr``).
    """
    from ._io import ANNDATA_SUFFIXES

    sub = parser.get_default("sub_commands").get(argv[0]) if argv else None
    if sub is None:
        return list(argv)
    actions = {flag: action for action in sub._actions for flag in action.option_strings}
    positionals: list[str] = []
    options: list[str] = []
    words = list(argv[1:])
    while words:
        word = words.pop(0)
        if word == "--":
            positionals += words
            break
        action = actions.get(word.split("=", 1)[0]) if word.startswith("--") else None
        if action is None or "=" in word:
            (options if word.startswith("-") and not _is_number(word) else positionals).append(word)
            continue
        options.append(word)
        if action.nargs == 0:
            continue
        if action.nargs != "+":
            options += words[:1]
            del words[:1]
            continue
        while words and _is_value(words[0], action, ANNDATA_SUFFIXES):
            options.append(words.pop(0))
    return [argv[0], *positionals, *options]


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _is_value(word: str, action: argparse.Action, not_suffixes: Sequence[str]) -> bool:
    """Whether ``word`` can be a value of the several-valued option ``action``."""
    if word.startswith("-") and not _is_number(word):
        return False
    if word.rstrip("/").lower().endswith(tuple(not_suffixes)):
        return False
    try:
        value = action.type(word) if action.type is not None else word
    except (TypeError, ValueError):
        return False
    return action.choices is None or value in action.choices


def run(args: argparse.Namespace, *, decimals: int | None = None) -> None:
    """Run the tool of parsed ``args``: read, compute, then write (nothing written on failure).

    Parameters
    ----------
    args
        Parsed by :func:`build_parser`.
    decimals
        Round the float arrays of ``obsm`` to this many decimals before writing (pipeline snapshots
        that must not change with the last bits of floating point); None: keep them exact.
    """
    import torch
    import torch.distributed as dist

    from ._core.runtime import init_from_env, rank_and_size
    from ._io import ANNDATA_SUFFIXES, FIGURE_SUFFIXES, check_output_file, read_anndata

    # several values arrive as lists; the tools take tuples of scalars
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k not in _CLI_ONLY}
    # outputs are checked before any work, so that a wrong path does not cost a whole run
    check_output_file(args.output, "OUT", suffixes=ANNDATA_SUFFIXES)
    if getattr(args, "plot", None):
        check_output_file(args.plot, "--plot", suffixes=FIGURE_SUFFIXES)
    if args.threads is not None:
        torch.set_num_threads(Integer(minimum=1)("--threads", args.threads))
    # under torchrun: one process per shard of cells
    distributed = init_from_env(options.get("device", "auto"))
    try:
        adata = read_anndata(args.input, backed=args.backed)
        _tools()[args.command](adata, **options)
        if rank_and_size()[0] == 0:
            _save(adata, args, decimals)
    finally:
        if distributed:
            dist.destroy_process_group()


def _save(adata, args: argparse.Namespace, decimals: int | None) -> None:
    """Write the outputs (rank 0 only in a data-parallel run), each atomically."""
    from ._io import atomic_path, write_anndata

    if decimals is not None:
        for key, value in adata.obsm.items():
            if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
                adata.obsm[key] = value.round(decimals)
    write_anndata(adata, args.output)
    if getattr(args, "plot", None):
        import matplotlib

        matplotlib.use("Agg")
        from . import pl

        fig = pl.rnx(adata, args.basis, key=args.key_added or "rnx", return_fig=True)
        with atomic_path(args.plot) as temporary:
            fig.savefig(temporary, dpi=120, bbox_inches="tight")


def pipeline_step(
    command: str,
    input_path: str,
    prefix: str,
    *,
    threads: int,
    process: str,
    args: Sequence[str] = (),
    seed: int = 0,
    decimals: int = 6,
) -> None:
    """Run one tool as a workflow step (the nf-core module templates call this).

    Writes ``<prefix>.h5ad`` (for ``rnx`` also ``<prefix>.png``) with ``obsm`` rounded to ``decimals``
    so that snapshots are stable, and ``versions.yml``. The seed comes first on the command line, so
    ``--random-state`` in ``args`` overrides it.

    Parameters
    ----------
    command
        ``"scvae"``, ``"groupenc"``, ``"ae-sampling"`` or ``"rnx"``.
    input_path
        The input AnnData.
    prefix
        Output file names without extension.
    threads
        CPU threads for PyTorch.
    process
        The workflow's process name, the key of ``versions.yml``.
    args
        Further command-line options of the tool (e.g. ``["--epochs", "50"]``).
    seed
        Default random state.
    decimals
        Decimals kept in ``obsm``.
    """
    from ._io import versions

    argv = [command, input_path, f"{prefix}.h5ad", "--threads", str(threads), "--random-state", str(seed)]
    argv += ["--plot", f"{prefix}.png"] if command == "rnx" else ["--no-progress"]
    parser = build_parser()
    run(parser.parse_args(positionals_first(parser, [*argv, *args])), decimals=decimals)
    lines = [f'"{process}":'] + [f"    {name}: {value}" for name, value in versions().items()]
    Path("versions.yml").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sclatent`` and ``python -m sclatent``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(positionals_first(parser, sys.argv[1:] if argv is None else argv))
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.out, epochs=args.epochs, groupenc_epochs=args.groupenc_epochs, device=args.device)
        return 0
    from ._core.runtime import DistributedSetupError, PeerLostError
    from ._core.train import TrainingDivergedError

    try:
        run(args)
    except (
        KeyError,
        ValueError,
        TypeError,
        OSError,
        TrainingDivergedError,
        DistributedSetupError,
        PeerLostError,
    ) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"sclatent {args.command}: error: {message}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"sclatent {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return INTERRUPTED
    return 0
