"""Login, refresh and logout against a real `growbin dev` process, over TCP, as the app would."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import requests
from conftest import CONFIG_VARS, ROOT, _free_port


def test_login_refresh_logout_against_a_real_dev_server(tmp_path):
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    environment.update(GROWBIN_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    log = tmp_path / "dev.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "knative.cli", "dev", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/api/v1/auth"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

        login = requests.post(f"{base}/login/dev", json={"user": "alice"}, timeout=10)
        assert login.status_code == 200, login.text
        pair = login.json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        me = requests.get(f"{base}/me", headers=bearer, timeout=10)
        assert me.status_code == 200 and me.json() == pair["user"]

        rotated = requests.post(
            f"{base}/refresh", json={"refresh_token": pair["refresh_token"]}, timeout=10
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()
        new_bearer = {"Authorization": f"Bearer {new['access_token']}"}
        assert requests.get(f"{base}/me", headers=new_bearer, timeout=10).status_code == 200

        out = requests.post(f"{base}/logout", headers=new_bearer, timeout=10)
        assert out.status_code == 204
        after = requests.get(f"{base}/me", headers=new_bearer, timeout=10)
        assert after.status_code == 401 and after.json()["error"]["code"] == "TOKEN_REVOKED"
        again = requests.post(
            f"{base}/refresh", json={"refresh_token": new["refresh_token"]}, timeout=10
        )
        assert again.status_code == 401 and again.json()["error"]["code"] == "TOKEN_REVOKED"
    finally:
        server.terminate()
        server.wait(10)
