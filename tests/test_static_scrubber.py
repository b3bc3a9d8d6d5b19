"""The trajectory players in the SAVED nbs/13_viz.ipynb and nbs/14_tutorial_gr_vs_gd.ipynb work on a static page: no kernel, no network.

The notebook (with its outputs, as committed) is converted to HTML by nbconvert without running it, opened in
headless Chromium, and scrubbed as a reader would: the state slider, the task slider, the run selector and Play
must each change the frame shown (the <img> src) and the caption must say what is shown.

Needs Debian's `chromium` and `chromium-driver` (skipped without them). CLDIFF_SCRUBBER_NB points the test at
another notebook (to check that it fails on a broken player); CLDIFF_SCRUBBER_SCREENSHOT=path.png saves a
picture of the player.
"""
import json
import os
import re
from pathlib import Path

import pytest

from browser import KEYS, Browser, find_chromium

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ([Path(os.environ["CLDIFF_SCRUBBER_NB"])] if os.environ.get("CLDIFF_SCRUBBER_NB")
             else [REPO / "nbs" / "13_viz.ipynb", REPO / "nbs" / "14_tutorial_gr_vs_gd.ipynb"])
CAPTION = re.compile(r"^(?P<run>.+), after task (?P<task>\d+) \u2014 state (?P<state>\d+) of (?P<k>\d+): "
                     r"(?:the starting noise, x_t at t=(?P<t0>\d+)|x_t at t=(?P<t>\d+)|the sample, after the last step .*)$")


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def page(request, tmp_path_factory):
    "The saved notebook as an HTML file (nbconvert, no execution) and the player's element id prefix."
    NOTEBOOK = request.param
    chromium, chromedriver = find_chromium()
    if not chromium or not chromedriver:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    nbconvert = pytest.importorskip("nbconvert")
    nb = json.loads(NOTEBOOK.read_text())
    html_outputs = [o["data"]["text/html"] for c in nb["cells"] if c["cell_type"] == "code"
                    for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    players = [h for h in map("".join, html_outputs) if 'class="cldiff-player"' in h]
    assert players, f"{NOTEBOOK.name} holds no saved player output: execute the notebook and save it with its outputs"
    body, _ = nbconvert.HTMLExporter().from_filename(str(NOTEBOOK))   # converts the saved outputs, runs nothing
    path = tmp_path_factory.mktemp("scrubber") / f"{NOTEBOOK.stem}.html"
    path.write_text(body, encoding="utf-8")
    uid = re.search(r'<div id="([^"]+)" class="cldiff-player"', players[0])[1]
    return chromium, chromedriver, path, uid


SNAPSHOT = """var uid = arguments[0], el = function (n) { return document.getElementById(uid + "-" + n); };
return {src: el("frame").src, caption: el("caption").textContent, state: +el("step").value, task: +el("task").value,
        state_readout: el("step-value").textContent, task_readout: el("task-value").textContent, play: el("play").textContent};"""


def test_static_scrubber(page):
    chromium, chromedriver, path, uid = page
    with Browser(chromium, chromedriver) as b:
        b.get(path.as_uri())
        b.wait(lambda: b.run("var r = document.getElementById(arguments[0]); return r && r.getAttribute('data-ready');", uid),
               what="the player's script to run")
        el = {name: b.find(f"#{uid}-{name}") for name in ("run", "task", "step", "play")}
        data = json.loads(b.run("return document.getElementById(arguments[0]).textContent;", f"{uid}-data"))
        options = b.run("return Array.from(document.getElementById(arguments[0]).options).map(o => o.text);", f"{uid}-run")

        def look(what):
            "What the player shows, read in one go; checks that frame, caption and slider readouts agree."
            now = b.run(SNAPSHOT, uid)
            m = CAPTION.match(now["caption"])
            assert m, f"the caption does not say what is shown after {what}: {now['caption']!r}"
            now.update(m.groupdict(), state=int(m["state"]), k=int(m["k"]), task=int(m["task"]), slider=now["state"])
            r = options.index(now["run"]); t = data["tasks"][r].index(now["task"])
            assert now["src"] == "data:image/png;base64," + data["frames"][r][t][now["state"]], \
                f"the frame shown is not the one the caption names after {what}"
            assert now["slider"] == now["state"] and now["state_readout"] == f"{now['state']} of {now['k']}", \
                f"the state slider and the caption number states differently after {what}"
            assert now["task_readout"] == str(now["task"]), f"the task slider and the caption disagree after {what}"
            return now

        def moved(before, what):
            "Wait until the frame shown changes after `what`; the caption must change with it."
            b.wait(lambda: b.run(SNAPSHOT, uid)["src"] != before["src"], what=f"the frame to change after {what}")
            now = look(what)
            assert now["caption"] != before["caption"], f"the caption did not change after {what}"
            return now

        now = look("loading the page")
        k, task0 = now["k"], now["task"]
        assert now["state"] == k, "the page should open on the sample (the last state)"
        assert k >= 2 and task0 >= 1 and len(options) >= 2, "the saved player should hold several runs, tasks and states"

        # the state slider: one state back, then to the starting noise
        b.keys(el["step"], KEYS["left"])
        now = moved(now, "moving the state slider")
        assert (now["state"], now["task"], now["t"] is not None) == (k - 1, task0, True)
        t_last = int(now["t"])
        b.keys(el["step"], KEYS["home"])
        now = moved(now, "moving the state slider to 0")
        assert now["state"] == 0 and now["t0"] is not None and int(now["t0"]) > t_last, "state 0 is the noise, at the first t"

        # the task slider: one task back, same run and state
        run0 = now["run"]
        b.keys(el["task"], KEYS["left"])
        now = moved(now, "moving the task slider")
        assert (now["run"], now["task"], now["state"]) == (run0, task0 - 1, 0)

        # the run selector: the second run, same task and state (a task >= 1, where strategies differ)
        b.click(b.find(f"#{uid}-run option:nth-child(2)"))
        now = moved(now, "choosing another run")
        assert (now["run"], now["task"], now["state"]) == (options[1], task0 - 1, 0)

        # Play: the frame advances through the states on its own, then stops at the sample
        if os.environ.get("CLDIFF_SCRUBBER_SCREENSHOT"):
            Path(os.environ["CLDIFF_SCRUBBER_SCREENSHOT"]).write_bytes(b.screenshot(b.find(f"#{uid}")))
        b.click(el["play"])
        now = moved(now, "pressing Play")
        assert now["state"] >= 1 and now["play"] == "Pause"
        b.wait(lambda: b.run(SNAPSHOT, uid)["play"] == "Play", timeout=k * 2 + 5, what="Play to stop at the last state")
        now = look("playing to the end")
        assert (now["state"], now["run"], now["task"]) == (k, options[1], task0 - 1)
