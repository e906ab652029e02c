#!/usr/bin/env python3
"""eval_duo_table.py: the NIAH tables of docs/PERF.md from scripts/eval_duo_smollm2.sh's JSON files.

   python3 scripts/eval_duo_table.py OUT_DIR [METHOD]

Pools every seed's file of a pattern (OUT/niah-NAME-LEN-sSEED.json): per length x depth the correct
trials of all samples; per length the bucket (all depths); the 5 random patterns' mean per sparsity
at the depths they ran; then the issue's targets per length and sparsity: the pattern's bucket >= 90%
of full attention's where full scores >= 50%, and its cells >= 25 points above the random mean at the
depths the random patterns ran. Markdown on stdout. Standard library only (a developer-side helper,
never part of the build).
"""
import glob
import json
import os
import re
import sys


def load(out):
    # cells[name][(length, depth)] = [correct, trials]; seeds[name] = set of seeds
    cells, seeds = {}, {}
    for path in sorted(glob.glob(os.path.join(out, "niah-*-s*.json"))):
        m = re.match(r"niah-(.+)-(\d+k)-s(\d+)\.json$", os.path.basename(path))
        with open(path) as f:
            text = f.read().strip()
        if not m or not text:
            continue
        r = json.loads(text)
        name = m.group(1)
        seeds.setdefault(name, set()).add(int(m.group(3)))
        c = cells.setdefault(name, {})
        for li, length in enumerate(r["lengths"]):
            for di, depth in enumerate(r["depths"]):
                k = c.setdefault((length, depth), [0, 0])
                k[0] += round(r["accuracy"][li][di] * r["samples"])
                k[1] += r["samples"]
    return cells, seeds


def pct(k):
    return 100.0 * k[0] / k[1] if k and k[1] else None


def fmt(k):
    return "" if not k or not k[1] else "%.0f%% (%d/%d)" % (pct(k), k[0], k[1])


def bucket(c, length):
    ks = [v for (l, d), v in c.items() if l == length]
    return [sum(k[0] for k in ks), sum(k[1] for k in ks)] if ks else None


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "eval-out"
    method = sys.argv[2] if len(sys.argv) > 2 else "deviation"
    cells, seeds = load(out)
    if not cells:
        sys.exit("eval_duo_table.py: %s: no niah-*-sSEED.json files" % out)
    lengths = sorted({l for c in cells.values() for (l, d) in c})
    depths = sorted({d for c in cells.values() for (l, d) in c})
    sps = sorted({n.rsplit("-", 1)[1] for n in cells if n.startswith(method + "-")}, key=float)
    rand = {sp: sorted(n for n in cells if re.match(r"rand\d+-%s$" % re.escape(sp), n)) for sp in sps}

    def row(label, c):
        return "| %s | " % label + " | ".join(fmt(c.get((l, d))) for l in lengths for d in depths) + " |"

    print("| attention | " + " | ".join("%dK d=%g" % (l // 1024, d) for l in lengths for d in depths) + " |")
    print("|---|" + "---|" * (len(lengths) * len(depths)))
    names = ["full"] + ["%s-%s" % (method, sp) for sp in sps]
    for n in names:
        if n in cells:
            print(row("%s (seeds %s)" % (n, ",".join(map(str, sorted(seeds[n])))), cells[n]))
    for sp in sps:
        for n in rand[sp]:
            print(row(n, cells[n]))
        mean = {}
        for l in lengths:
            for d in depths:
                ps = [pct(cells[n].get((l, d))) for n in rand[sp]]
                ps = [p for p in ps if p is not None]
                if ps:
                    mean[(l, d)] = sum(ps) / len(ps)
        print("| random mean %s (%d patterns) | " % (sp, len(rand[sp])) +
              " | ".join("%.0f%%" % mean[(l, d)] if (l, d) in mean else "" for l in lengths for d in depths) + " |")
        rand[sp] = mean

    print("\n| length | full bucket | pattern | bucket | >= 90% of full | depth: pattern vs random mean | >= 25 points |")
    print("|---|---|---|---|---|---|---|")
    full = cells.get("full", {})
    for sp in sps:
        c = cells.get("%s-%s" % (method, sp), {})
        for l in lengths:
            fb, pb = bucket(full, l), bucket(c, l)
            if not fb or not pb:
                continue
            if pct(fb) < 50:
                t90 = "n/a (full < 50%)"
            else:
                t90 = "met" if pct(pb) >= 0.9 * pct(fb) else "**not met**"
            vs, ok = [], True
            for (ll, d), m in sorted(rand[sp].items()):
                if ll == l and (l, d) in c:
                    vs.append("d=%g: %.0f%% vs %.0f%%" % (d, pct(c[(l, d)]), m))
                    ok = ok and pct(c[(l, d)]) >= m + 25
            t25 = ("met" if ok else "**not met**") if vs else "no random run"
            print("| %dK | %s | %s %s | %s | %s | %s | %s |" % (l // 1024, fmt(fb), method, sp, fmt(pb), t90,
                                                               "; ".join(vs), t25))


if __name__ == "__main__":
    main()
