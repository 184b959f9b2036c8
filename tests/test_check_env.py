import subprocess
import sys

from unmasked import check_env


def test_all_checks_pass_here():
    checks = check_env.run_checks()
    failed = [str(c) for c in checks if not c.ok]
    assert not failed, failed
    names = {c.name for c in checks}
    assert {"torch", "tiktoken", "tiktoken cl100k_base", "tiktoken o200k_base", "device"} <= names


def test_missing_and_old_packages_fail_with_the_fix():
    missing = check_env.check_package("no_such_package_xyz", "1.0")
    assert not missing.ok and "make setup" in missing.detail and str(missing).startswith("[FAIL]")
    old = check_env.check_package("pytest", "999.0")
    assert not old.ok and "older than 999.0" in old.detail


def test_version_parsing_handles_local_builds():
    assert check_env._version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert check_env._version_tuple("1.0rc1") == (1, 0)


def test_cli_exit_code_and_lines():
    out = subprocess.run(
        [sys.executable, "-m", "unmasked.check_env"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(line.startswith(("[OK]", "[FAIL]")) for line in out.stdout.strip().splitlines())
