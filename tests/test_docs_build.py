"""The docs site builds from a clean copy of the repository as `nbdev_docs` builds it, and every page opens cleanly.

`nbdev_docs` first refreshes nbs/nbdev.yml, builds the module index, remakes nbs/sidebar.yml (unless settings.ini
says `custom_sidebar = True`) and runs `proc_nbs`, which executes every cell a page's `show_doc` output needs
(exports and imports: those cells must stand alone), then hands `_proc/` to Quarto. All of that but Quarto runs here,
in a subprocess, on a copy of the files a fresh clone has (plus new files git does not ignore), with an empty HOME
and cache and no CLDIFF_DATA, as on the docs workflow's runner, which has no Fashion-MNIST.

Quarto itself cannot run here, so each processed page is rendered by nbconvert, with the scripts Quarto would add
and no others (require.js and the widget manager where a notebook saved widget state; no MathJax, which Quarto
brings itself), into a folder that holds only what Quarto would publish (the processed nbs/). Each page is opened in
headless Chromium at a 760 px window and fails on: an error output (or a traceback printed to stderr), an image that
does not load (a picture outside nbs/ does not exist there), any request to the network at page load (the Colab
badge, a link image, excepted), a JavaScript error, or a trajectory player that does not fit the window. The sidebar
must list every page once, the lessons in reading order and a "Reference" group, and nothing that is not a page.

Chromium missing (apt-get install chromium chromium-driver): the page checks are skipped, the rest runs.
"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from browser import Browser, find_chromium
from conftest import REPO, built_once, clean_env, copy_repo

BADGE = "https://colab.research.google.com/assets/colab-badge.svg"   # every lesson's "Open in Colab" link image
WINDOW = (760, 900)
PAGE_SUFFIXES = (".ipynb", ".qmd", ".md")
REFERENCE = "Reference"
REFERENCE_PAGES = {"00_utils.ipynb", "05a_store.ipynb", "05b_registry.ipynb"}

# What nbdev_docs runs before Quarto (nbdev.quarto._pre_docs without _ensure_quarto, which would install Quarto).
# proc_nbs stops at the first failure and its worker's error loses its cause, so failures are collected, and each
# failed notebook is processed once more in this process to name the error; all are written to argv[1].
PRE_DOCS = r'''
import json, sys
import nbdev.doclinks, nbdev.serve as serve, nbdev.serve_drv
from fastcore.parallel import parallel
from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml

failed = []
def keep_going(f, items, *args, **kwargs):
    results = parallel(f, items, *args, return_exceptions=True, **kwargs)
    failed.extend(item for item, r in zip(items, results) if isinstance(r, BaseException))
    return results

if __name__ == "__main__":
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    serve.parallel = keep_going
    serve.proc_nbs(cfg.nbs_path, n_workers=1)
    failures = {}
    for item in failed:
        try: nbdev.serve_drv.main(item); cause = "processed in a second attempt (a worker crash?)"
        except Exception as e:
            msg, cause = str(e), e.__cause__ or e
            failures[item[0].name] = {"message": msg.split("\n")[0], "source": "\n".join(msg.split("\n")[1:]).strip(),
                                      "error": f"{type(cause).__name__}: {cause}"}
    json.dump(failures, open(sys.argv[1], "w"), indent=1)
'''

# nbconvert's lab template with the scripts a Quarto page would load instead of nbconvert's own: require.js and
# jQuery where a page has an HTML or JavaScript output, the widget manager where it shows a widget (Quarto's
# src/core/jupyter/widgets.ts); no MathJax (Quarto brings it where there is math) and no widget state from metadata
# alone (Quarto ignores it).
TEMPLATE = r'''{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{%- if resources.quarto_js -%}
<script src="https://cdn.jsdelivr.net/npm/requirejs@2.3.6/require.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/jquery@3.5.1/dist/jquery.min.js"></script>
{%- endif -%}
{%- if resources.quarto_widgets -%}
<script src="https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@*/dist/embed-amd.js"></script>
{%- endif -%}
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
'''
RAW_HTML = re.compile(r"^(`{3,})\{=html\}\n(.*)\n\1$", re.S)   # a pandoc raw-HTML block: passed on verbatim


def _as_quarto_sees_it(nb: dict) -> tuple[dict, bool, bool]:
    "The notebook as nbconvert should draw what Quarto makes of it, and whether Quarto adds require.js/jQuery, the widget manager."
    nb = json.loads(json.dumps(nb))
    outputs = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] in ("display_data", "execute_result")]
    js = any({"text/html", "application/javascript"} & set(o.get("data", {})) for o in outputs)
    widgets = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    for o in outputs:
        md = o.get("data", {}).get("text/markdown")
        m = RAW_HTML.match("".join(md) if isinstance(md, list) else md or "")
        if m: o["data"] = {"text/html": m[2]}
    for c in nb["cells"]: c.pop("has_sd", None)   # nbdev's mark on the show_doc cells it adds, not nbformat
    return nb, js, widgets


# What a reader of the page would notice, read in one go after load.
INSPECT = r'''
var broken = Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 160));
var width = document.documentElement.clientWidth, players = [];
document.querySelectorAll(".cldiff-player").forEach(function (p) {
  var frame = p.querySelector("img"), r = frame.getBoundingClientRect(), scrolls = [];
  p.querySelectorAll("*").forEach(function (e) { if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX != "visible") scrolls.push(e.tagName); });
  players.push({id: p.id, right: r.right, width: r.width, window: width, scrolls: scrolls, ready: p.getAttribute("data-ready")});
});
return {broken: broken, players: players};
'''


def _pre_docs(tmp: Path):
    repo = copy_repo(tmp / "repo")
    (tmp / "pre_docs.py").write_text(PRE_DOCS)
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(tmp / "pre_docs.py"), str(tmp / "failures.json")], cwd=repo, capture_output=True,
                       text=True, env=clean_env(tmp / "home", PYTHONPATH=repo), timeout=900)
    (tmp / "run.json").write_text(json.dumps({"returncode": p.returncode, "seconds": time.monotonic() - start,
                                              "output": p.stdout[-3000:] + "\n" + p.stderr[-5000:]}))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "A clean copy after nbdev's pre-Quarto steps (made once per session): (copy, failures by notebook, seconds taken)."
    tmp = built_once(tmp_path_factory, "docs_build", _pre_docs)
    run = json.loads((tmp / "run.json").read_text())
    assert run["returncode"] == 0, f"nbdev's docs processing crashed:\n{run['output']}"
    return tmp / "repo", json.loads((tmp / "failures.json").read_text()), run["seconds"]


def _source_cell(repo: Path, nb: str, source: str) -> str:
    "Which cell of nbs/`nb` a failing processed cell is (nbdev numbers the processed notebook, with its own cells added)."
    cells = json.loads((repo / "nbs" / nb).read_text())["cells"]
    body = "\n".join(l for l in source.splitlines() if not l.startswith("#|")).strip()
    m = re.fullmatch(r"show_doc\((\w+)\)", body)
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        if m and c["cell_type"] == "code" and re.search(rf"^(?:def|class) {m[1]}\b|^{m[1]}\s*=", src, re.M):
            return f"source cell {i} (the show_doc nbdev adds after it, for {m[1]})"
        if body and body in src: return f"source cell {i}"
    return "a cell nbdev added"


def test_every_notebook_processes(site):
    "proc_nbs runs every cell nbdev executes for the docs (imports, exports, show_doc) without data or other cells."
    repo, failures, seconds = site
    print(f"nbdev's docs processing of {len(list((repo / '_proc').glob('*.ipynb')))} pages: {seconds:.0f} s")
    if failures: pytest.fail("nbdev's docs processing (proc_nbs) failed; each cell it executes must stand alone:\n" + "\n".join(
        f"- {nb}, {_source_cell(repo, nb, f['source'])}: {f['message']}\n  {f['error']}\n  cell source:\n    "
        + f["source"].replace("\n", "\n    ")
        for nb, f in sorted(failures.items())), pytrace=False)


def _pages(nbs: Path) -> set[str]:
    return {str(p.relative_to(nbs)) for p in nbs.rglob("*") if p.suffix in PAGE_SUFFIXES and p.is_file()
            and not any(part.startswith((".", "_")) for part in p.relative_to(nbs).parts)}


def _flatten(contents, section=None):
    for item in contents:
        if isinstance(item, str): yield section, item
        elif isinstance(item, dict) and "contents" in item: yield from _flatten(item["contents"], item.get("section"))
        elif isinstance(item, dict) and "href" in item: yield section, item["href"]
        else: yield section, repr(item)


def _number(page: str): return re.match(r"(\d+)([a-z]?)_", Path(page).name).groups() if re.match(r"\d+", Path(page).name) else ("-1", "")


def test_sidebar(site):
    "The sidebar nbdev_docs leaves lists every page once, lessons in reading order then a Reference group; nothing else."
    repo, _, _ = site
    nbs = repo / "nbs"
    entries = list(_flatten(yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]))
    listed = [e for _, e in entries]
    not_pages = [e for e in listed if not e.endswith(PAGE_SUFFIXES) or not (nbs / e).is_file()]
    assert not not_pages, f"the sidebar lists things that are not pages (config files, fixtures, missing files): {not_pages}"
    twice = sorted({e for e in listed if listed.count(e) > 1})
    assert not twice, f"the sidebar lists these pages more than once: {twice}"
    missing = sorted(_pages(nbs) - set(listed))
    assert not missing, f"these pages are missing from the sidebar (nbs/sidebar.yml): {missing}"
    lessons = [e for s, e in entries if s is None]
    in_order = lessons[:1] == ["index.ipynb"] and lessons[1:] == sorted(lessons[1:], key=_number)
    assert in_order, f"the lessons should come in reading order, index first: {lessons}"
    reference = {e for s, e in entries if s == REFERENCE}
    assert REFERENCE_PAGES <= reference, f"the {REFERENCE!r} group should hold {sorted(REFERENCE_PAGES)}; it holds {sorted(reference)}"
    assert {s for s, _ in entries} <= {None, REFERENCE}, f"unexpected sidebar sections: {sorted({s for s, _ in entries} - {None, REFERENCE}, key=str)}"


def test_nbdev_yml_is_current(site):
    "nbs/nbdev.yml as committed is what nbdev_docs writes from settings.ini (so the site's title and URLs are the ones shown)."
    repo, _, _ = site
    assert (REPO / "nbs" / "nbdev.yml").read_text() == (repo / "nbs" / "nbdev.yml").read_text(), \
        "nbs/nbdev.yml differs from what nbdev_docs writes from settings.ini: run `python -c 'from nbdev.quarto import refresh_quarto_yml as r; r()'`"


def _outside(page: Path, root: Path, ref: str) -> bool:
    "Does a relative link `ref` on `page` point outside the site's folder `root`?"
    if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I) or ref.startswith(("#", "/")): return False
    return not (page.parent / ref.split("#")[0].split("?")[0]).resolve().is_relative_to(root.resolve())


def _cell_problems(nb: dict, source: dict, page: Path, root: Path) -> list[str]:
    "Error outputs, tracebacks on stderr and pictures outside the site, named by the source notebook's cell number."
    where = {c.get("id"): i for i, c in enumerate(source["cells"])}
    out = []
    for c in nb["cells"]:
        cell = f"cell {where[c['id']]}" if c.get("id") in where else "a cell nbdev added"
        for o in c.get("outputs", []):
            if o["output_type"] == "error":
                out.append(f"{cell}: error output {o.get('ename')}: {o.get('evalue', '')[:200]}")
            text = "".join(o.get("text", "")) if o.get("name") == "stderr" else ""
            if re.search(r"Traceback|Error\b|Exception\b", text):
                out.append(f"{cell}: stderr shows an error: {text.strip()[-300:]}")
        if c["cell_type"] == "markdown":
            src = "".join(c["source"])
            for ref in re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", src) + re.findall(r"<img[^>]*\bsrc=[\"']([^\"']+)", src):
                if _outside(page, root, ref):
                    out.append(f"{cell}: the picture {ref!r} is outside nbs/ (Quarto does not publish it): put it in nbs/")
    return out


def test_pages_in_browser(site, tmp_path):
    "Every processed page, rendered to HTML and opened in Chromium: no errors, every image loads, nothing fetched, players fit."
    chromium, chromedriver = find_chromium()
    if not chromium or not chromedriver:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    import nbconvert, nbformat
    repo, _, _ = site
    proc, root = repo / "_proc", tmp_path / "site"
    # what Quarto would publish: the processed nbs/ folder (pictures beside the pages included), each page as HTML
    for f in proc.rglob("*"):
        if f.is_file() and f.suffix != ".ipynb":
            (root / f.relative_to(proc)).parent.mkdir(parents=True, exist_ok=True)
            (root / f.relative_to(proc)).write_bytes(f.read_bytes())
    (tmp_path / "site.html.j2").write_text(TEMPLATE)
    exporter = nbconvert.HTMLExporter(template_file=str(tmp_path / "site.html.j2"))
    start = time.monotonic()
    problems, pages = {}, sorted(proc.rglob("*.ipynb"))
    assert pages, f"nbdev's processing left no pages in {proc}"
    for nb_path in pages:
        rel = nb_path.relative_to(proc)
        html = root / rel.with_suffix(".html")
        html.parent.mkdir(parents=True, exist_ok=True)
        nb = json.loads(nb_path.read_text())
        seen, js, widgets = _as_quarto_sees_it(nb)
        body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(seen), as_version=4),
                                              {"metadata": {"path": str(nb_path.parent)}, "quarto_js": js, "quarto_widgets": widgets})
        html.write_text(body, encoding="utf-8")
        source = json.loads((repo / "nbs" / rel).read_text())
        problems[str(rel)] = _cell_problems(nb, source, html, root)
        saved = source.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        if saved.get("state"):
            problems[str(rel)].append(f"nbs/{rel} saves the state of {len(saved['state'])} widgets (metadata.widgets), which "
                                      "nbconvert's pages load the widget manager from a CDN for: execute it with "
                                      "--ExecutePreprocessor.store_widget_state=False or drop metadata.widgets")
    with Browser(chromium, chromedriver, window=WINDOW, logs=True) as b:
        b.get("about:blank"); b.log("browser"); b.requests()
        for nb_path in pages:
            rel = str(nb_path.relative_to(proc))
            page = root / Path(rel).with_suffix(".html")
            b.get(page.as_uri())
            try: b.wait(lambda: all(p["ready"] for p in b.run(INSPECT)["players"]), timeout=5, what="the players' scripts")
            except TimeoutError: pass   # reported below, with the rest
            seen = b.run(INSPECT)
            fetched = [u for u in b.requests() if not u.startswith(("file:", "data:", "about:", "blob:", "chrome:")) and u != BADGE]
            console = [e["message"][:300] for e in b.log("browser")
                       if e["level"] == "SEVERE" and BADGE not in e["message"] and not any(u in e["message"] for u in fetched)]
            mine = problems[rel]
            mine += [f"an image does not load: {src}" for src in seen["broken"] if src != BADGE]
            mine += [f"a request to the network at page load: {u}" for u in fetched]
            mine += [f"the browser reports: {m}" for m in console]
            for p in seen["players"]:
                if not p["ready"]: mine.append(f"the player {p['id']} did not start (its script did not run)")
                if p["right"] > p["window"] + 0.5 or p["scrolls"]:
                    mine.append(f"the player {p['id']} does not fit a {WINDOW[0]} px window: its frame ends at "
                                f"{p['right']:.0f} px of {p['window']} px" + (f", {p['scrolls']} scroll" if p["scrolls"] else ""))
            b.get("about:blank"); b.log("browser"); b.requests()
    print(f"{len(pages)} pages rendered and opened in {time.monotonic() - start:.0f} s")
    bad = {k: v for k, v in problems.items() if v}
    if bad: pytest.fail("pages a reader of the docs site would find broken:\n" + "\n".join(
        f"- {page}:\n    " + "\n    ".join(v) for page, v in sorted(bad.items())), pytrace=False)
