import subprocess

from tests.conftest import child_env, warden_cmd


def test_status_json_on_builtin_defaults(tmp_path):
    out = subprocess.run(
        warden_cmd("status", "--json"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"leases": []' in out.stdout
    assert (tmp_path / "warden.db").exists()
