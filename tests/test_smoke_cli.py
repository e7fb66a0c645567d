import subprocess

import pytest

from tests.conftest import child_env, warden_cmd

pytestmark = pytest.mark.slow  # real OS processes


def test_status_json_on_builtin_defaults(tmp_path):
    # status only reads: before the demo ever ran there is nothing to show, and nothing is made
    out = subprocess.run(
        warden_cmd("status", "--json"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert f"database {tmp_path / 'warden-demo.db'} does not exist" in out.stderr
    assert list(tmp_path.iterdir()) == []
