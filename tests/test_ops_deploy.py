"""The deployment files (Dockerfile, compose.yaml, deploy/warden.service).

There is no Docker engine here: the image is not built; the Dockerfile, compose file and systemd
unit are parsed and their command lines are run the way the container / systemd would run them
(same argv, same environment), as real `warden` child processes.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from bot.cli import build_parser
from tests.conftest import ROOT, child_env, warden_cmd
from tests.rig_ops import warden


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            env.update(dict(shlex.split(part)[0].split("=", 1) for part in rest.split()))
    return env


def parse_compose(text: str) -> dict[str, Any]:
    """Enough YAML for compose.yaml (block mappings, block lists of scalars, flow lists): no
    YAML library is a dependency of Warden."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, Any]] = [(-1, root)]
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if line.startswith("- "):
            parent.append(_scalar(line[2:]))
            continue
        key, _, value = line.partition(":")
        if value.strip():
            parent[key] = _scalar(value.strip())
        else:
            # a block follows: a list if the next line starts with "- " (decided lazily)
            child: Any = _Block()
            parent[key] = child
            stack.append((indent, child))
    return _resolve(root)


class _Block(dict[str, Any]):
    def append(self, item: Any) -> None:
        self.setdefault("__list__", []).append(item)


def _resolve(node: Any) -> Any:
    if isinstance(node, dict):
        if "__list__" in node:
            return [_resolve(v) for v in node["__list__"]]
        return {k: _resolve(v) for k, v in node.items()}
    return node


def _scalar(text: str) -> Any:
    if text.startswith("["):
        return json.loads(text)
    return text.strip('"')


def systemd_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "warden.service")
    return unit


def systemd_env(unit: configparser.ConfigParser) -> dict[str, str]:
    # configparser keeps the last of repeated keys: read every Environment= line directly
    text = (ROOT / "deploy" / "warden.service").read_text()
    env: dict[str, str] = {}
    for line in re.findall(r"^Environment=(.*)$", text, re.MULTILINE):
        for part in shlex.split(line):
            k, _, v = part.partition("=")
            env[k] = v
    return env


def test_dockerfile_essentials() -> None:
    instructions = dockerfile()
    words = [w for w, _ in instructions]
    args = {w: a for w, a in instructions}  # the last of each
    assert instructions[0] == ("FROM", "python:3.11-slim")
    user = args["USER"]
    assert user not in ("root", "0") and words.index("USER") > max(
        i for i, (w, a) in enumerate(instructions) if w == "RUN"
    )  # nothing runs as root after the switch, and the agent does not run as root
    assert "/data" in json.loads(args["VOLUME"])
    env = docker_env()
    assert env["WARDEN_DB"].startswith("/data/") and env["WARDEN_CONFIG"] == "/config/warden.toml"
    assert args["WORKDIR"] == "/data"
    # the HEALTHCHECK is a real warden command, exit 1 when unhealthy (Docker reserves 2)
    check = args["HEALTHCHECK"]
    first, _, fallback = check.split(" CMD ", 1)[1].partition("||")
    assert shlex.split(first)[0] == "warden" and fallback.strip() == "exit 1"
    assert build_parser().parse_args(healthcheck_argv()).command == "health"
    assert "--start-period" in check
    entry = json.loads(args["ENTRYPOINT"]) + json.loads(args["CMD"])
    assert entry == ["warden", "run"]
    # secrets and state never enter the image
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "*.db", ".venv", ".git"} <= set(ignored)
    assert not any(w == "COPY" and (".env" in a.split() or ". ." in a) for w, a in instructions)


def test_compose_essentials() -> None:
    compose = parse_compose((ROOT / "compose.yaml").read_text())
    service = compose["services"]["warden"]
    assert service["restart"] == "unless-stopped"
    assert service["env_file"] == ["./config/.env"]
    assert service["environment"]["WARDEN_CONFIG"] == docker_env()["WARDEN_CONFIG"]
    assert service["environment"]["WARDEN_DB"] == docker_env()["WARDEN_DB"]
    volumes = service["volumes"]
    assert any(v.split(":")[1] == "/data" for v in volumes)
    assert "./config/warden.toml:/config/warden.toml:ro" in volumes
    assert "warden-data" in compose["volumes"]
    assert build_parser().parse_args(service["command"]).command == "run"


def test_systemd_unit_essentials() -> None:
    unit = systemd_unit()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("root", "0")
    assert service["EnvironmentFile"].endswith(".env")
    assert service["WorkingDirectory"].startswith("/")
    assert service["StandardOutput"] == "journal"
    assert "2" in service["RestartPreventExitStatus"].split()  # configuration errors
    exe, *argv = shlex.split(service["ExecStart"])
    assert Path(exe).name == "warden"
    assert build_parser().parse_args(argv).command == "run"
    env = systemd_env(unit)
    assert env["WARDEN_DB"].startswith(service["WorkingDirectory"])
    assert "WARDEN_CONFIG" in env


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # the real ExecStart path does not exist on this machine: point it at an executable
    text = (ROOT / "deploy" / "warden.service").read_text()
    exe = shutil.which("true") or "/bin/true"
    unit = tmp_path / "warden.service"
    unit.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={exe}", text, flags=re.MULTILINE))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def healthcheck_argv() -> list[str]:
    """The Dockerfile HEALTHCHECK's warden arguments (before its `|| exit 1`)."""
    command = dict(dockerfile())["HEALTHCHECK"].split(" CMD ", 1)[1]
    return shlex.split(command.partition("||")[0])[1:]


def _wait_health(cwd: Path, env: dict[str, str], want: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = warden(cwd, *healthcheck_argv(), env=env)
        if out.returncode == want:
            return out.stdout
        assert time.monotonic() < deadline, out.stdout + out.stderr
        time.sleep(0.3)


def _remap(value: str, roots: dict[str, Path]) -> str:
    for prefix, local in roots.items():
        if value.startswith(prefix):
            return str(local) + value[len(prefix) :]
    return value


def _started_agent_goes_green(
    workdir: Path, config_dir: Path, env: dict[str, str], argv: list[str]
) -> None:
    """`warden init` in the config folder, then the agent exactly as deployed, then health."""
    init = warden(workdir, "init", "--dir", str(config_dir), "--yes", env=env)
    assert init.returncode == 0, init.stderr
    # compose's env_file / systemd's EnvironmentFile put the .env into the environment
    env = env | {k: v for k, v in dotenv_values(config_dir / ".env").items() if v}
    proc = subprocess.Popen(
        warden_cmd(*argv),
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        green = _wait_health(workdir, env, 0)
        assert "paper:main: watchdog" in green
        # an online backup while it runs; a restore is refused
        assert warden(workdir, "backup", "snap.db", env=env).returncode == 0
        restore = warden(workdir, "restore", "snap.db", "--yes", env=env)
        assert restore.returncode == 75 and "agent" in restore.stderr
        proc.send_signal(signal.SIGTERM)  # docker stop / systemctl stop
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert "no agent running" in _wait_health(workdir, env, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_the_container_command_starts_and_goes_healthy(tmp_path: Path) -> None:
    roots = {"/data": tmp_path / "data", "/config": tmp_path / "config"}
    for p in roots.values():
        p.mkdir()
    env = child_env(
        **{k: _remap(v, roots) for k, v in docker_env().items() if k.startswith("WARDEN")}
    )
    args = dict(dockerfile())
    argv = json.loads(args["ENTRYPOINT"])[1:] + json.loads(args["CMD"])
    _started_agent_goes_green(Path(_remap(args["WORKDIR"], roots)), roots["/config"], env, argv)
    assert (roots["/data"] / "warden.db").exists()  # the database is on the volume


@pytest.mark.slow
def test_the_systemd_command_starts_and_goes_healthy(tmp_path: Path) -> None:
    unit = systemd_unit()["Service"]
    roots = {"/var/lib/warden": tmp_path / "var", "/etc/warden": tmp_path / "etc"}
    for p in roots.values():
        p.mkdir()
    env = child_env(**{k: _remap(v, roots) for k, v in systemd_env(systemd_unit()).items()})
    _exe, *argv = shlex.split(unit["ExecStart"])
    workdir = Path(_remap(unit["WorkingDirectory"], roots))
    env_file = Path(_remap(unit["EnvironmentFile"], roots))
    assert env_file.parent == roots["/etc/warden"]  # where init writes it
    _started_agent_goes_green(workdir, env_file.parent, env, argv)
    assert (workdir / "warden.db").exists()
