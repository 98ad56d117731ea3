"""Build the book with a local MathJax and screenshot every page at 1280 px, reporting what overflows its column.

Not a test: a tool for the "nothing clipped at 1280 px" check of book/conventions.md. Needs Chromium and Debian's
MathJax 2 (``apt-get install chromium libjs-mathjax``)::

    python -m tests.book.screenshots build     # stage + jupyter-book build -W (executes stale pages: slow)
    python -m tests.book.screenshots rebuild   # the same, reusing the last build's outputs of unchanged code
    python -m tests.book.screenshots shoot     # _build/screenshots/<page>-<n>.png tiles and overflow.json

The build uses the published ``_config.yml`` except for one build-time override written into the staged copy:
``mathjax_path`` points at the local MathJax, so that equations render without a network. ``shoot`` loads each
page in headless Chromium twice: once with a script that lists every element wider than the page's content column
(code cells, equations, tables, figures: what a reader would see clipped or scrolled), and once for a screenshot
1280 px wide, cut into tiles of ``TILE_HEIGHT`` pixels for reading.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.pages import REPO, STAGE, stage_book, toc_pages

HTML = REPO / "_build" / "html"
OUT = REPO / "_build" / "screenshots"
MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")
WIDTH, MAX_HEIGHT, TILE_HEIGHT = 1280, 40000, 1800
SIDEBAR = 300  # px: the left navigation column at 1280 px
CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
    "--virtual-time-budget=15000",
]

# Lists elements whose right edge passes their content column or that scroll horizontally, into the DOM.
OVERFLOW_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const right = main.getBoundingClientRect().right + 1;
  const found = [];
  const selector = "pre, table, img, .math, mjx-container, .MathJax_Display, .MathJax, .cell_output, figure, "
    + ".pst-scrollable-table-container, .table-wrapper";
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    const scrolls = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible";
    if (box.right > right || scrolls) {
      found.push({tag: el.tagName.toLowerCase(), cls: el.className.toString().slice(0, 40),
                  right: Math.round(box.right), limit: Math.round(right), scrolls,
                  text: (el.textContent || el.getAttribute("src") || "").trim().slice(0, 80)});
    }
  }
  const out = document.createElement("pre");
  out.id = "overflow-report";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, found});
  document.body.appendChild(out);
}, 4000));
</script>"""


def _chromium(*arguments: str, timeout: float = 300) -> str:
    """Run headless Chromium with a fresh profile in its own process group (killed whole on a timeout); stdout."""
    import os
    import signal
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [*CHROMIUM, f"--user-data-dir={profile}", "--no-first-run", *arguments]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
        return out


def _unmerged(outputs: list) -> list:
    """Outputs as the kernel wrote them: myst-nb's ``nb_merge_streams`` appends a stream output to the previous one
    in the notebook it saves but keeps it, so reusing that notebook would print the stream twice."""
    kept = []
    for output in outputs:
        previous = kept[-1] if kept else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
            and previous.get("text", "").endswith(output.get("text", ""))
        ):
            previous["text"] = previous["text"][: len(previous["text"]) - len(output["text"])]
            if not previous["text"]:
                kept.pop()
        kept.append(output)
    return kept


def _reuse_executed(plan: dict[str, str], config: dict) -> list[str]:
    """Stage, for each page the build would execute, the outputs of the previous build's execution
    (``_build/jupyter_execute``) under the page's current text, where the page's code cells are unchanged; returns
    the pages reused. Lets a layout fix be checked without executing every page again."""
    import jupytext
    import nbformat

    reused = []
    for page, how in plan.items():
        executed = REPO / "_build" / "jupyter_execute" / Path(page).with_suffix(".ipynb")
        if how != "executed" or not executed.is_file():
            continue
        current = jupytext.read(REPO / page)
        previous = nbformat.read(executed, as_version=4)
        code = [c for c in current.cells if c.cell_type == "code"]
        old = [c for c in previous.cells if c.cell_type == "code"]
        # the first (install) cell prints nothing off Colab: a change to it does not change the outputs
        if [c.source for c in code[1:]] != [c.source for c in old[1:]]:
            continue
        for cell, run in zip(code, old):
            cell.outputs, cell.execution_count = _unmerged(run.outputs), run.execution_count
        twin = Path(page).with_suffix(".ipynb").as_posix()
        (STAGE / page).unlink()
        nbformat.write(current, STAGE / twin)
        config["exclude_patterns"] = [p for p in config["exclude_patterns"] if p != twin]
        reused.append(page)
    return reused


def build(reuse: bool = False) -> int:
    plan = stage_book()
    config_path = STAGE / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["mathjax_path"] = f"file://{MATHJAX}?config=TeX-AMS-MML_HTMLorMML"
    # MathJax 2 reads its own classes: myst-nb marks each page mathjax_ignore and its math "math"
    sphinx_config["mathjax2_config"] = {
        "tex2jax": {"ignoreClass": "tex2jax_ignore|mathjax_ignore", "processClass": "tex2jax_process|math"}
    }
    if reuse:
        print("reused the previous execution of", ", ".join(_reuse_executed(plan, config)))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(" ".join(f"{page}: {how}" for page, how in plan.items()))
    command = ["jupyter-book", "build", str(STAGE), "--path-output", str(REPO), "-W", "--keep-going"]
    return subprocess.run(command, cwd=REPO).returncode


def _html_pages() -> list[Path]:
    return [HTML / page.relative_to(REPO).with_suffix(".html") for page in toc_pages()]


def _overflow(page: Path, probe_dir: Path) -> dict:
    probe = probe_dir / page.relative_to(HTML)
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", OVERFLOW_PROBE + "</body>"))
    for asset in ("_static", "_images", "_sphinx_design_static"):
        target = probe_dir / asset
        if (HTML / asset).exists() and not target.exists():
            target.symlink_to(HTML / asset)
    dom = _chromium(f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri(), timeout=120)
    report = re.search(r'<pre id="overflow-report">(.*?)</pre>', dom, re.DOTALL)
    if report is None:
        return {"height": MAX_HEIGHT, "found": [{"error": "the overflow probe did not run"}]}
    text = report.group(1)
    for entity, char in (("&quot;", '"'), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return json.loads(text)


def _page_end(image) -> int:
    """The row where the article ends: the last non-white row right of the sidebar before a blank stretch of
    ``TILE_HEIGHT`` rows (below it, only the footer pinned to the bottom of the tall window)."""
    import numpy as np

    article = np.asarray(image.crop((SIDEBAR, 0, WIDTH, image.height)).convert("L"))
    inked = np.flatnonzero((article < 250).any(axis=1))
    if inked.size == 0:
        return image.height
    gaps = np.flatnonzero(np.diff(inked) > TILE_HEIGHT)
    last = inked[gaps[0]] if gaps.size else inked[-1]
    return min(image.height, int(last) + 40)


def _screenshot(page: Path, height: int) -> list[Path]:
    from PIL import Image

    full = OUT / f"{page.stem}-full.png"
    window = min(MAX_HEIGHT, height + 200)  # a window as tall as the page: one shot, no scrolling
    _chromium(f"--window-size={WIDTH},{window}", f"--screenshot={full}", page.as_uri())
    if not full.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {page.name}")
    image = Image.open(full).convert("RGB")
    image = image.crop((0, 0, WIDTH, _page_end(image)))
    tiles = []
    for number, top in enumerate(range(0, image.height, TILE_HEIGHT)):
        tile = OUT / f"{page.stem}-{number:02d}.png"
        image.crop((0, top, WIDTH, min(image.height, top + TILE_HEIGHT))).save(tile)
        tiles.append(tile)
    full.unlink()
    return tiles


def shoot() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    report = {}
    for page in _html_pages():
        if not page.is_file():
            print(f"{page.relative_to(REPO)} is missing: run `python -m tests.book.screenshots build` first")
            return 1
        probe = _overflow(page, OUT / "probe")
        overflow = probe["found"]
        tiles = _screenshot(page, probe["height"])
        report[page.stem] = {"tiles": [t.name for t in tiles], "overflow": overflow}
        print(f"{page.stem}: {len(tiles)} tiles, {len(overflow)} elements wider than the column", flush=True)
        for item in overflow:
            print(f"    {item}")
    (OUT / "overflow.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    commands = {"build": build, "rebuild": lambda: build(reuse=True), "shoot": shoot}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: python -m tests.book.screenshots build | rebuild | shoot")
    sys.exit(commands[sys.argv[1]]())
