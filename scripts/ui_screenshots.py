"""Screenshots of the MLflow UI for the demo job, taken with headless Chromium.

Runs the demo job (``python -m hubselect main --experiment hubselect``) into a fresh SQLite store
in a temporary folder (or into ``--store``), starts ``mlflow server`` on that store on a free
local port, and captures full-page PNGs of:

1. ``1_experiment_runs.png``: the experiment's run list;
2. ``2_main_run_overview.png``: the ``main`` run's overview (metrics, params, tags, datasets,
   registered models);
3. ``3_main_run_artifacts.png``: its artifacts tab, with a table artifact selected if there is one;
4. ``4_model_version.png``: the registered model version the job made.

This is a documentation tool, not a test, and not a project dependency. It needs Playwright
(``pip install playwright``) and a Chromium (``apt-get install -y chromium``; ``--chromium``
names another binary). Usage, from the repository root::

    python scripts/ui_screenshots.py                # run the demo job, then shoot
    python scripts/ui_screenshots.py --store /tmp/x/mlflow.db --skip-job

The server is stopped on exit, also on error. See ``docs/screenshots/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

EXPERIMENT = "hubselect"
TABLE_SUFFIXES = (".json", ".csv", ".parquet", ".md", ".txt")
METRIC_COLUMNS = 4  # metric columns shown in the run list: headline ones first, time_* ones last
HEADLINE_WORDS = ("accuracy", "gain", "saving")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default=None,
                   help="SQLite tracking store: a sqlite:/// URI, an mlflow.db file or its folder "
                        "(default: a new temporary folder)")
    p.add_argument("--out", default="docs/screenshots", help="folder for the PNG files (default: docs/screenshots)")
    p.add_argument("--skip-job", action="store_true",
                   help="do not run the demo job; shoot what --store already holds")
    p.add_argument("--experiment", default=EXPERIMENT, help="experiment to show (default: hubselect)")
    p.add_argument("--artifact", default=None,
                   help="artifact of the main run to open on the artifacts tab (default: its first "
                        "mlflow.log_table table, else its first table-like file)")
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument("--chromium", default=None,
                   help="Chromium binary (default: chromium or chromium-browser on PATH, else "
                        "Playwright's own browser)")
    p.add_argument("--width", type=int, default=1400, help="viewport width in pixels (default: 1400)")
    p.add_argument("--height", type=int, default=1000, help="minimum viewport height in pixels (default: 1000)")
    p.add_argument("--max-height", type=int, default=6000, help="cap on the full-page height in pixels (default: 6000)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the page renders (default: 3)")
    args = p.parse_args(argv)
    if args.skip_job and not args.store:
        p.error("--skip-job needs --store (a store that already holds the demo job's runs)")
    return args


def store_paths(store: str | None) -> tuple[Path, Path]:
    """The store's folder and database file; a new temporary folder when ``store`` is ``None``."""
    if store is None:
        folder = Path(tempfile.mkdtemp(prefix="hubselect-ui-"))
        return folder, folder / "mlflow.db"
    path = Path(store[len("sqlite:///"):] if store.startswith("sqlite:///") else store).absolute()
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        return path, path / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent, path


def run_job(folder: Path, db: Path, experiment: str) -> None:
    """Run the demo job (niced) into ``db``, working in ``folder``; exit with its log on failure."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "HUBSELECT_CACHE_DIR": str(folder / "cache"),
           "HF_HUB_OFFLINE": "1"}
    log = folder / "job.log"
    cmd = ["nice", "-n", "15", sys.executable, "-m", "hubselect", "main", "--experiment", experiment]
    print(f"running the demo job in {folder} (log: {log}) ...", flush=True)
    start = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=folder, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"ui_screenshots: the demo job failed (exit {rc}); last lines of {log}:\n"
                 + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
    print(f"demo job done in {time.perf_counter() - start:.0f} s", flush=True)


def free_port() -> int:
    """A TCP port that is free on localhost now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(folder: Path, db: Path, port: int) -> Iterator[str]:
    """``mlflow server`` on ``db`` (working in ``folder``) until the block ends; yields its URL."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
           "--default-artifact-root", (folder / "mlruns").as_uri(), "--artifacts-destination",
           str(folder / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, folder / "server.log")
        yield url
    finally:
        stop(proc)
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Return once ``url``/health answers 200; exit with the server log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"ui_screenshots: mlflow server at {url} did not come up; last lines of {log}:\n{tail}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def find_targets(db: Path, experiment: str) -> dict[str, Any]:
    """The experiment, the latest top-level ``main`` run, a table artifact and the model version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"ui_screenshots: no experiment '{experiment}' in {db}: run without --skip-job")
    runs = client.search_runs([exp.experiment_id], "attributes.run_name = 'main'",
                              order_by=["attributes.start_time DESC"], max_results=50)
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not runs:
        sys.exit(f"ui_screenshots: no top-level run named 'main' in experiment '{experiment}' of {db}")
    main = runs[0]
    return {"experiment_id": exp.experiment_id, "run": main,
            "artifact": table_artifact(client, main), "version": model_version(client, exp.experiment_id, main)}


def table_artifact(client: Any, run: Any) -> str | None:
    """A table logged with ``mlflow.log_table`` if any, else the first table-like file, else ``None``."""
    logged = json.loads(run.data.tags.get("mlflow.loggedArtifacts", "[]") or "[]")
    tables = [a["path"] for a in logged if a.get("type") == "table"]
    if tables:
        return sorted(tables)[0]
    files: list[str] = []
    stack = [None]
    while stack:
        for info in client.list_artifacts(run.info.run_id, stack.pop()):
            (stack.append(info.path) if info.is_dir else files.append(info.path))
    for suffix in TABLE_SUFFIXES:
        found = sorted(f for f in files if f.endswith(suffix))
        if found:
            return found[0]
    return sorted(files)[0] if files else None


def model_version(client: Any, experiment_id: str, main: Any) -> Any | None:
    """The newest model version made from ``main`` or one of its child runs (else the newest at all)."""
    ids = {main.info.run_id, *(v for k, v in main.data.tags.items() if k.startswith("hubselect."))}
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{main.info.run_id}'", max_results=200)
    ids |= {r.info.run_id for r in children}
    versions = sorted(client.search_model_versions(max_results=1000), key=lambda v: int(v.creation_timestamp or 0),
                      reverse=True)
    return next((v for v in versions if v.run_id in ids), versions[0] if versions else None)


def shots(base: str, t: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(file name, URL, text to wait for, text of a control to click first) for each page."""
    eid, run = t["experiment_id"], t["run"]
    mode = "?workflowType=machine_learning"  # the "Model training" view, not the GenAI one
    run_url = f"{base}/#/experiments/{eid}/runs/{run.info.run_id}"
    art = f"{run_url}/artifacts" + (f"/{t['artifact']}" if t["artifact"] else "")
    expand = '[role="gridcell"]:has-text("main") button[data-component-id*="runnamecellrenderer"]'
    pages = [("1_experiment_runs.png", f"{base}/#/experiments/{eid}/runs{mode}", "main", expand),
             ("2_main_run_overview.png", run_url + mode, "main", 'text="Show more"'),  # whole description
             ("3_main_run_artifacts.png", art + mode, (t["artifact"] or "").rsplit("/", 1)[-1] or "main", None)]
    v = t["version"]
    if v is not None:
        pages.append(("4_model_version.png", f"{base}/#/models/{v.name}/versions/{v.version}{mode}",
                      f"Version {v.version}", None))
    return pages


def chromium_path(given: str | None) -> str | None:
    """The Chromium binary to drive (``None``: Playwright's own download)."""
    if given:
        return given
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_storage(t: dict[str, Any]) -> dict[str, str]:
    """Local storage the UI reads: assistant panel closed, run list columns with the main run's numbers."""
    def rank(key: str) -> tuple[int, str]:
        return (0 if any(w in key for w in HEADLINE_WORDS) else 2 if key.startswith("time_") else 1, key)

    metrics = sorted(t["run"].data.metrics, key=rank)[:METRIC_COLUMNS]
    columns = ["attributes.`Models`", *(f"metrics.`{k}`" for k in metrics)]  # datasets: on the run page
    state_key = f'MLflowLocalStorage-1.1-ExperimentPage-["{t["experiment_id"]}"]-ReactComponentState'
    return {"mlflow.assistant.panelOpen_v1": "false", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
            state_key: json.dumps({"selectedColumns": columns})}


def capture(pages: list[tuple[str, str, str, str | None]], storage: dict[str, str], out: Path,
            args: argparse.Namespace) -> list[Path]:
    """Open each page in headless Chromium, wait for it to render, and save a full-page PNG."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("ui_screenshots: Playwright is missing: pip install playwright (and apt-get install -y chromium)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(args.chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.add_init_script("(s => { for (const [k, v] of Object.entries(s)) localStorage.setItem(k, v); })"
                                 f"({json.dumps(storage)});")
            for name, url, text, click in pages:
                written.append(shoot(page, url, text, click, out / name, args))
        finally:
            browser.close()
    return written


def shoot(page: Any, url: str, text: str, click: str | None, path: Path, args: argparse.Namespace) -> Path:
    """Load ``url``, wait for ``text``, click the CSS selector ``click``, grow the viewport to the content, save."""
    page.set_viewport_size({"width": args.width, "height": args.height})
    page.goto(url, wait_until="load")
    quiet_network(page)
    try:
        page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - still take the picture, so a failure is visible in it
        print(f"warning: '{text}' did not appear on {url}", file=sys.stderr)
    if click:
        try:
            page.locator(click).first.click(timeout=10_000)
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
        except Exception:  # noqa: BLE001 - the page is still worth a picture
            print(f"warning: could not click {click} on {url}", file=sys.stderr)
    time.sleep(args.settle)
    page.evaluate(_UNCAP_PANELS_JS)
    height = page.evaluate(_CONTENT_HEIGHT_JS)
    page.set_viewport_size({"width": args.width, "height": max(args.height, min(int(height), args.max_height))})
    quiet_network(page)
    time.sleep(1.0)
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}  ({url})", flush=True)
    return path


def quiet_network(page: Any, timeout_ms: int = 5_000) -> None:
    """Wait for the network to go quiet, at most ``timeout_ms`` (some MLflow pages poll forever)."""
    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - a page that keeps polling has still rendered
        pass


# Boxes that scroll inside the page (the run page's metrics and params tables, capped at 500 px)
# show all their rows; the page's own scroll area (most of the window) is left alone.
_UNCAP_PANELS_JS = """() => {
  for (const el of document.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    if (!/(auto|scroll)/.test(s.overflowY) || el.scrollHeight <= el.clientHeight + 4
        || el.clientHeight > 0.7 * window.innerHeight) continue;
    el.style.height = 'auto';
    el.style.maxHeight = 'none';
    for (let up = el.parentElement, i = 0; up && i < 3; up = up.parentElement, i++) {
      if (getComputedStyle(up).maxHeight !== 'none') up.style.maxHeight = 'none';
    }
  }
}"""

# The MLflow UI scrolls inside inner panels, so the document is only as tall as the window: the
# full height is the window plus what each scrolling panel hides.
_CONTENT_HEIGHT_JS = """() => {
  let extra = 0;
  for (const el of document.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    if (/(auto|scroll)/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 4 && el.clientHeight > 100) {
      extra = Math.max(extra, el.scrollHeight - el.clientHeight);
    }
  }
  return Math.max(document.documentElement.scrollHeight, window.innerHeight + extra);
}"""


def main(argv: list[str] | None = None) -> int:
    """Run the job (unless ``--skip-job``), serve the store, and capture the pages."""
    args = parse_args(argv)
    start = time.perf_counter()
    folder, db = store_paths(args.store)
    if not args.skip_job:
        run_job(folder, db, args.experiment)
    targets = find_targets(db, args.experiment)
    targets["artifact"] = args.artifact or targets["artifact"]
    port = args.port or free_port()
    with mlflow_server(folder, db, port) as url:
        print(f"mlflow server up at {url}", flush=True)
        written = capture(shots(url, targets), browser_storage(targets), Path(args.out), args)
    print(f"{len(written)} screenshots in {args.out} ({time.perf_counter() - start:.0f} s in all; "
          f"store: {db})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
