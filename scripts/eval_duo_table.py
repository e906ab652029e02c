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

    # one table per pattern: rows = lengths, columns = depths, then the bucket
    names = ["full"] + ["%s-%s" % (method, sp) for sp in sps]
    for n in names:
        if n not in cells:
            continue
        c = cells[n]
        print("**%s** (seeds %s)\n" % (n, ",".join(map(str, sorted(seeds[n])))))
        print("| length | " + " | ".join("d=%g" % d for d in depths) + " | bucket |")
        print("|---|" + "---|" * (len(depths) + 1))
        for l in [l for l in lengths if bucket(c, l)]:
            print("| %dK | " % (l // 1024) + " | ".join(fmt(c.get((l, d))) for d in depths) + " | %s |" % fmt(bucket(c, l)))
        print()
    # the random patterns: rows = patterns, columns = the cells they ran, then their mean
    for sp in sps:
        rc = sorted({k for n in rand[sp] for k in cells[n]})
        if not rc:
            rand[sp] = {}
            continue
        print("**random patterns, sparsity %s** (seeds %s)\n" %
              (sp, ",".join(map(str, sorted(set().union(*(seeds[n] for n in rand[sp])))))))
        print("| pattern | " + " | ".join("%dK d=%g" % (l // 1024, d) for l, d in rc) + " |")
        print("|---|" + "---|" * len(rc))
        for n in rand[sp]:
            print("| %s | " % n + " | ".join(fmt(cells[n].get(k)) for k in rc) + " |")
        mean, cols, part = {}, [], {}
        for k in rc:
            ps = [pct(cells[n].get(k)) for n in rand[sp]]
            ps = [p for p in ps if p is not None]
            mean[k] = sum(ps) / len(ps)
            part[k] = "" if len(ps) == len(rand[sp]) else " (%d of %d patterns)" % (len(ps), len(rand[sp]))
            cols.append("%.0f%%" % mean[k] + part[k])
        print("| **mean** | " + " | ".join(cols) + " |\n")
        rand[sp] = {k: (m, part[k]) for k, m in mean.items()}

    print("| length | full bucket | pattern | bucket | >= 90% of full | depth: pattern vs random mean | >= 25 points |")
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
            for (ll, d), (m, why) in sorted(rand[sp].items()):
                if ll == l and (l, d) in c:
                    vs.append("d=%g: %.0f%% vs %.0f%%%s" % (d, pct(c[(l, d)]), m, why))
                    ok = ok and pct(c[(l, d)]) >= m + 25
            t25 = ("met" if ok else "**not met**") if vs else "no random run"
            print("| %dK | %s | %s %s | %s | %s | %s | %s |" % (l // 1024, fmt(fb), method, sp, fmt(pb), t90,
                                                               "; ".join(vs), t25))


if __name__ == "__main__":
    main()
