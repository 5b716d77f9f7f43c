"""Shared test setup: a local stand-in for the Hugging Face Hub, and a per-test hubselect cache.

``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` once,
when first imported. So :func:`pytest_configure` (which runs before any test module is imported)
starts the stand-in on a free loopback port and points those variables at it and at a
session-only temp folder. The session never talks to the real Hub and never reads or writes
``~/.cache/huggingface`` or ``~/.cache/hubselect``. The fixture repos themselves are only built
(``datasets`` is imported then) when a test asks for :func:`hub_endpoint`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).parent))

from hubstandin import HubStandIn, build_fixture_repos  # noqa: E402

_HUB = pytest.StashKey[HubStandIn]()
_HUB_HOME = pytest.StashKey[Path]()

# Variables that would send tests to the real Hub, to a user's cache, or with a user's token.
_HF_UNSET = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
             "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE")


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="hubselect-tests-hf-"))
    hub = HubStandIn(home / "repos").start()
    config.stash[_HUB], config.stash[_HUB_HOME] = hub, home
    for name in _HF_UNSET:
        os.environ.pop(name, None)
    os.environ.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home / "hf-home"),
        HF_HUB_CACHE=str(home / "hf-home" / "hub"),
        HF_XET_CACHE=str(home / "hf-home" / "xet"),
        HF_DATASETS_CACHE=str(home / "hf-datasets"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    hub = config.stash.get(_HUB, None)
    if hub is not None:
        hub.stop()
    home = config.stash.get(_HUB_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_endpoint(pytestconfig: pytest.Config) -> HubStandIn:
    """The running Hub stand-in, with the fixture repos of ``hubstandin.build_fixture_repos``.

    Has ``.url``, ``.repos`` (id -> repo with ``.refs``/``.revisions``/``.sha_of(label)``),
    ``.log`` / ``.requests_for()`` / ``.bytes_served()`` / ``.clear_log()``, and ``.set_ref()``.
    """
    hub = pytestconfig.stash[_HUB]
    if not hub.repos:
        build_fixture_repos(hub.root)
        hub.reload()
    import datasets.config
    from huggingface_hub import constants

    if constants.ENDPOINT != hub.url or datasets.config.HF_ENDPOINT != hub.url:
        pytest.fail(
            "huggingface_hub/datasets were imported before tests/conftest.py set HF_ENDPOINT "
            f"(they use {constants.ENDPOINT}, not the stand-in at {hub.url}): a plugin or an "
            "earlier conftest imports them too early"
        )
    return hub


@pytest.fixture(autouse=True)
def _hubselect_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every test its own ``HUBSELECT_CACHE_DIR`` (never ``~/.cache/hubselect``)."""
    path = tmp_path / "hubselect-cache"
    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(path))
    return path


@pytest.fixture()
def tracking(tmp_path, monkeypatch):
    """A fresh SQLite tracking store; the working directory is a temp dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(leaked, raising=False)  # mlflow.set_experiment exports the id
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path
