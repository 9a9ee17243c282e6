"""``samples`` subcommand, mounted on a throwaway argparse parser as the main CLI does."""

from __future__ import annotations

import argparse

import pytest

from sample_series import cli
from sample_series.catalogue import CASES
from sample_series.phantom import load_truth


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctplan")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


@pytest.mark.parametrize("argv", [["samples"], ["samples", "list"], ["samples", "build"]])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_samples_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["samples"])
    assert exc.value.code == 2


def test_list_shows_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["samples", "list"]) == 0
    out = capsys.readouterr().out
    for name, spec in CASES.items():
        assert name in out and spec.position.value in out
    assert "borderline" in out and "tilted_only" in out


def test_build_writes_case_folders(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["samples", "build", "rib_lateral_small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[1/1] rib_lateral_small" in out
    folder = tmp_path / "rib_lateral_small"
    assert len(list((folder / "dicom").glob("*.dcm"))) == CASES["rib_lateral_small"].small.n_slices
    assert (folder / "labels.npz").is_file()
    assert load_truth(folder).anaesthetic_ml == 1.5


def test_build_rejects_unknown_case(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["samples", "build", "no_such_case", "--out", str(tmp_path)]) == 2
    assert "unknown case" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_unknown_case_name_raises_a_lookup_error() -> None:
    from sample_series.errors import UnknownCase
    from sample_series.phantom import build_case

    with pytest.raises(UnknownCase, match="known cases: rib_lateral_small"):
        build_case("no_such_case")
