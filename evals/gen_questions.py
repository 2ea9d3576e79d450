#!/usr/bin/env python3
"""Builds evals/questions.jsonl: generated arithmetic and units items, then the hand-written
items of evals/handwritten.jsonl, unchanged. Deterministic (fixed seed): rerunning it gives
the same file byte for byte.

    python3 evals/gen_questions.py > evals/questions.jsonl
"""

import json
import random
import sys
from pathlib import Path

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n):
    """English words for 0..999, or None (larger numbers are accepted as digits only)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return TENS[t] + ("" if o == 0 else "-" + ONES[o])
    if n < 1000:
        h, r = divmod(n, 100)
        return ONES[h] + " hundred" + ("" if r == 0 else " and " + words(r))
    return None


def number_forms(n):
    forms = [str(n)]
    if n >= 1000:
        forms.append(f"{n:,}")
    w = words(n)
    if w:
        forms.append(w)
        if "-" in w:
            forms.append(w.replace("-", " "))
        if " and " in w:
            forms.append(w.replace(" and ", " "))
    return forms


def arithmetic(rng):
    items = []
    just = " Answer with just the number."

    seen = set()

    def add(prompt, ans):
        # A repeated draw would weigh one question twice; skip it (the counts stay close).
        if prompt in seen:
            return
        seen.add(prompt)
        items.append({"kind": "arithmetic", "prompt": prompt + just, "answers": number_forms(ans)})

    for _ in range(16):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        add(f"What is {a} + {b}?", a + b)
    for _ in range(14):
        a, b = rng.randint(10, 99), rng.randint(2, 99)
        a, b = max(a, b), min(a, b)
        if a == b:
            a += 7
        add(f"What is {a} - {b}?", a - b)
    for _ in range(14):
        a, b = rng.randint(2, 12), rng.randint(2, 15)
        add(f"What is {a} × {b}?", a * b)
    for _ in range(14):
        b, q = rng.randint(2, 12), rng.randint(2, 15)
        add(f"What is {b * q} ÷ {b}?", q)
    for _ in range(6):
        a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(1, 20)
        add(f"What is {a} + {b} - {c}?", a + b - c)
    for _ in range(6):
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 30)
        add(f"What is {a} × {b} + {c}?", a * b + c)
    for i, it in enumerate(items, 1):
        it["id"] = f"arith-{i:03}"
    return items


# (from, to, factor, unit words accepted after the number, plural of the source unit)
CONVERSIONS = [
    ("kilometres", "metres", 1000, ["m", "meters", "metres"]),
    ("metres", "centimetres", 100, ["cm", "centimeters", "centimetres"]),
    ("centimetres", "millimetres", 10, ["mm", "millimeters", "millimetres"]),
    ("kilograms", "grams", 1000, ["g", "grams"]),
    ("litres", "millilitres", 1000, ["ml", "milliliters", "millilitres"]),
    ("hours", "minutes", 60, ["minutes", "min"]),
    ("minutes", "seconds", 60, ["seconds", "s"]),
    ("days", "hours", 24, ["hours", "h"]),
    ("weeks", "days", 7, ["days"]),
    ("years", "months", 12, ["months"]),
    ("feet", "inches", 12, ["inches", "in"]),
    ("yards", "feet", 3, ["feet", "ft"]),
    ("dozen", "items", 12, ["items"]),
]

# Going the other way: only values that divide exactly.
INVERSE = [
    ("metres", "kilometres", 1000, ["km", "kilometers", "kilometres"]),
    ("grams", "kilograms", 1000, ["kg", "kilograms"]),
    ("minutes", "hours", 60, ["hours", "h"]),
    ("seconds", "minutes", 60, ["minutes", "min"]),
    ("hours", "days", 24, ["days"]),
    ("days", "weeks", 7, ["weeks"]),
    ("months", "years", 12, ["years"]),
    ("millilitres", "litres", 1000, ["litres", "liters", "l"]),
]


def units(rng):
    items = []
    just = " Answer with just the number."
    for src, dst, factor, unit_words in CONVERSIONS:
        # Three different amounts per conversion.
        for n in rng.sample(range(2, 13), 3):
            ans = n * factor
            forms = number_forms(ans) + [f"{ans} {u}" for u in unit_words]
            items.append({"kind": "units", "prompt": f"How many {dst} are in {n} {src}?" + just,
                          "answers": forms})
    for src, dst, factor, unit_words in INVERSE:
        for n in rng.sample(range(2, 13), 3):
            forms = number_forms(n) + [f"{n} {u}" for u in unit_words]
            items.append({"kind": "units",
                          "prompt": f"How many {dst} are in {n * factor} {src}?" + just,
                          "answers": forms})
    for i, it in enumerate(items, 1):
        it["id"] = f"units-{i:03}"
    return items


def main():
    rng = random.Random(20261130)
    here = Path(__file__).resolve().parent
    out = sys.stdout
    for it in arithmetic(rng) + units(rng):
        row = {"id": it["id"], "kind": it["kind"], "prompt": it["prompt"], "answers": it["answers"]}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    for line in (here / "handwritten.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
