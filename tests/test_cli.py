import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skgradunc import cli


def test_bare_command_runs_the_reproduction_on_the_embedded_default(capsys, tmp_path):
    assert cli.main(["--runs", "1", "--epochs", "1", "--ood-size", "30",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reproduce: digits, 1797 in-distribution images" in out
    assert "done in" in out and (tmp_path / "figure2.png").is_file()


def test_train_command(capsys):
    assert cli.main(["train", "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "training the paper's CNN on 'digits'" in out
    assert "1347 train / 450 test" in out and "lr=0.01" in out
    assert "test accuracy:" in out and "training took" in out


def test_train_prints_the_epoch_table(capsys):
    cli.main(["train", "--epochs", "1", "--test-size", "0.5"])
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_acc" in out  # visible progress
    assert "898 train / 899 test" in out


def test_divergence_is_reported_and_recovered(capsys):
    cli.main(["train", "--epochs", "2", "--lr", "5", "--retries", "3", "--quiet"])
    out = capsys.readouterr().out
    assert "training diverged" in out and "retrying with lr=0.5" in out
    assert "test accuracy:" in out


def test_unknown_data_set_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--data", "imagenet"])
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point_and_version():
    done = subprocess.run([sys.executable, "-m", "skgradunc", "--help"],
                          capture_output=True, text=True, check=True)
    assert "train" in done.stdout and "reproduce" in done.stdout
    done = subprocess.run([sys.executable, "-m", "skgradunc", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("skgradunc ")


def test_console_script_is_installed():
    # pip puts console scripts beside the interpreter (the virtualenv's bin/)
    exe = shutil.which("skgradunc", path=str(Path(sys.executable).parent))
    assert exe is not None, "pip install did not put the 'skgradunc' command on PATH"
    done = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, check=True)
    assert "--epochs" in done.stdout
