"""One function per command: every `tinylstm <command>` has a function ``tinylstm.<command>`` whose
parameters carry the command's options by name (``--max-flash`` is ``max_flash``) with the same defaults.

The test walks the CLI's own parser (host/cli/main.py), so a command or an option added to the CLI
without its counterpart in tinylstm/api.py fails here. ``train`` takes its options three ways: its own
parameters (data, out, test_data), the fields of ``TrainConfig`` as keywords, and the dataset options
(``dataset_options``: the keys the loaders take, trainer/data.py ``OPTIONS``)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

import pytest

import tinylstm
from tinylstm.host.cli.main import COMMANDS, build_parser
from tinylstm.trainer.data import BUILTINS, FILE_LOADERS, OPTIONS
from tinylstm.trainer.train import TrainConfig

# The few CLI options that are not a parameter of the same name, and why. Each maps to the API's
# parameter (None: none, a CLI-only concern) and whether the flag is its negation.
NOT_BY_NAME: dict[tuple[str, str], tuple[str | None, bool]] = {
    # a progress bar or a live status line on the terminal: the functions print nothing; train and
    # search take progress=True for their bars (off by default in a script), parity and stream an
    # on_status callback (tested below)
    ("train", "quiet"): (None, False),
    ("search", "quiet"): (None, False),
    ("parity", "quiet"): (None, False),
    ("stream", "quiet"): (None, False),
    # negations: the flag turns off what the API's parameter turns on
    ("train", "no_augment"): ("augment", True),  # TrainConfig.augment=None: no augmentation
    ("search", "no_qat"): ("qat", True),
    ("stream", "no_drift"): ("drift", True),
    # --qat switches quantization-aware fine-tuning on with 10 epochs unless --qat-epochs says how many;
    # the API takes the number: TrainConfig.qat_epochs > 0
    ("train", "qat"): ("qat_epochs", False),
}

# Options whose CLI default is None ("not given") while the API's parameter holds what not giving it
# means, because the CLI must tell "not given" apart: --qat-epochs and --qat-hidden-bits without --qat
# are refused, so their defaults (TrainConfig.qat_epochs 0: no QAT, qat_hidden_bits 8) apply only as
# --qat's (10 epochs, 8 bits).
DEFAULT_FROM_API = {("train", "qat_epochs"), ("train", "qat_hidden_bits")}

REQUIRED = inspect.Parameter.empty


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def same(cli: Any, api: Any) -> bool:
    """Defaults agree; a list of values may be the CLI's comma-separated string."""

    def norm(v: Any) -> Any:
        return ",".join(map(str, v)) if isinstance(v, tuple | list) else v

    return bool(norm(cli) == norm(api))


def api_defaults(command: str) -> dict[str, Any]:
    """The API's parameters for a command and their defaults (REQUIRED: none)."""
    fn = getattr(tinylstm, command)
    params = {
        n: p.default
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    if command == "train":  # **config: TrainConfig's fields
        for f in dataclasses.fields(TrainConfig):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            params[f.name] = default
    return params


def dataset_option_defaults(option: str) -> list[Any]:
    """The defaults of a dataset option in each loader that takes it (a loader without a default: none)."""
    loaders = {**BUILTINS, **FILE_LOADERS}
    out = []
    for key, names in OPTIONS.items():
        if option in names:
            p = inspect.signature(loaders[key]).parameters[option]
            if p.default is not REQUIRED:
                out.append(p.default)
    return out


def mismatches(parser: argparse.ArgumentParser) -> list[str]:
    """What the CLI offers that the API does not, or offers with another default."""
    problems = []
    dataset_keys = set().union(*OPTIONS.values())
    for command, sub in subcommands(parser).items():
        if command not in tinylstm.__all__ or not callable(getattr(tinylstm, command, None)):
            problems.append(f"`tinylstm {command}` has no function tinylstm.{command}")
            continue
        params = api_defaults(command)
        for action in options(sub):
            dest, cli_default = action.dest, action.default
            where = f"`tinylstm {command}` {'/'.join(action.option_strings) or dest}"
            if (command, dest) in NOT_BY_NAME:
                name, negated = NOT_BY_NAME[command, dest]
                if name is None:
                    continue
                if name not in params:
                    problems.append(f"{where}: tinylstm.{command} has no parameter {name}")
                elif negated and (cli_default is not False or not params[name]):
                    problems.append(f"{where}: off by default, so {name} must be on by default")
                continue
            if command == "train" and dest in dataset_keys:
                if cli_default is not None:  # None: each format's own default
                    for d in dataset_option_defaults(dest):
                        if not same(cli_default, d):
                            problems.append(f"{where}: default {cli_default!r}, a loader's {d!r}")
                continue
            if dest not in params:
                problems.append(f"{where}: tinylstm.{command} has no parameter {dest}")
                continue
            api_default = params[dest]
            if action.required or (command, dest) in DEFAULT_FROM_API:
                continue
            if api_default is REQUIRED:
                problems.append(
                    f"{where}: optional on the CLI (default {cli_default!r}), required in the API"
                )
            elif not same(cli_default, api_default):
                problems.append(f"{where}: default {cli_default!r} on the CLI, {api_default!r} in the API")
    return problems


def test_every_command_and_option_has_its_counterpart_in_the_api() -> None:
    parser = build_parser()
    assert sorted(subcommands(parser)) == sorted(COMMANDS)
    assert mismatches(parser) == []


def test_the_check_fails_on_a_missing_counterpart() -> None:
    parser = build_parser()
    subs = subcommands(parser)
    subs["build"].add_argument("--optimize", default="size")
    subs["search"].add_argument("--hidden-bits-extra")
    subs["check"]._actions[[a.dest for a in subs["check"]._actions].index("min_agreement")].default = 99.0
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub_action.add_parser("frobnicate")
    assert mismatches(parser) == [
        "`tinylstm search` --hidden-bits-extra: tinylstm.search has no parameter hidden_bits_extra",
        "`tinylstm check` --min-agreement: default 99.0 on the CLI, 98.0 in the API",
        "`tinylstm build` --optimize: tinylstm.build has no parameter optimize",
        "`tinylstm frobnicate` has no function tinylstm.frobnicate",
    ]


def test_the_cli_only_options_have_their_api_side() -> None:
    assert {"progress"} <= set(api_defaults("train")) and "progress" in api_defaults("search")
    for command in ("parity",):
        assert "on_status" in api_defaults(command)
    assert "on_status" in inspect.signature(tinylstm.Stream.predictions).parameters
    # every entry of the mapping names a real CLI option: stale entries go
    subs = subcommands(build_parser())
    for command, dest in (*NOT_BY_NAME, *DEFAULT_FROM_API):
        assert dest in {a.dest for a in options(subs[command])}, (command, dest)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_function_says_which_command_it_is(command: str) -> None:
    doc = getattr(tinylstm, command).__doc__ or ""
    assert doc.startswith(f"``tinylstm {command}``"), doc[:60]
