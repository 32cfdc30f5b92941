import errno
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tables_without_clock
from skgradunc import CNNClassifier, cli

# on the CPU: byte-for-byte equal runs are a CPU property (cuDNN kernels are not deterministic)
TINY = ["--runs", "1", "--epochs", "1", "--ood-size", "30", "--device", "cpu"]


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    """``skgradunc`` run as a user would, its output going to a pipe, under umask 022."""
    out = tmp_path_factory.mktemp("piped")
    env = {k: v for k, v in os.environ.items() if k != cli.DEBUG_VARIABLE}
    done = subprocess.run([sys.executable, "-m", "skgradunc", *TINY, "--out", str(out)],
                          capture_output=True, text=True, umask=0o022, env=env)
    return done, out


def test_bare_command_runs_the_reproduction_on_the_embedded_default(capsys, tmp_path, piped):
    assert cli.main([*TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reproduce: digits, 1797 in-distribution images" in out
    assert "done in" in out and (tmp_path / "figure2.png").is_file()
    # the same settings in another process write the same tables, byte for byte (but for
    # the clock's: each detector's cost)
    assert tables_without_clock(tmp_path / "tables.json") == \
        tables_without_clock(piped[1] / "tables.json")


def test_output_to_a_pipe_is_a_few_plain_lines(piped):
    done, _ = piped
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "\x1b" not in output                        # no ANSI codes
    assert len(output.splitlines()) <= 15, output      # log lines, no progress-bar refreshes
    assert "run 1: accuracy" in done.stdout and "done in" in done.stdout


def test_result_files_respect_the_umask(piped):
    _, out = piped
    files = ["tables.md", "tables.csv", "tables.json", "config.json", "figure2.png",
             "runs/run-01/features.npz", "runs/run-01/net.pt"]
    modes = {name: oct(stat.S_IMODE((out / name).stat().st_mode)) for name in files}
    assert modes == {name: oct(0o644) for name in files}


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
    assert "\x1b" not in out                  # skorch's colours only on a terminal


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


def _one_line_error(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skgradunc: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize("arguments, message", [
    (["reproduce", "--epochs", "0"], "epochs must be a positive integer"),
    (["reproduce", "--epochs", "-1"], "epochs must be a positive integer"),
    (["reproduce", "--lr", "0"], "lr must be a positive finite number"),
    (["reproduce", "--lr", "nan"], "lr must be a positive finite number"),
    (["reproduce", "--ood-size", "-5"], "ood_size must be a positive integer, got -5"),
    (["reproduce", "--seed", "-1"], "seed must be an integer from 0"),
    (["reproduce", "--device", "gpu7"], "unknown device 'gpu7'"),
    (["train", "--epochs", "0"], "epochs must be a positive integer"),
    (["train", "--lr", "-1"], "lr must be a positive finite number"),
    (["train", "--lr", "inf"], "lr must be a positive finite number"),
    (["train", "--batch-size", "0"], "batch_size must be a positive integer"),
    (["train", "--test-size", "1.5"], "test_size must be a fraction between 0 and 1"),
    (["train", "--test-size", "0"], "test_size must be a fraction between 0 and 1"),
    (["train", "--retries", "-1"], "retries must be a non-negative integer"),
    (["train", "--seed", "-1"], "seed must be an integer from 0"),
])
def test_invalid_values_are_one_line_errors_with_status_2(capsys, tmp_path, arguments, message):
    command, *values = arguments
    common = ([*TINY, "--out", str(tmp_path / "out")] if command == "reproduce"
              else ["--quiet"])
    assert cli.main([command, *common, *values]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_failure_while_running_is_a_one_line_error_with_status_1(capsys):
    assert cli.main(["train", "--epochs", "1", "--lr", "1e9", "--retries", "0", "--quiet"]) == 1
    assert "all 1 training attempts diverged" in _one_line_error(capsys)


def test_a_corrupt_cache_file_is_a_one_line_error(capsys, tmp_path):
    run = tmp_path / "runs" / "run-01"
    run.mkdir(parents=True)
    (run / "features.npz").write_bytes(b"garbage")
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path)]) == 1
    line = _one_line_error(capsys)
    assert "features.npz" in line and "delete it" in line


def test_debug_shows_the_traceback(monkeypatch):
    with pytest.raises(ValueError, match="epochs must be"):
        cli.main(["train", "--epochs", "0", "--debug"])
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    with pytest.raises(ValueError, match="epochs must be"):
        cli.main(["train", "--epochs", "0"])


def _interrupt_training(monkeypatch):
    """Ctrl-C in the first epoch; skorch itself catches KeyboardInterrupt and stops."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(CNNClassifier, "on_epoch_end", interrupt)


def test_ctrl_c_in_reproduce_says_how_to_resume(capsys, tmp_path, monkeypatch):
    _interrupt_training(monkeypatch)
    assert cli.main(["reproduce", "--runs", "1", "--epochs", "2", "--ood-size", "30",
                     "--out", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert "interrupted — run the same command again to resume" in captured.err
    assert "Traceback" not in captured.err
    assert not list(tmp_path.rglob("net.*"))   # a half-trained network is never cached


def test_ctrl_c_in_train(capsys, monkeypatch):
    _interrupt_training(monkeypatch)
    assert cli.main(["train", "--epochs", "2", "--quiet"]) == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and "test accuracy" not in captured.out


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_help_shows_every_default(capsys, command):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    options = text[text.index("options:"):]
    blocks = re.split(r"\n  (?=-)", options)[1:]      # one block per option
    assert len(blocks) >= 9
    for block in blocks:
        if not block.startswith("-h, --help"):
            assert "default" in block, block


# issue 25: options refused before any work, and disk errors that name the file

@pytest.mark.parametrize("options, message", [
    (["--root", "/nonexistent"], "--root is not used by the embedded digits data set"),
    (["--data", "mnist"], "--data mnist needs --root"),
    (["--data", "emnist"], "--data emnist needs --root"),
    (["--data", "mnist", "--root", "/nonexistent"], "--root '/nonexistent' does not exist"),
    (["--data", "emnist", "--root", "/nonexistent"], "--root '/nonexistent' does not exist"),
])
def test_root_is_an_option_error(capsys, tmp_path, options, message):
    assert cli.main(["reproduce", *TINY, *options, "--out", str(tmp_path / "out")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_the_uqgan_protocol_without_root_is_an_option_error(capsys, tmp_path):
    assert cli.main(["reproduce", "--protocol", "uqgan", "--runs", "1",
                     "--out", str(tmp_path / "out")]) == 2
    assert "--protocol uqgan needs --root" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_root_that_is_a_file_is_named(capsys, tmp_path):
    (tmp_path / "data").write_text("")
    assert cli.main(["reproduce", "--protocol", "uqgan", "--root", str(tmp_path / "data"),
                     "--out", str(tmp_path / "out")]) == 2
    assert f"--root '{tmp_path / 'data'}' is not a folder" in _one_line_error(capsys)


@pytest.mark.parametrize("where", ["proc", "under a file", "a file"])
def test_an_output_folder_that_cannot_be_created_is_named(capsys, tmp_path, monkeypatch, where):
    (tmp_path / "a-file").write_text("")
    out = {"proc": "/proc/x", "under a file": str(tmp_path / "a-file" / "out"),
           "a file": str(tmp_path / "a-file")}[where]
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc")
    from skgradunc.experiments.paper import protocol
    monkeypatch.setattr(protocol, "load_experiment_data", lambda *a, **k: pytest.fail("ran"))
    assert cli.main(["reproduce", *TINY, "--out", out]) == 2
    assert f"cannot create the output folder {out}: " in _one_line_error(capsys)


def _no_space(target_name):
    """os.replace that fails, as on a full disk, when it would write ``target_name``."""
    real = os.replace

    def replace(source, target, *args, **kwargs):
        if os.path.basename(target) == target_name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(source, target, *args, **kwargs)
    return replace


@pytest.mark.parametrize("name", ["tables.md", "runs/run-01/features.npz",
                                  "runs/run-01/net.pt"])
def test_a_full_disk_is_a_one_line_error_naming_the_file(capsys, tmp_path, monkeypatch, piped,
                                                         name):
    """The file being written and what failed, exit status 1, and no half-written file:
    a results file keeps what it held, a cache file stays absent."""
    out = shutil.copytree(piped[1], tmp_path / "out")
    path = out / name
    if name.endswith("features.npz"):
        path.unlink()
    elif name.endswith("net.pt"):
        shutil.rmtree(path.parent)
    before = path.read_bytes() if path.exists() else None
    monkeypatch.setattr(os, "replace", _no_space(path.name))
    assert cli.main(["reproduce", *TINY, "--out", str(out)]) == 1
    assert _one_line_error(capsys) == (f"skgradunc: error: cannot write {path}: No space left "
                                       f"on device")
    assert (path.read_bytes() if path.exists() else None) == before
    assert not list(out.rglob(".*"))
