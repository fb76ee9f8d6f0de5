"""`make image` tags by content and `make e2e` says first where it runs, or why it cannot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e import conftest as e2e

ROOT = Path(__file__).resolve().parents[2]
IMAGE_SH = ROOT / "hack" / "image.sh"
E2E_PY = ROOT / "hack" / "e2e.py"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git checkout holding the image's inputs and one file that is not one of them."""
    (tmp_path / "hack").mkdir()
    shutil.copy(IMAGE_SH, tmp_path / "hack" / "image.sh")
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        (tmp_path / name).write_text(f"{name}\n")
    for directory in ("services", "operator", "tests"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "code.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def image_sh(repo: Path, *args: str, image: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGE": image}
    return subprocess.run(
        [str(repo / "hack" / "image.sh"), *args], env=env, capture_output=True, text=True
    )


def test_clean_checkout_is_tagged_with_the_commit(repo: Path) -> None:
    assert image_sh(repo, "tag").stdout.strip() == git(repo, "rev-parse", "--short=12", "HEAD")
    (repo / "tests" / "code.py").write_text("x = 2\n")  # not copied into the image
    assert image_sh(repo, "tag").stdout.strip() == git(repo, "rev-parse", "--short=12", "HEAD")


def test_every_uncommitted_change_gets_a_new_dirty_tag(repo: Path) -> None:
    sha = git(repo, "rev-parse", "--short=12", "HEAD")
    (repo / "services" / "code.py").write_text("x = 2\n")
    first = image_sh(repo, "tag").stdout.strip()
    (repo / "services" / "code.py").write_text("x = 3\n")
    second = image_sh(repo, "tag").stdout.strip()
    (repo / "operator" / "new.py").write_text("y = 1\n")  # untracked files count too
    third = image_sh(repo, "tag").stdout.strip()
    assert all(tag.startswith(f"{sha}-dirty-") for tag in (first, second, third))
    assert len({first, second, third}) == 3, "a rebuild after an edit must change the tag"


def test_image_ref_defaults_to_bookstore_and_completes_a_tagless_image(repo: Path) -> None:
    sha = git(repo, "rev-parse", "--short=12", "HEAD")
    assert image_sh(repo, "ref").stdout.strip() == f"bookstore:{sha}"
    assert image_sh(repo, "ref", image="reg.io:5000/team/bookstore").stdout.strip() == (
        f"reg.io:5000/team/bookstore:{sha}"
    )
    assert image_sh(repo, "ref", image="reg.io/bookstore:v1").stdout.strip() == (
        "reg.io/bookstore:v1"
    )


def test_push_refuses_an_image_without_a_registry(repo: Path) -> None:
    pushed = image_sh(repo, "push", image="bookstore:v1")
    assert pushed.returncode != 0
    assert "names no registry" in pushed.stderr


VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T17:27:03Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class VersionHandler(BaseHTTPRequestHandler):
    """Answers /version like a kube-apiserver (all the e2e preflight asks)."""

    def do_GET(self) -> None:
        body = json.dumps(VERSION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), VersionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def kubeconfig(tmp_path: Path, server: str, context: str) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config))
    return path


def make_e2e(
    tmp_path: Path, *args: str, kubeconfig: Path | None = None, image: str = ""
) -> subprocess.CompletedProcess[str]:
    """hack/e2e.py (what `make e2e` runs) with a fake `kind` that lists cluster `demo`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kind").write_text("#!/bin/sh\necho demo\n")
    (bin_dir / "kind").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env |= {
        "HOME": str(tmp_path),
        "KUBECONFIG": str(kubeconfig or tmp_path / "absent"),
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        "IMAGE": image,
    }
    return subprocess.run(
        [sys.executable, str(E2E_PY), *args], env=env, capture_output=True, text=True, cwd=ROOT
    )


def first_line(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr).splitlines()[0]


def test_e2e_without_a_kubeconfig_fails_with_the_reason_first(tmp_path: Path) -> None:
    done = make_e2e(tmp_path)
    assert done.returncode == 2
    assert first_line(done).startswith("e2e: cannot run: no reachable Kubernetes cluster: ")
    assert "no kubeconfig" in first_line(done)


def test_e2e_with_a_cluster_that_does_not_answer_fails_with_the_reason_first(
    tmp_path: Path,
) -> None:
    done = make_e2e(tmp_path, kubeconfig=kubeconfig(tmp_path, "http://127.0.0.1:9", "kind-demo"))
    assert done.returncode == 2
    assert "did not answer /version" in first_line(done)


def test_e2e_on_a_kind_cluster_builds_and_loads_the_content_tagged_image(
    tmp_path: Path, api_server: str
) -> None:
    done = make_e2e(tmp_path, "--plan", kubeconfig=kubeconfig(tmp_path, api_server, "kind-demo"))
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"e2e: kind cluster 'demo' \(context kind-demo\): "
        r"building bookstore:[0-9a-f]{12}(-dirty-[0-9a-f]{8})? and loading it",
        first_line(done),
    ), first_line(done)


def test_e2e_on_another_cluster_needs_an_image_and_says_which(
    tmp_path: Path, api_server: str
) -> None:
    config = kubeconfig(tmp_path, api_server, "prod")
    refused = make_e2e(tmp_path, "--plan", kubeconfig=config)
    assert refused.returncode == 2
    assert "context prod" in first_line(refused)
    assert "make image-push IMAGE=" in first_line(refused)
    taken = make_e2e(tmp_path, "--plan", kubeconfig=config, image="reg.io/bookstore:v1")
    assert taken.returncode == 0, taken.stderr
    assert first_line(taken).startswith(
        f"e2e: cluster {api_server} (context prod), not kind: installing IMAGE=reg.io/bookstore:v1"
    )


def run_e2e_suite(tmp_path: Path, required: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env |= {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "absent")}
    env["BOOKSTORE_E2E_REQUIRED"] = "1" if required else ""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_e2e_suite_fails_without_a_cluster_when_make_e2e_asked_for_it(tmp_path: Path) -> None:
    done = run_e2e_suite(tmp_path, required=True)
    assert done.returncode != 0
    assert "e2e needs a reachable Kubernetes cluster: no kubeconfig" in done.stdout


def test_e2e_suite_skips_without_a_cluster_when_run_by_plain_pytest(tmp_path: Path) -> None:
    done = run_e2e_suite(tmp_path, required=False)
    assert done.returncode == 0, done.stdout
    assert " skipped" in done.stdout
    assert " failed" not in done.stdout


def test_e2e_timeout_outlasts_the_suites_own_longest_waits() -> None:
    longest = e2e.HELM_WAIT_SECONDS + 2 * e2e.READY_WAIT_SECONDS + e2e.GONE_WAIT_SECONDS
    assert longest < e2e.E2E_TEST_TIMEOUT_SECONDS
    assert e2e.E2E_TEST_TIMEOUT_SECONDS > 300  # pyproject's default, shorter than one Ready wait
