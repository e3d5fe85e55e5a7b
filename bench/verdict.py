"""Is the verdict honest on heads it was not fitted on? (issue 8, item 6)

    PYTHONPATH=backend python bench/verdict.py SWEEP.json [MORE.json ...] [--json OUT.json] [--plot OUT.png]

Reads the rows of one or more ``bench/sweep.py --json`` files: every case where a face was found and
the true misplacement measured, with the signals ``quality.assess`` wrote into report.json. The
estimate and the verdict are recomputed from those signals by ``quality.estimate_error`` and
``quality.judge`` themselves (no copy of their logic here), so a change of calibration is judged
without re-running the sweep. Printed:

* **shipped** — ``quality.CALIBRATION`` as it is in the code;
* **in-sample** — the calibration fitted on every row (``fit_calibration``) and judged on the same
  rows: what the fit can do at best, and the numbers to copy into ``quality.CALIBRATION``;
* **held out by head** — fitted on every head but one, judged on that one, for each head in turn;
* **held out by family** — the scanned head against the demo head and its stylized variants: fitted
  on one family, judged on the other (the closest the sweep has to a new head);
* **held out by condition** — the same, one light, skin or background at a time: face detection
  improves, and the cases it newly finds are the harsh lights and strong patterns, so a
  calibration that only holds for the conditions found today would not hold tomorrow.

For each: the confusion table (misplaced = true misplacement > ``MISPLACED`` eye distances, flagged =
any verdict but ``good``), the same away from the bar (true < ``MISPLACED / AWAY`` or
> ``MISPLACED x AWAY``, where no estimate can be blamed for a coin toss), the median and
interquartile range of estimate / truth and the Spearman rank correlation; and how many good cases
and distinct portraits the rates rest on (the invariance block shows one portrait to moved copies
of one mesh: seven rows, one photo), and the good cases flagged among those the shading or the
head's outline vouched for: a result neither vouches for is flagged by rule
(``quality.CONFIRMED_WEIGHT``), and rightly, for nearly all such results are misplaced.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex import quality  # noqa: E402

MISPLACED = 0.05
"""True misplacement (eye distances) above which a result must be flagged (``sweep.MISPLACED``)."""
AWAY = 1.4
"""Factor around MISPLACED outside which a case counts as clearly good or clearly misplaced: 1.4 is
about the interquartile spread of the estimate over the truth on the sweep's confirmed cases."""
MIN_ROWS_TO_FIT = 6
"""Fewer rows than this in a part of the calibration (confirmed or not): keep the shipped value (two
rows per coefficient of the dense part at least)."""
TRUTH_FLOOR = 1e-3
"""True misplacements are read no smaller than this in the log fits (a perfect case is not -inf)."""
FLAGGED = ("doubtful", "failed")
CONDITIONS = ("light", "skin", "background")
"""The portrait's conditions also held out one level at a time (``held_out_by_condition``)."""


def usable(rows: list[dict], source: str) -> list[dict]:
    """The sweep rows with a face found, a true misplacement and the verdict's signals, each marked
    with the ``source`` it came from (the same case id in two files is two portraits)."""
    return [
        {**row, "source": source}
        for row in rows
        if row.get("found") and row.get("misplacement") is not None and row.get("signals")
    ]


def load_rows(paths: list[Path]) -> list[dict]:
    """The usable rows of ``bench/sweep.py --json`` files."""
    return [row for path in paths for row in usable(json.loads(Path(path).read_text())["rows"], str(path))]


def family(row: dict) -> str:
    """The head's family: ``scan`` or ``demo`` (the demo head and its stylized variants)."""
    return str(row["head"]).split("-")[0]


def fit_calibration(
    rows: list[dict], start: quality.Calibration = quality.CALIBRATION
) -> quality.Calibration:
    """The estimate's numbers fitted on ``rows`` (least squares in log space): the dense part on the
    rows the shading confirmed; the outline's gain and the share the read landmarks keep beside it
    (``_fit_outline``) on those the head's outline vouched for instead;
    on the others, the landmark gain (a geometric mean of truth over
    evidence) where the landmarks were read from the photo, and the unvouched misplacement (a
    geometric mean of the truth) where they were not. A part with fewer than MIN_ROWS_TO_FIT rows
    keeps ``start``'s values."""

    def confirmed(r: dict) -> bool:
        return quality.confirmed_share(r["signals"]) >= quality.CONFIRMED_WEIGHT

    def outlined(r: dict) -> bool:
        return not confirmed(r) and quality.outline_share(r["signals"]) >= quality.CONFIRMED_WEIGHT

    dense = (start.dense_log_intercept, start.dense_slope, start.dense_offset_power)
    gain, unvouched, outline_gain = start.landmark_gain, start.unvouched, start.outline_gain
    if sum(map(confirmed, rows)) >= MIN_ROWS_TO_FIT:
        dense = _fit_dense([r for r in rows if confirmed(r)])
    rest = [r for r in rows if not confirmed(r) and not outlined(r)]
    read = [r for r in rest if quality.landmarks_read(r["signals"])]
    unread = [r for r in rest if not quality.landmarks_read(r["signals"])]
    unit = quality.Calibration(*dense, landmark_gain=1.0, unvouched=unvouched)
    evidence = np.array([quality.landmark_evidence(r["signals"], unit) for r in read])
    if (evidence > 0).sum() >= MIN_ROWS_TO_FIT:
        truth = np.maximum([r["misplacement"] for r in read], TRUTH_FLOOR)[evidence > 0]
        gain = float(np.exp(np.median(np.log(truth / evidence[evidence > 0]))))
    if len(unread) >= MIN_ROWS_TO_FIT:
        unvouched = float(
            np.exp(np.mean(np.log(np.maximum([r["misplacement"] for r in unread], TRUTH_FLOOR))))
        )
    keeps = start.outline_keeps_landmarks
    by_outline = [r for r in rows if outlined(r)]
    if len(by_outline) >= MIN_ROWS_TO_FIT:
        landmarks = quality.Calibration(*dense, landmark_gain=gain, unvouched=unvouched)
        outline_gain, keeps = _fit_outline(by_outline, landmarks)
    return quality.Calibration(*(round(float(v), 3) for v in (*dense, gain, unvouched, outline_gain, keeps)))


KEEPS_RANGE = (0.0, 0.6)
"""The landmarks' share under a camera the outline placed is fitted within this: more, and the
outline's misfit would hardly count where it vouched."""


def _fit_outline(rows: list[dict], landmarks: quality.Calibration) -> tuple[float, float]:
    """The outline's gain g and the landmarks' kept share k on the rows the outline vouched for,
    least squares in log space: log truth = log(g x misfit) where the landmarks were not read from
    the photo, (1 - k) log(g x misfit) + k log(landmark evidence) where they were; k searched over
    KEEPS_RANGE (for each, g in closed form)."""
    misfit = np.maximum([r["signals"]["outline_misfit_iod"] for r in rows], 1e-4)
    truth = np.maximum([r["misplacement"] for r in rows], TRUTH_FLOOR)
    read = np.array([quality.landmarks_read(r["signals"]) for r in rows])
    evidence = np.array(
        [
            max(quality.landmark_evidence(r["signals"], landmarks), quality.ESTIMATE_FLOOR) if known else 1.0
            for r, known in zip(rows, read, strict=True)
        ]
    )
    y, x = np.log(truth / misfit), np.log(evidence / misfit)
    best = None
    for keeps in np.arange(KEEPS_RANGE[0], KEEPS_RANGE[1] + 1e-9, 0.01) if read.any() else [0.0]:
        a = np.where(read, 1.0 - keeps, 1.0)  # log truth - log misfit = a log g + b
        b = np.where(read, keeps * x, 0.0)
        log_gain = float(np.sum(a * (y - b)) / np.sum(a * a))
        error = float(np.sum((y - a * log_gain - b) ** 2))
        if best is None or error < best[0] - 1e-12:
            best = (error, float(np.exp(log_gain)), float(keeps))
    return best[1], best[2]


def _fit_dense(rows: list[dict]) -> tuple[float, float, float]:
    """log misplacement = intercept + slope x agreement + power x log(offset / typical), least
    squares; the offset term left out (power 0) where no row says its correction's size."""
    signals = [r["signals"] for r in rows]
    agreement = np.array([s["dense_agreement"] for s in signals], np.float64)
    truth = np.log(np.maximum([r["misplacement"] for r in rows], TRUTH_FLOOR))
    offsets = [s.get("dense_offset_iod") for s in signals]
    columns = [np.ones(len(rows)), agreement]
    if any(o is not None for o in offsets):
        typical = quality.OFFSET_TYPICAL_IOD
        sizes = np.array([typical if o is None else max(o, quality.OFFSET_RESOLUTION_IOD) for o in offsets])
        columns.append(np.log(sizes / typical))
    coef = np.linalg.lstsq(np.stack(columns, axis=1), truth, rcond=None)[0]
    return float(coef[0]), float(coef[1]), float(coef[2]) if len(coef) > 2 else 0.0


def judged(rows: list[dict], calibration: quality.Calibration) -> list[dict]:
    """Each row's estimate and verdict under ``calibration``."""
    out = []
    for r in rows:
        estimate = quality.estimate_error(r["signals"], calibration)
        verdict, reasons, _, _ = quality.judge(r["signals"], estimate)
        out.append(
            {
                "id": r["id"],
                "head": r["head"],
                "source": r["source"],
                "group": r.get("group", ""),
                "truth": r["misplacement"],
                "estimate": estimate,
                "verdict": verdict,
                "reasons": reasons,
                "confirmed": quality.vouched(r["signals"]),
                "read": quality.landmarks_read(r["signals"]),
            }
        )
    return out


def held_out(
    rows: list[dict], key: Callable[[dict], str]
) -> tuple[list[dict], dict[str, quality.Calibration]]:
    """Every row judged by the calibration fitted on the rows of the other groups (``key``)."""
    out, fits = [], {}
    for group in sorted({key(r) for r in rows}):
        train = [r for r in rows if key(r) != group]
        fits[group] = fit_calibration(train)
        out += judged([r for r in rows if key(r) == group], fits[group])
    return out, fits


def _portrait(j: dict) -> str:
    """One name per distinct portrait: the invariance block's rows share theirs."""
    return f"{j['source']}:{j['group'] or j['id']}"


def figures(results: list[dict]) -> dict:
    """The confusion table (per verdict), its rates, and how the estimate follows the truth."""
    from scipy.stats import spearmanr

    bad = [j for j in results if j["truth"] > MISPLACED]
    good = [j for j in results if j["truth"] <= MISPLACED]
    clear_bad = [j for j in bad if j["truth"] > MISPLACED * AWAY]
    clear_good = [j for j in good if j["truth"] < MISPLACED / AWAY]

    def count(group: list[dict]) -> dict:
        return {v: sum(1 for j in group if j["verdict"] == v) for v in ("good", "doubtful", "failed")}

    def flagged(group: list[dict]) -> int:
        return sum(1 for j in group if j["verdict"] in FLAGGED)

    out = {
        "misplaced": count(bad),
        "ok": count(good),
        "misplaced_flagged": flagged(bad),
        "misplaced_n": len(bad),
        "ok_flagged": flagged(good),
        "ok_n": len(good),
        "ok_portraits": len({_portrait(j) for j in good}),
        "ok_confirmed": sum(1 for j in good if j["confirmed"]),
        "ok_confirmed_flagged": flagged([j for j in good if j["confirmed"]]),
        "clear_misplaced_flagged": flagged(clear_bad),
        "clear_misplaced_n": len(clear_bad),
        "clear_ok_flagged": flagged(clear_good),
        "clear_ok_n": len(clear_good),
        "failed_min_truth": min((j["truth"] for j in results if j["verdict"] == "failed"), default=None),
    }
    if len(results) >= 3:
        est = np.array([j["estimate"] for j in results])
        truth = np.maximum([j["truth"] for j in results], 1e-9)
        ratio = est / truth
        out["ratio_median"] = round(float(np.median(ratio)), 3)
        out["ratio_iqr"] = [round(float(q), 3) for q in np.quantile(ratio, [0.25, 0.75])]
        out["spearman"] = round(float(spearmanr(est, truth).statistic), 3)
    return out


def evaluate(rows: list[dict]) -> dict:
    """Shipped, in-sample and held-out (by head, by family) figures, and the fitted calibrations."""
    fitted = fit_calibration(rows)
    by_head, head_fits = held_out(rows, lambda r: r["head"])
    by_family, family_fits = held_out(rows, family)
    return {
        "rows": len(rows),
        "shipped": {"calibration": asdict(quality.CALIBRATION), **figures(judged(rows, quality.CALIBRATION))},
        "in_sample": {"calibration": asdict(fitted), **figures(judged(rows, fitted))},
        "held_out_by_head": {
            "calibrations": {k: asdict(v) for k, v in head_fits.items()},
            **figures(by_head),
        },
        "held_out_by_family": {
            "calibrations": {k: asdict(v) for k, v in family_fits.items()},
            **figures(by_family),
            "per_family": {
                name: figures([j for j in by_family if family(j) == name]) for name in family_fits
            },
            "vouched": figures([j for j in by_family if j["confirmed"] or j["read"]]),
        },
        "judged_held_out_by_family": by_family,
        "held_out_by_condition": {
            factor: figures(held_out(rows, lambda r, f=factor: str(r.get(f)))[0]) for factor in CONDITIONS
        },
    }


def rate_line(f: dict) -> str:
    """One line: the flag rates, away from the bar too, and the estimate against the truth."""
    parts = [
        f"misplaced flagged {f['misplaced_flagged']}/{f['misplaced_n']}",
        f"good flagged {f['ok_flagged']}/{f['ok_n']} ({f['ok_portraits']} portraits; "
        f"{f['ok_confirmed_flagged']}/{f['ok_confirmed']} where the shading or the outline vouched)",
        f"away from the bar {f['clear_misplaced_flagged']}/{f['clear_misplaced_n']} and "
        f"{f['clear_ok_flagged']}/{f['clear_ok_n']}",
    ]
    if "ratio_median" in f:
        lo, hi = f["ratio_iqr"]
        parts.append(f"estimate/truth {f['ratio_median']} (IQR {lo}-{hi}), Spearman {f['spearman']}")
    return "; ".join(parts)


def print_table(f: dict, indent: str = "  ") -> None:
    """The confusion table by verdict: rows the truth, columns the verdict."""
    print(f"{indent}{'truth':<24} {'good':>6} {'doubtful':>9} {'failed':>7}")
    for label, key in ((f"misplaced (> {MISPLACED})", "misplaced"), (f"ok (<= {MISPLACED})", "ok")):
        c = f[key]
        print(f"{indent}{label:<24} {c['good']:>6} {c['doubtful']:>9} {c['failed']:>7}")


def print_report(e: dict) -> None:
    """The evaluation, for a person."""
    print(f"{e['rows']} cases with a face found and a measured misplacement")
    for name, title in (
        ("shipped", "shipped (quality.CALIBRATION)"),
        ("in_sample", "in-sample (fitted on every row)"),
        ("held_out_by_head", "held out by head (each head judged by a fit on the others)"),
        ("held_out_by_family", "held out by family (scan judged by the demo heads' fit, and back)"),
    ):
        f = e[name]
        print(f"\n{title}")
        if "calibration" in f:
            print(f"  calibration {f['calibration']}")
        else:
            for group, c in f["calibrations"].items():
                print(f"  without {group:<18} {c}")
        print_table(f)
        print(f"  {rate_line(f)}")
        if f["failed_min_truth"] is not None:
            print(f"  the least misplaced case called failed: {f['failed_min_truth']:.3f}")
        for group, g in f.get("per_family", {}).items():
            print(f"  {group}: {rate_line(g)}")
        if "vouched" in f:
            print(f"  where anything vouched (shading, outline or read landmarks): {rate_line(f['vouched'])}")
    print("\nheld out by condition (each level judged by a fit on the others: the calibration must not")
    print("depend on which lights or skins happen to have a face found):")
    for factor, f in e["held_out_by_condition"].items():
        print(f"  {factor:<10} {rate_line(f)}")
    misses = [
        j for j in e["judged_held_out_by_family"] if (j["truth"] > MISPLACED) == (j["verdict"] == "good")
    ]
    if misses:
        print("\nheld out by family, wrong side of the bar:")
        for j in sorted(misses, key=lambda j: j["truth"]):
            truth, estimate = f"truth {j['truth']:.3f}", f"estimate {j['estimate']:.3f}"
            print(f"  {j['id']:<22} {j['head']:<18} {truth} {estimate} {j['verdict']}")


def plot(results: list[dict], path: Path, title: str) -> None:
    """Estimate against truth, log-log, coloured by verdict, with the bar on both axes: the cases
    in the wrong quadrants are the verdict's mistakes. Hollow: nothing vouched (no shading
    confirmation, landmarks not read from the photo), the estimate is the unvouched constant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"good": "tab:green", "doubtful": "tab:orange", "failed": "tab:red"}
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    for j in results:
        marker = "s" if family(j) == "scan" else "o"
        colour = colours[j["verdict"]]
        unvouched = not j["confirmed"] and not j["read"]
        face = "none" if unvouched else colour
        ax.scatter(
            j["truth"], j["estimate"], facecolors=face, edgecolors=colour, marker=marker, s=28, alpha=0.8
        )
    lo, hi = 0.005, 3.0
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax.axvline(MISPLACED, color="black", lw=0.8, ls="--")
    ax.axhline(quality.GOOD_BELOW, color="black", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=title)
    ax.set(xlabel="true misplacement (eye distances)", ylabel="estimated_error_iod")
    for verdict, colour in colours.items():
        ax.scatter([], [], c=colour, label=verdict)
    ax.scatter([], [], c="grey", marker="s", label="scan (squares)")
    ax.scatter([], [], facecolors="none", edgecolors="grey", label="nothing vouched (hollow)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="bench/sweep.py --json files")
    parser.add_argument("--json", type=Path, default=None, help="write the evaluation here")
    parser.add_argument("--plot", type=Path, default=None, help="a PNG of the held-out estimates")
    args = parser.parse_args(argv)
    rows = load_rows(args.sweeps)
    if len(rows) < 2 * MIN_ROWS_TO_FIT:
        print(f"only {len(rows)} usable rows in {', '.join(map(str, args.sweeps))}")
        return 1
    e = evaluate(rows)
    print_report(e)
    if args.json:
        args.json.write_text(json.dumps(e, indent=1, default=str))
    if args.plot:
        plot(e["judged_held_out_by_family"], args.plot, "held out by head family")
    return 0


if __name__ == "__main__":
    sys.exit(main())
