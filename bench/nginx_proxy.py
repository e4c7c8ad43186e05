"""The shipped nginx config (deploy/nginx/geo.conf) run by Debian's nginx in a temporary prefix,
in front of a running `geo serve`: for the nginx tests and the tile benchmark.

The config is used as shipped; only its three site values (upstream address, listen address,
cache directory) are replaced, each exactly once, so a test of this proxy is a test of the file
operators install. nginx runs in the foreground with its own prefix, pid file, logs and temp
directories; no system service is involved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from geo.embedded import free_port

REPO = Path(__file__).resolve().parents[1]
GEO_CONF = REPO / "deploy" / "nginx" / "geo.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# nginx started as root runs its workers as this user (Debian's web server account); they must
# be able to enter the prefix and write its temp and cache directories (nginx chowns the ones it
# creates to it).
WORKER_USER = "www-data"
_KEY_LINE = re.compile(rb"\nKEY: ([^\n]*)\n")


def site_config(upstreams: Sequence[str], listen: str, cache_dir: Path) -> str:
    """deploy/nginx/geo.conf with its site values replaced (each must occur exactly once); one
    `server` line per API process in `upstreams`."""
    text = GEO_CONF.read_text()
    servers = "\n    ".join(f"server {upstream};" for upstream in upstreams)
    for shipped, ours in (
        ("server 127.0.0.1:8000;", servers),
        ("listen 80;", f"listen {listen};"),
        ("/var/cache/nginx/geo", str(cache_dir)),
    ):
        if text.count(shipped) != 1:
            raise RuntimeError(f"{GEO_CONF} should hold {shipped!r} exactly once")
        text = text.replace(shipped, ours)
    return text


def main_config(root: Path, site: Path) -> str:
    user = f"user {WORKER_USER};\n" if os.geteuid() == 0 else ""
    temp = root / "temp"
    return f"""{user}worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""


@dataclass
class NginxProxy:
    base: str
    root: Path
    cache_dir: Path
    pid: int  # the master process (its workers are its children)

    def cached_keys(self) -> list[str]:
        """The cache keys of every response nginx has stored (each cache file's `KEY:` line)."""
        keys = []
        for path in self.cache_dir.rglob("*"):
            if path.is_file():
                found = _KEY_LINE.search(path.read_bytes()[:4096])
                if found:
                    keys.append(found.group(1).decode())
        return keys

    def error_log(self) -> str:
        log = self.root / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""


@contextmanager
def nginx_proxy(*upstreams: str) -> Iterator[NginxProxy]:
    """nginx with the shipped config in front of `upstreams` (host:port each), on a free port."""
    root = Path(tempfile.mkdtemp(prefix="geo-nginx-"))
    root.chmod(0o755)  # the workers (another user when we are root) must enter it
    (root / "temp").mkdir(mode=0o755)
    cache_dir = root / "cache"
    port = free_port()
    site = root / "geo.conf"
    site.write_text(site_config(upstreams, f"127.0.0.1:{port}", cache_dir))
    conf = root / "nginx.conf"
    conf.write_text(main_config(root, site))
    check = subprocess.run([NGINX, "-t", "-p", str(root), "-c", str(conf)], capture_output=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr.decode(errors='replace')}")
    proc = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = NginxProxy(f"http://127.0.0.1:{port}", root, cache_dir, proc.pid)
    try:
        _wait(proxy, proc)
        yield proxy
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown of master and workers
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _wait(proxy: NginxProxy, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(proxy.base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nginx did not come up:\n{proxy.error_log()[-3000:]}")
        time.sleep(0.1)
