"""Polyphonic music on the Bach chorales and folk tunes as text (issue 21), every run with its defaults only.

    flock /tmp/cpu.lock python benchmarks/music.py             # the measurement: 11 runs, about 80 minutes
    python benchmarks/music.py --only sigmoid-lstm-600 abc-600  # some rows (the file keeps the others)
    python benchmarks/music.py --quick                          # every kind of row on 2-second budgets; writes nothing

Chorales: ``rnnkit train music --data ../shared/data/music_jsb_chorales --time-budget S`` with only the output
(independent sigmoids, Chung et al.'s setting, or the NADE over the keys) and the cell (LSTM, GRU) given, at a
short and a long budget, then ``rnnkit eval RUN --split test --json``: the NLL in nats per time step over the
77 test chorales (4,725 quarter-note frames), frame accuracy (Bay et al. 2009), precision and recall, beside
Chung et al.'s (2014) test NLL, LSTM 8.67 and GRU 8.54. One more row trains the NADE on the 16th-note,
voice-separated file (its NLL is per 16th note: not comparable with the quarter-note figures).

ABC tunes: ``rnnkit train lm --level char`` on the 1,034 Nottingham tunes (the 14 files joined into one text,
whose last 10% validates), then ``rnnkit sample RUN --abc --tunes 100 --midi OUT`` checks each generated tune
with music21, against 200 of the training tunes checked the same way; the same run sampled at each of
:data:`TEMPERATURES` is the measurement ``--abc``'s default temperature comes from.

Writes benchmarks/results/music-cpuN.{md,json}; a run of some rows (``--only``) replaces those rows only.
Run it alone on a quiet machine: the runs train for a fixed time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from common import DATA, RESULTS, machine, machine_markdown, machine_tag, rnnkit, write_results
from rnnkit.tasks.music import ABC_TEMPERATURE

JSB = DATA / "music_jsb_chorales"
ABC = DATA / "music_nottingham_abc" / "ABC_cleaned"
CHUNG = {"lstm": 8.67, "gru": 8.54}  # Chung et al. 2014, Table 2: JSB Chorales test NLL per time step
SHORT, LONG = 120, 600


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "chorales" or "abc"
    budget: float
    flags: list[str] = field(default_factory=list)  # after the data flags: the only options a row gives
    cell: str = ""
    output: str = ""
    resolution: str = "quarter"


ROWS = [
    *(Row(f"{output}-{cell}-{budget}", "chorales", budget, ["--output", output, "--cell", cell], cell, output)
      for output in ("sigmoid", "nade") for cell in ("lstm", "gru") for budget in (SHORT, LONG)),
    Row(f"nade-16th-{LONG}", "chorales", LONG, ["--output", "nade", "--resolution", "16th"], "", "nade", "16th"),
    Row(f"abc-{LONG}", "abc", LONG),
]  # fmt: skip
QUICK = ("sigmoid-lstm-120", "nade-gru-120", "nade-16th-600", "abc-600")  # one of each kind


def run_chorales(row: Row, budget: float, scratch: Path) -> dict:
    run = scratch / row.name
    command = ["train", "music", "--data", str(JSB), *row.flags, "--time-budget", f"{budget:g}"]
    trained = rnnkit(*command, "--out", str(run), "--quiet")
    tested = rnnkit("eval", str(run), "--split", "test")
    config = json.loads((run / "config.json").read_text())
    summary = trained["summary"]
    return {"command": "rnnkit " + " ".join(command).replace(str(DATA) + "/", "../shared/data/"),
            "budget": budget, "steps": summary["steps"], "seconds": summary["seconds"],
            "stopped": summary["stopped"], "parameters": summary["parameters"],
            "best_step": (summary.get("best") or {}).get("step"), "valid": trained["metrics"],
            "test": tested["metrics"], "defaults": config.get("defaults"),
            "model": config["model"]["config"]}  # fmt: skip


def nottingham(scratch: Path) -> Path:
    """The cleaned Nottingham files joined into one text (rnnkit train lm reads one file, or a folder's .txt)."""
    text = "\n\n".join(p.read_text(encoding="utf-8").strip() for p in sorted(ABC.glob("*.abc")))
    path = scratch / "nottingham.abc.txt"
    path.write_text(text + "\n", encoding="utf-8")
    return path


TEMPERATURES = (1.0, 0.8, 0.6, 0.5)  # --abc's default (ABC_TEMPERATURE) is chosen from this table


def run_abc(row: Row, budget: float, scratch: Path, quick: bool) -> dict:
    """Train the char LM, then sample 100 tunes at each of :data:`TEMPERATURES` from it (the default one with
    the reference tunes and the MIDI file)."""
    run = scratch / row.name
    command = ["train", "lm", "--data", str(nottingham(scratch)), "--level", "char", "--time-budget", f"{budget:g}"]
    trained = rnnkit(*command, "--out", str(run), "--quiet")
    tunes, reference = (2, 5) if quick else (100, 200)
    by_temperature, default = {}, None
    for temperature in TEMPERATURES:
        sample = ["sample", str(run), "--abc", "--tunes", str(tunes), "--seed", "0"]
        sample += ["--temperature", f"{temperature:g}"]
        if temperature == ABC_TEMPERATURE:
            sample[-2:] = []  # the command a user runs: --abc's default temperature
            sample += ["--reference-tunes", str(reference)]
            if not quick:  # 2 s of training may write no tune that parses, and then no MIDI file
                sample += ["--midi", str(scratch / "tunes.mid")]
        else:
            sample += ["--reference-tunes", "0"]
        sampled = rnnkit(*sample)
        report = sampled["abc"]
        by_temperature[f"{temperature:g}"] = {**sampled["metrics"], "cut_off": report["cut_off"],
                                              "errors": report["generated"]["errors"]}  # fmt: skip
        if temperature == ABC_TEMPERATURE:
            default = (sample, sampled, report)
    sample, sampled, report = default
    summary = trained["summary"]
    return {"command": "rnnkit " + " ".join(command).replace(str(scratch) + "/", ""),
            "sample": "rnnkit " + " ".join(sample).replace(str(scratch) + "/", ""),
            "budget": budget, "steps": summary["steps"], "seconds": summary["seconds"],
            "parameters": summary["parameters"], "valid": trained["metrics"], "abc": sampled["metrics"],
            "cut_off": report["cut_off"], "midi_tunes": report["midi_tunes"],
            "errors": report["generated"]["errors"], "reference_errors": (report["reference"] or {}).get("errors"),
            "notes": sampled["notes"], "by_temperature": by_temperature}  # fmt: skip


def targets(rows: dict) -> list[dict]:
    """The issue's targets, each with its figure and whether it is met (None: its row was not run)."""
    out = []
    for cell, goal in CHUNG.items():
        r = rows.get(f"sigmoid-{cell}-{LONG}")
        value = r and r["test"]["nll_per_step"]
        out.append({"target": f"JSB test NLL, sigmoid {cell.upper()}, {LONG} s <= {goal} (Chung et al.)",
                    "value": value, "met": None if r is None else value <= goal})  # fmt: skip
    kinds = {r.name: r for r in ROWS}
    quarter = {n: r["test"]["nll_per_step"] for n, r in rows.items()
               if n in kinds and kinds[n].kind == "chorales" and kinds[n].resolution == "quarter"}  # fmt: skip
    best = min(quarter, key=quarter.get) if quarter else None
    out.append({"target": "JSB test NLL, best configuration of any budget <= 8.0",
                "value": best and quarter[best], "row": best, "met": None if best is None else quarter[best] <= 8.0})
    r = rows.get(f"abc-{LONG}")
    value = r and r["abc"]["parse_share"]
    out.append({"target": f"generated ABC tunes that parse, {LONG} s char-LM >= 90%", "value": value,
                "met": None if r is None else value >= 0.9})  # fmt: skip
    return out


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    rows = result["rows"]
    lines = ["# Music: JSB Chorales next-frame NLL and Nottingham ABC tunes (issue 21)", "",
             f"Machine: {machine_markdown(result['machine'])}", "",
             "Every run gives only its data, `--time-budget`, and the output and cell it compares; every other "
             "option is the task's default (recorded in each run's config.json under `defaults`). Test figures "
             "are `rnnkit eval RUN --split test --json` on the 77 test chorales: NLL in nats per time step "
             "(summed over the 88 keys, averaged over every frame of the split, the first frame of a piece "
             "predicted from silence), as Chung et al. (2014) define it.", "",
             "## JSB Chorales, test split", "",
             "| row | output | cell | budget s | steps | params | valid NLL | test NLL | Chung et al. | frame acc | "
             "precision | recall |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in ROWS:
        r = rows.get(row.name)
        if row.kind != "chorales" or r is None:
            continue
        cell = r["model"]["rnn"]["cell"]
        published = CHUNG.get(cell) if row.output == "sigmoid" and row.resolution == "quarter" else None
        t = r["test"]
        lines.append(f"| {row.name} | {row.output} | {cell} | {r['budget']:g} | {r['steps']} | {r['parameters']:,} | "
                     f"{fmt(r['valid'].get('loss'))} | **{fmt(t['nll_per_step'])}** | {fmt(published, 2)} | "
                     f"{fmt(t['frame_accuracy'])} | {fmt(t['precision'])} | {fmt(t['recall'])} |")  # fmt: skip
    lines += ["", "Chung et al.'s figures are for independent sigmoid outputs on the quarter-note split; the "
              "16th-note row's NLL is per 16th note.", ""]  # fmt: skip
    r = rows.get(f"abc-{LONG}")
    if r is not None:
        a = r["abc"]
        lines += ["## Nottingham ABC tunes from a character-level LM", "",
                  f"`{r['command']}`, then `{r['sample']}`: validation {fmt(r['valid'].get('loss'))} nats/char "
                  f"after {r['steps']} steps.", "",
                  "| tunes | parse | parse, bars consistent |", "|---|---|---|",
                  f"| {a['tunes']} generated ({r['cut_off']} cut off) | {a['parse_share']:.0%} | "
                  f"{a['consistent_share']:.0%} |"]  # fmt: skip
        if "reference_parse_share" in a:
            lines.append(f"| training tunes (a seeded sample) | {a['reference_parse_share']:.0%} | "
                         f"{a['reference_consistent_share']:.0%} |")
        lines += ["", f"Generated tunes written to MIDI: {r['midi_tunes']}. Commonest reasons a generated tune "
                  f"fails: {r['errors'] or 'none'}; a training tune: {r['reference_errors'] or 'none'}.", ""]
        if r.get("by_temperature"):
            lines += ["The same run sampled at each temperature (`--temperature T`, 100 tunes, seed 0); `--abc` "
                      f"samples at {ABC_TEMPERATURE:g} unless told:", "",
                      "| temperature | parse | parse, bars consistent | commonest failures |", "|---|---|---|---|"]
            for t, m in r["by_temperature"].items():
                lines.append(f"| {t} | {m['parse_share']:.0%} | {m['consistent_share']:.0%} | "
                             f"{m['errors'] or 'none'} |")
            lines.append("")
    lines += ["## The issue's targets", "", "| target | figure | met |", "|---|---|---|"]
    for t in result["targets"]:
        met = "not run" if t["met"] is None else "yes" if t["met"] else "**no**"
        figure = fmt(t["value"]) + (f" ({t['row']})" if t.get("row") else "")
        lines.append(f"| {t['target']} | {figure} | {met} |")
    lines += ["", "## The commands", ""]
    lines += [f"- {name}: `{r['command']}`" for name, r in rows.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="ROW", help=" ".join(r.name for r in ROWS))
    parser.add_argument("--quick", action="store_true", help="one row of each kind for 2 s in a temporary "
                        "folder: a check of the script end to end (under a minute), not a measurement; writes nothing")
    args = parser.parse_args(argv)
    names = args.only or (QUICK if args.quick else [r.name for r in ROWS])
    unknown = [n for n in names if n not in {r.name for r in ROWS}]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; the rows are: {' '.join(r.name for r in ROWS)}")
    info = machine("cpu")
    stem = RESULTS / f"music-{machine_tag(info)}"
    saved = stem.with_suffix(".json")
    rows = json.loads(saved.read_text())["rows"] if saved.exists() and not args.quick else {}
    scratch = Path(tempfile.mkdtemp(prefix="rnnkit-music-"))  # the runs; removed at the end
    try:
        for row in (r for r in ROWS if r.name in names):
            budget = 2.0 if args.quick else row.budget
            print(f"{row.name}: training for {budget:g} s", file=sys.stderr)
            rows[row.name] = (run_abc(row, budget, scratch, args.quick) if row.kind == "abc"
                              else run_chorales(row, budget, scratch))  # fmt: skip
            if not args.quick:  # each row as it ends: a later row's failure loses nothing measured
                write_results("music", report(info, rows), markdown(report(info, rows)), RESULTS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = markdown(report(info, rows))
    if args.quick:
        print(text)
        print("--quick: nothing written (the figures above come from 2-second runs)", file=sys.stderr)
        return
    print(text)


def report(info: dict, rows: dict) -> dict:
    return {"machine": info, "command": "flock /tmp/cpu.lock python benchmarks/music.py", "rows": rows,
            "targets": targets(rows)}


if __name__ == "__main__":
    main()
