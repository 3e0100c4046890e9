"""``python -m hailuo_async.simulator`` as a subprocess: one JSON line, serves, exits 0 on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hailuo_async.cli._parser import build_parser
from hailuo_async.simulator import Progress
from hailuo_async.simulator.__main__ import build_arg_parser, config_from_args, main

REPO = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "hailuo_async.simulator", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_module_prints_urls_serves_and_exits_cleanly(signum: signal.Signals) -> None:
    process = start("--config", '{"seed": 5, "keys": ["sk-cli-key-1"]}')
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"apimart", "toapis", "minimax", "cdn", "stats"}
        assert urls["apimart"].startswith("http://127.0.0.1:")
        assert urls["cdn"].rsplit(":", 1)[1] != urls["apimart"].split(":")[2].split("/")[0]
        api = urlsplit(urls["apimart"])
        connection = HTTPConnection(api.netloc, timeout=5)
        try:
            body = json.dumps({"model": "MiniMax-Hailuo-02", "prompt": "cli"})
            headers = {"Authorization": "Bearer sk-cli-key-1", "Content-Type": "application/json"}
            connection.request("POST", f"{api.path}/v1/videos/generations", body=body, headers=headers)
            assert json.load(connection.getresponse())["data"][0]["task_id"].startswith("task_")
            connection.request("GET", urlsplit(urls["stats"]).path)
            assert json.load(connection.getresponse())["tasks_created"] == 1
        finally:
            connection.close()
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == ""
    assert stderr == ""


def test_arguments_override_the_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    build_arg_parser(parser)
    path = tmp_path / "config.json"
    path.write_text('{"port": 1234, "drift": true}')
    config = config_from_args(parser.parse_args(["--config", str(path), "--cdn-port", "4321"]))
    assert (config.port, config.cdn_port, config.drift, config.host) == (1234, 4321, True, "127.0.0.1")
    config = config_from_args(parser.parse_args(["--host", "127.0.0.2", "--port", "0"]))
    assert (config.host, config.port) == ("127.0.0.2", 0)


def test_drift_and_submit_delay_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    build_arg_parser(parser)
    config = config_from_args(
        parser.parse_args(["--config", '{"drift": true}', "--drift", "toapis_pending, apimart_url_string"])
    )
    assert config.drift == frozenset({"toapis_pending", "apimart_url_string"})
    assert config.drift_shapes() == {"toapis_pending", "apimart_url_string"}
    assert config_from_args(parser.parse_args(["--drift", "all"])).drift is True
    assert config_from_args(parser.parse_args(["--config", '{"drift": true}', "--drift", "none"])).drift is False
    config = config_from_args(parser.parse_args(["--submit-delay", "0.5"]))
    assert (config.submit_delay, config.drift) == (0.5, False)
    for bad in (["--drift", "apimart_url_string,made_up"], ["--submit-delay", "-1"], ["--submit-delay", "inf"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "made_up" in error and "minimax_numeric_file_id" in error


def test_progress_and_queue_fraction_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    build_arg_parser(parser)
    source = '{"progress": {"shape": "steps", "steps": [20, 40]}, "queue_fraction": 0.3}'
    config = config_from_args(parser.parse_args(["--config", source, "--progress", "stall"]))
    assert config.progress == Progress(shape="stall", steps=(20, 40))  # the shape is replaced, the rest kept
    assert config.queue_fraction == 0.3
    config = config_from_args(parser.parse_args(["--progress", "none", "--queue-fraction", "0,0.7"]))
    assert (config.progress, config.queue_fraction) == (Progress(shape="none"), (0.0, 0.7))
    assert config_from_args(parser.parse_args(["--queue-fraction", "0.5"])).queue_fraction == 0.5
    for bad in (
        ["--progress", "wobbly"],
        ["--queue-fraction", "0.7,0.1"],
        ["--queue-fraction", "2"],
        ["--queue-fraction", "a"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    assert "concave" in capsys.readouterr().err  # the choices are listed


def test_hailuo_simulate_takes_the_same_flags() -> None:
    args = build_parser().parse_args(["simulate", "--progress", "convex", "--queue-fraction", "0.1,0.2"])
    config = config_from_args(args)
    assert (config.progress.shape, config.queue_fraction) == ("convex", (0.1, 0.2))


def test_bad_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", '{"failure_rate": 9}'])
    assert exit_info.value.code == 2
    assert "invalid --config" in capsys.readouterr().err


def test_benchmark_smoke(tmp_path: Path) -> None:
    output = tmp_path / "simulator.json"
    completed = subprocess.run(
        [sys.executable, "-W", "error", str(REPO / "benchmarks" / "bench_simulator.py"), "--smoke", "--output", output],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "status requests/s" in completed.stdout
    result = json.loads(output.read_text())
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["simulator_exit_code"] == 0
