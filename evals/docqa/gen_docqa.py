#!/usr/bin/env python3
"""The document-QA set of issue 11: a corpus of made-up documents spread over three nodes and
questions that only those documents answer.

    gen_docqa.py corpus OUT_DIR     writes OUT_DIR/shard-a, shard-b, shard-c (one per node)
    gen_docqa.py questions          prints the questions as JSONL (evals/docqa/questions.jsonl)
    gen_docqa.py bulk OUT_DIR N     writes N plain-text files for the index build measurement

Standard library only, fixed seeds: every mode writes the same bytes on every run and machine.
See evals/docqa/README.md for the design (twins across shards, distractors, filler).
"""

import html
import json
import os
import random
import re
import shutil
import sys

SEED = 20261111
BULK_SEED = 20261112
SHARDS = ["a", "b", "c"]
# Groups per kind; every group has one member per shard, and every member is asked once.
GROUPS = 8
# Files per shard that answer nothing.
FILLER_PER_SHARD = 36
# Marks a directory this generator wrote, so it only ever replaces its own shards.
MARKER = ".docqa-corpus"
JUST_NAME = " Answer with just the name."
JUST_NUMBER = " Answer with just the number."
KINDS = ["product", "team", "manual", "recipe", "family", "meeting"]

FIRST = [
    "Odile", "Bertrand", "Priya", "Tomasz", "Ingrid", "Kwame", "Lucia", "Henrik", "Amara",
    "Dmitri", "Sofia", "Rafael", "Yuki", "Elena", "Marcus", "Noor", "Felix", "Hana", "Jonas",
    "Leila", "Oskar", "Mira", "Anton", "Esther", "Caspar", "Ines", "Viktor", "Greta", "Idris",
    "Paloma", "Stellan", "Ayla", "Benedikt", "Clara", "Emil", "Farah", "Gideon", "Helga",
    "Ilario", "Jana", "Konrad", "Linnea", "Matteo", "Nadia", "Orla", "Pavel", "Rosalind",
    "Sven", "Tamsin", "Ulrich", "Vera", "Wendel", "Xenia", "Yusuf", "Zora", "Aurelio",
    "Brigid", "Cyrus", "Delphine", "Evander", "Fenna", "Gustav", "Hedda", "Ivo", "Juno",
]
SURNAME_HEAD = [
    "Var", "Hal", "Lind", "Brenn", "Dal", "Fen", "Gar", "Kell", "Mor", "Nor", "Ost", "Pell",
    "Quen", "Ros", "Sand", "Tor", "Ulm", "Vell", "Wes", "Yar", "Zan", "Brun", "Char", "Dorn",
    "Elm", "Fal", "Grim", "Holt", "Iver", "Jor", "Kast", "Lom", "Marr", "Nyb", "Orm", "Prest",
]
SURNAME_TAIL = [
    "ga", "vorsen", "qvist", "ick", "ani", "ard", "ley", "wick", "mann", "berg", "ez", "ski",
    "ello", "dottir", "ton", "vik", "ado", "etti", "ova", "aker", "enko", "stad",
]
TOWN_HEAD = [
    "Marl", "Venn", "Ashen", "Bright", "Cold", "Elder", "Fair", "Glen", "Hazel", "Iron",
    "Lark", "Mill", "Oak", "Pine", "Raven", "Stone", "Thorn", "Wil", "Bram", "Cress",
]
TOWN_TAIL = ["bury", "wick", " Creek", "holm", "ford", "stead", " Hollow", "mere", "by", "ton"]
PETS = [
    "Pumpernickel", "Biscotti", "Juniper", "Marmalade", "Waffles", "Tangerine", "Pickles",
    "Clementine", "Noodle", "Paprika", "Dumpling", "Whiskers", "Bramble", "Saffron", "Truffle",
    "Gingersnap", "Nutmeg", "Pistachio", "Cobble", "Fennel", "Mochi", "Barnaby", "Quince",
    "Sprocket",
]
SPECIES = ["dog", "cat", "parrot", "rabbit", "tortoise", "hamster"]


# ---------------------------------------------------------------------------------------------
# Documents: a title and a list of blocks, rendered as Markdown, plain text or HTML.
# Blocks: ("h2", text), ("p", text), ("ul", [items]), ("table", [header], [[cells]]).


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_md(title, blocks):
    out = [f"# {title}", ""]
    for b in blocks:
        if b[0] == "h2":
            out += [f"## {b[1]}", ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "ul":
            out += [f"- {i}" for i in b[1]] + [""]
        elif b[0] == "table":
            out.append("| " + " | ".join(b[1]) + " |")
            out.append("|" + "---|" * len(b[1]))
            out += ["| " + " | ".join(r) + " |" for r in b[2]]
            out.append("")
    return "\n".join(out)


def render_txt(title, blocks):
    out = [title, "=" * len(title), ""]
    for b in blocks:
        if b[0] == "h2":
            out += [b[1].upper(), ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "ul":
            out += [f"  * {i}" for i in b[1]] + [""]
        elif b[0] == "table":
            out += [", ".join(f"{h}: {c}" for h, c in zip(b[1], r)) for r in b[2]] + [""]
    return "\n".join(out)


STYLE = """body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 52rem; color: #222; }
nav.top a { margin-right: 1.2em; color: #335; text-decoration: none; }
.sidebar { float: right; width: 14rem; font-size: 0.85em; border-left: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; }
footer { color: #777; font-size: 0.8em; margin-top: 3em; }"""


def render_html(title, blocks, site, related, page_id):
    e = html.escape
    body = []
    for b in blocks:
        if b[0] == "h2":
            body.append(f'<h2 id="{slug(b[1])}">{e(b[1])}</h2>')
        elif b[0] == "p":
            body.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "ul":
            body.append("<ul>\n" + "\n".join(f"  <li>{e(i)}</li>" for i in b[1]) + "\n</ul>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b[1])
            rows = "\n".join("  <tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                             for r in b[2])
            body.append(f"<table>\n  <tr>{head}</tr>\n{rows}\n</table>")
    rel = "\n".join(f'      <li><a href="/{site_slug}/{slug(r)}.html">{e(r)}</a></li>'
                    for site_slug in [slug(site)] for r in related)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} - {e(site)}</title>
<link rel="stylesheet" href="/static/wiki.css">
<style>
{STYLE}
</style>
<script>
  window.dataLayer = window.dataLayer || [];
  function track(page) {{ window.dataLayer.push({{event: "pageview", page: page, site: "{slug(site)}"}}); }}
  track("{page_id}");
</script>
</head>
<body>
<header>
  <nav class="top" aria-label="Main">
    <a href="/">Home</a> <a href="/{slug(site)}/">{e(site)}</a> <a href="/search">Search</a>
    <a href="/recent">Recent changes</a> <a href="/help">Help</a> <a href="/login">Log in</a>
  </nav>
</header>
<aside class="sidebar">
  <nav aria-label="Related pages">
    <h3>Related pages</h3>
    <ul>
{rel}
    </ul>
  </nav>
</aside>
<main>
<article>
<h1>{e(title)}</h1>
{chr(10).join(body)}
</article>
</main>
<footer>
  <p>This page is maintained in the {e(site)} wiki. <a href="/privacy">Privacy</a> &middot; <a href="/terms">Terms</a></p>
</footer>
<script src="/static/wiki.js" defer></script>
<script>
  document.querySelectorAll("table").forEach(function (t) {{ t.classList.add("striped"); }});
</script>
</body>
</html>
"""


class Doc:
    def __init__(self, shard, path, title, blocks, fmt, site="Wiki", related=()):
        self.shard, self.path, self.title, self.blocks = shard, path, title, blocks
        self.fmt, self.site, self.related = fmt, site, list(related)

    def rel(self):
        """The path as a node reports it: the shard directory, then the path inside it."""
        return f"shard-{self.shard}/{self.path}.{self.fmt}"

    def text(self):
        if self.fmt == "md":
            return render_md(self.title, self.blocks) + "\n"
        if self.fmt == "txt":
            return render_txt(self.title, self.blocks) + "\n"
        return render_html(self.title, self.blocks, self.site, self.related, slug(self.path))


# ---------------------------------------------------------------------------------------------
# Names and values, drawn without replacement so no two people share a surname and no two
# towns or pets of a group share a name.


class Pools:
    def __init__(self, rng):
        self.rng = rng
        self.surnames = [h + t for h in SURNAME_HEAD for t in SURNAME_TAIL]
        rng.shuffle(self.surnames)
        self.towns = [h + t for h in TOWN_HEAD for t in TOWN_TAIL]
        rng.shuffle(self.towns)
        self.pets = list(PETS)
        rng.shuffle(self.pets)
        self.used_values = {}

    def person(self):
        return f"{self.rng.choice(FIRST)} {self.surnames.pop()}"

    def surname(self):
        return self.surnames.pop()

    def town(self):
        return self.towns.pop()

    def pet(self):
        if not self.pets:
            self.pets = [p + suffix for p in PETS for suffix in [" Junior"]]
            self.rng.shuffle(self.pets)
        return self.pets.pop()

    def value(self, kind, lo, hi, step=1, avoid=()):
        """A number in [lo, hi] not yet used by any answer of `kind`, never below 11 (a bare
        `[3]` citation must not read as an answer), and not in `avoid` (numbers the question
        itself states)."""
        used = self.used_values.setdefault(kind, set())
        for _ in range(1000):
            v = self.rng.randrange(lo, hi + 1, step)
            if v >= 11 and v not in used and v not in avoid:
                used.add(v)
                return v
        raise SystemExit(f"no value left for {kind} in {lo}..{hi}")


def name_answers(full):
    return [full, full.split()[-1]]


def number_answers(n):
    return [str(n)] + ([f"{n:,}"] if n >= 1000 else [])


def fmt_for(g, m):
    """The file format of member m of group g: every format in every shard and kind, and not
    tied to which attribute is asked (that is `(g + m) % 3`)."""
    return ["md", "html", "txt"][(2 * g + m) % 3]


# ---------------------------------------------------------------------------------------------
# The six kinds. Each builder returns (docs, questions) for GROUPS groups of three twins: same
# kind of entity, names one character or word apart, different values, one twin per shard.
# A question is (shard, kind, prompt, answers, doc, key), where `key` lists token runs that
# name the entity (for the uniqueness check).

PRODUCT_PREFIX = ["ZX", "QM", "TR", "KV", "LP", "DX", "HB", "RN"]
PRODUCT_TYPE = ["controller", "gateway", "relay board", "sensor hub", "power module", "encoder",
                "valve driver", "signal bridge"]


def twin_codes(rng):
    d = rng.sample("123456789", 4)
    base = "".join(d)
    return [base, d[0] + d[1] + d[3] + d[2], d[0] + d[2] + d[1] + d[3]]


def products(rng, pools):
    docs, qs = [], []
    for g in range(GROUPS):
        prefix, kind = PRODUCT_PREFIX[g], PRODUCT_TYPE[g]
        codes = twin_codes(rng)
        order = list(range(3))
        rng.shuffle(order)
        for m, shard in enumerate(SHARDS):
            code = f"{prefix}-{codes[order[m]]}"
            entity = f"{code} {kind}"
            owner, backup = pools.person(), pools.person()
            rack = pools.value("product", 11, 98)
            temp = pools.value("product", 41, 89)
            site = rng.choice(["east", "west", "north"])
            blocks = [
                ("p", f"Inventory page for the {entity}, part of the {prefix} line of lab "
                      f"hardware. Keep this page current when the unit moves or changes hands."),
                ("h2", "Ownership"),
                ("p", f"The {entity} is maintained by {owner}. Questions about firmware, "
                      f"spares and repairs of the {code} go to {owner} first."),
                ("ul", [f"Maintainer: {owner}", f"Backup contact: {backup}",
                        f"Cost centre: {prefix}-OPS"]),
                ("h2", "Location and limits"),
                ("p", f"The {code} is installed in rack {rack} of the {site} server room."),
                ("table", ["Property", "Value"],
                 [["Rack", str(rack)], ["Room", f"{site} server room"],
                  ["Maximum operating temperature", f"{temp} °C"]]),
                ("p", f"Do not run the {entity} above {temp} °C; it throttles and then "
                      f"shuts down."),
            ]
            fmt = fmt_for(g, m)
            path = f"hardware/inventory/{slug(kind)}s/{code.lower()}"
            doc = Doc(shard, path, f"{entity}", blocks, fmt, site="Hardware inventory",
                      related=[f"{prefix}-{c} {kind}" for c in codes if f"{prefix}-{c}" != code][:1]
                      + ["Spare parts", "Server rooms"])
            docs.append(doc)
            attr = (g + m) % 3
            if attr == 0:
                q = (f"Who maintains the {entity}?" + JUST_NAME, name_answers(owner))
            elif attr == 1:
                q = (f"In which rack is the {entity} installed?" + JUST_NUMBER,
                     number_answers(rack))
            else:
                q = (f"What is the maximum operating temperature of the {entity}, in degrees "
                     f"Celsius?" + JUST_NUMBER, number_answers(temp))
            qs.append((shard, "product", q[0], q[1], doc, [code]))
    return docs, qs


TEAM_ANIMAL = ["Heron", "Otter", "Lynx", "Falcon", "Badger", "Marten", "Osprey", "Ibex"]
TEAM_AREA = ["platform", "data", "mobile"]


def teams(rng, pools):
    docs, qs = [], []
    for g in range(GROUPS):
        animal = TEAM_ANIMAL[g]
        areas = list(TEAM_AREA)
        rng.shuffle(areas)
        for m, shard in enumerate(SHARDS):
            team = f"{animal} {areas[m]} team"
            lead = pools.person()
            members = [pools.person() for _ in range(3)]
            room = pools.value("team", 101, 499)
            size = pools.value("team", 11, 60)
            ext = pools.value("team", 2000, 8999)
            blocks = [
                ("p", f"Welcome to the wiki page of the {team}. We own the {areas[m]} side "
                      f"of the {animal} programme."),
                ("h2", "People"),
                ("p", f"The {team} is led by {lead}. The {team} has {size} engineers."),
                ("ul", [f"Lead: {lead}"] + [f"Engineer: {p}" for p in members]
                 + [f"... and {size - 3} more engineers"]),
                ("h2", "Where to find us"),
                ("p", f"The {team} sits in room {room}. The on-call pager of the {team} "
                      f"is extension {ext}."),
                ("h2", "Rituals"),
                ("ul", ["Stand-up every weekday after lunch", "Demo on the last Friday of the "
                        "month", "Retro every second Wednesday"]),
            ]
            fmt = fmt_for(g, m)
            path = f"wiki/teams/{slug(animal)}/{slug(team)}"
            doc = Doc(shard, path, f"{team}", blocks, fmt, site="Team wiki",
                      related=["Team directory", "On-call handbook", f"{animal} programme"])
            docs.append(doc)
            attr = (g + m) % 3
            if attr == 0:
                q = (f"Who leads the {team}?" + JUST_NAME, name_answers(lead))
            elif attr == 1:
                q = (f"What room number does the {team} sit in?" + JUST_NUMBER,
                     number_answers(room))
            else:
                q = (f"How many engineers does the {team} have?" + JUST_NUMBER,
                     number_answers(size))
            qs.append((shard, "team", q[0], q[1], doc, [f"{animal} {areas[m]}"]))
    return docs, qs


# (device, brand, [(label in the manual, question, lo, hi, step, unit)] * 3)
DEVICES = [
    ("dehumidifier", "Aurelis", [
        ("default target humidity", "What is the default target humidity of the {e}, in percent?", 35, 60, 1, "%"),
        ("filter replacement interval", "After how many days should the filter of the {e} be replaced?", 30, 180, 1, "days"),
        ("auto-off timer", "After how many minutes does the auto-off timer of the {e} switch it off?", 15, 240, 5, "minutes"),
    ]),
    ("thermostat", "Calvora", [
        ("eco setpoint", "What is the eco setpoint of the {e}, in degrees Celsius?", 14, 21, 1, "°C"),
        ("display timeout", "After how many seconds does the display of the {e} turn off?", 15, 120, 1, "seconds"),
        ("holiday mode limit", "For how many days at most can the holiday mode of the {e} run?", 20, 99, 1, "days"),
    ]),
    ("label printer", "Printiq", [
        ("maximum label width", "What is the maximum label width of the {e}, in millimetres?", 38, 118, 1, "mm"),
        ("default darkness", "What is the default darkness level of the {e}?", 11, 30, 1, ""),
        ("sleep timer", "After how many minutes does the {e} go to sleep?", 11, 90, 1, "minutes"),
    ]),
    ("espresso machine", "Brevano", [
        ("brew temperature", "What is the brew temperature of the {e}, in degrees Celsius?", 86, 97, 1, "°C"),
        ("descaling interval", "After how many cups should the {e} be descaled?", 150, 900, 10, "cups"),
        ("default grind setting", "What is the default grind setting of the {e}?", 11, 40, 1, ""),
    ]),
    ("router", "Netsolo", [
        ("admin port", "On which port does the admin page of the {e} listen?", 8001, 9899, 1, ""),
        ("DHCP lease time", "How many hours is the DHCP lease time of the {e}?", 12, 96, 1, "hours"),
        ("default 5 GHz channel", "What is the default 5 GHz channel of the {e}?", 36, 165, 4, ""),
    ]),
    ("e-bike", "Voltrek", [
        ("assist speed limit", "What is the assist speed limit of the {e}, in km/h?", 20, 45, 1, "km/h"),
        ("battery capacity", "What is the battery capacity of the {e}, in watt-hours?", 400, 900, 5, "Wh"),
        ("recommended tyre pressure", "What is the recommended tyre pressure of the {e}, in psi?", 30, 65, 1, "psi"),
    ]),
    ("air purifier", "Purenest", [
        ("filter life", "How many hours does the filter of the {e} last?", 1200, 4800, 50, "hours"),
        ("night mode noise level", "What is the night mode noise level of the {e}, in decibels?", 18, 40, 1, "dB"),
        ("recommended room size", "What is the recommended room size of the {e}, in square metres?", 15, 95, 1, "m²"),
    ]),
    ("bread maker", "Kneadwell", [
        ("dough rise time", "How many minutes is the dough rise time of the {e}?", 40, 125, 1, "minutes"),
        ("keep-warm time", "How many minutes does the keep-warm phase of the {e} last?", 30, 90, 1, "minutes"),
        ("maximum flour load", "What is the maximum flour load of the {e}, in grams?", 450, 950, 5, "g"),
    ]),
]
MODELS = ["K5", "K7", "K9", "S3", "S4", "S8", "M2", "M6"]


def manuals(rng, pools):
    docs, qs = [], []
    for g, (device, brand, settings) in enumerate(DEVICES):
        series = rng.choice(["K", "S", "M", "T"])
        nums = rng.sample("23456789", 3)
        for m, shard in enumerate(SHARDS):
            model = f"{series}{nums[m]}"
            entity = f"{brand} {model} {device}"
            values = [pools.value(f"manual-{g}", lo, hi, step) for _, _, lo, hi, step, _ in settings]
            rows = [[label.capitalize(), f"{v} {unit}".strip()]
                    for (label, _, _, _, _, unit), v in zip(settings, values)]
            blocks = [
                ("p", f"User manual of the {entity}. Read it before first use and keep it "
                      f"with the device."),
                ("h2", "Safety"),
                ("ul", ["Keep the device away from water unless this manual says otherwise.",
                        "Unplug it before cleaning.", "Do not open the housing."]),
                ("h2", "Factory settings"),
                ("p", f"The {brand} {model} leaves the factory with these settings:"),
                ("table", ["Setting", "Value"], rows),
            ]
            for (label, _, _, _, _, unit), v in zip(settings, values):
                blocks.append(("p", f"The {label} of the {brand} {model} is {v} {unit}."
                               .replace(" .", ".").replace("  ", " ")))
            blocks += [
                ("h2", "Troubleshooting"),
                ("p", f"If the {device} does not start, check the plug and the fuse, then hold "
                      f"the power button for five seconds to reset it."),
            ]
            fmt = fmt_for(g, m)
            path = f"manuals/{slug(brand)}/{slug(device)}/{slug(model)}-manual"
            doc = Doc(shard, path, f"{entity}: user manual", blocks, fmt, site="Manuals",
                      related=[f"{brand} support", f"{device.capitalize()} buying guide"])
            docs.append(doc)
            attr = (g + m) % 3
            question = settings[attr][1].format(e=entity)
            qs.append((shard, "manual", question + JUST_NUMBER, number_answers(values[attr]),
                       doc, [f"{brand} {model}"]))
    return docs, qs


# (dish, main ingredient, other ingredients, counts in "pieces" or "portions")
DISHES = [
    ("plum dumplings", "plums", ["flour", "butter", "sugar"], "dumplings"),
    ("saffron buns", "flour", ["milk", "butter", "raisins"], "buns"),
    ("lentil pie", "lentils", ["onions", "carrots", "pastry"], "portions"),
    ("walnut bread", "walnuts", ["flour", "honey", "yeast"], "slices"),
    ("beetroot soup", "beetroot", ["potatoes", "dill", "cream"], "portions"),
    ("apricot tart", "apricots", ["pastry", "almonds", "sugar"], "slices"),
    ("chickpea stew", "chickpeas", ["tomatoes", "spinach", "cumin"], "portions"),
    ("poppy seed roll", "poppy seeds", ["flour", "milk", "lemon zest"], "slices"),
]
def recipes(rng, pools):
    docs, qs = [], []
    firsts = rng.sample(FIRST, GROUPS * 3)
    for g, (dish, main, others, unit) in enumerate(DISHES):
        for m, shard in enumerate(SHARDS):
            cook = firsts[3 * g + m]
            entity = f"{cook}'s {dish}"
            grams = pools.value("recipe", 200, 950, 5)
            minutes = pools.value("recipe", 50, 140)
            count = pools.value("recipe", 11, 48)
            extra = [f"{rng.randrange(2, 10) * 25} g {o}" for o in others]
            blocks = [
                ("p", f"{entity}, from the family cookbook, written down the way {cook} makes "
                      f"them at every family gathering."),
                ("h2", "Ingredients"),
                ("ul", [f"{grams} g {main}"] + extra + ["a pinch of salt"]),
                ("p", f"The recipe for {entity} takes {grams} grams of {main}."),
                ("h2", "Method"),
                ("ul", ["Prepare the ingredients and preheat the oven.",
                        f"Combine everything, starting with the {main}.",
                        f"Cook for {minutes} minutes.", "Let it rest before serving."]),
                ("p", f"The cooking time of {entity} is {minutes} minutes in all. "
                      f"The recipe for {entity} makes {count} {unit}."),
            ]
            fmt = fmt_for(g, m)
            path = f"recipes/{slug(dish)}/{slug(cook)}"
            doc = Doc(shard, path, entity, blocks, fmt, site="Family recipes",
                      related=["Weekly meal plan", "Pantry"])
            docs.append(doc)
            attr = (g + m) % 3
            if attr == 0:
                q = (f"How many grams of {main} go into {entity}?" + JUST_NUMBER,
                     number_answers(grams))
            elif attr == 1:
                q = (f"How many minutes is the cooking time of {entity}?" + JUST_NUMBER,
                     number_answers(minutes))
            else:
                q = (f"How many {unit} does the recipe for {entity} make?" + JUST_NUMBER,
                     number_answers(count))
            qs.append((shard, "recipe", q[0], q[1], doc, [cook, dish]))
    return docs, qs


RELATIONS = ["cousin", "second cousin", "godparent", "in-law", "sibling", "grandparent",
             "step-cousin", "neighbour"]


def family(rng, pools):
    docs, qs = [], []
    firsts = rng.sample(FIRST, GROUPS)
    for g in range(GROUPS):
        first = firsts[g]
        rels = rng.sample(RELATIONS, 3)
        for m, shard in enumerate(SHARDS):
            full = f"{first} {pools.surname()}"
            who = f"{rels[m]} {full}"
            town, pet, species = pools.town(), pools.pet(), rng.choice(SPECIES)
            year = pools.value("family", 1931, 2012)
            blocks = [
                ("p", f"Family wiki page about {who}. Add photos and stories below."),
                ("h2", "Facts"),
                ("ul", [f"Born: {year}", f"Lives in: {town}", f"Pet: a {species} called {pet}"]),
                ("p", f"{full} was born in {year}. {full} lives in {town}, with a {species} "
                      f"called {pet}."),
                ("h2", "Stories"),
                ("p", f"Everyone remembers the summer {first} fixed the old boat with nothing "
                      f"but rope and patience."),
            ]
            fmt = fmt_for(g, m)
            path = f"family/people/{slug(first)}/{slug(full)}"
            doc = Doc(shard, path, f"{full} ({rels[m]})", blocks, fmt, site="Family wiki",
                      related=["Family tree", "Birthdays"])
            docs.append(doc)
            attr = (g + m) % 3
            if attr == 0:
                q = (f"In which town does {who} live?" + JUST_NAME, [town])
            elif attr == 1:
                q = (f"In which year was {who} born?" + JUST_NUMBER, [str(year)])
            else:
                q = (f"What is the name of {who}'s {species}?" + JUST_NAME, [pet])
            qs.append((shard, "family", q[0], q[1], doc, [full]))
    return docs, qs


SERIES = ["Infra sync", "Billing review", "Mobile guild", "Data council", "Security stand-up",
          "Release planning", "Support retro", "Facilities check-in"]
TOPICS = ["rotate the API keys", "migrate the billing database", "renew the TLS certificates",
          "update the runbook", "archive the old dashboards", "test the backup restore",
          "order replacement laptops", "clean up the staging cluster", "review the vendor "
          "contract", "write the incident summary", "plan the office move", "audit the access "
          "lists", "upgrade the load balancers", "document the release checklist",
          "book the training room", "triage the support backlog"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def meetings(rng, pools):
    docs, qs = [], []
    for g, series in enumerate(SERIES):
        shared = TOPICS[g]
        months = rng.sample(range(12), 3)
        for m, shard in enumerate(SHARDS):
            day = rng.randrange(2, 29)
            date = f"{day} {MONTHS[months[m]]} 2026"
            others = rng.sample([t for t in TOPICS if t != shared], 2)
            topics = [shared] + others
            rng.shuffle(topics)
            owners = {t: pools.person() for t in topics}
            attendees = list(owners.values()) + [pools.person()]
            rng.shuffle(attendees)
            budget = pools.value("meeting", 1200, 48000, 50)
            week = pools.value("meeting", 11, 52, avoid=(day,))
            blocks = [
                ("p", f"Notes of the {series} on {date}. Attendees: {', '.join(attendees)}."),
                ("h2", "Decisions"),
                ("ul", [f"A budget of {budget:,} euros was approved for the {series.lower()} "
                        f"work this quarter.", f"The next milestone is due in week {week}."]),
                ("h2", "Actions"),
                ("p", f"Actions from the {series} on {date}:"),
                ("ul", [f"{owners[t]} will {t}." for t in topics]),
                ("h2", "Next meeting"),
                ("p", "Same time in two weeks; agenda items to the shared document."),
            ]
            fmt = fmt_for(g, m)
            path = (f"notes/{slug(series)}/2026-{months[m] + 1:02}-{day:02}-"
                    f"{slug(series)}")
            doc = Doc(shard, path, f"{series}, {date}", blocks, fmt, site="Meeting notes",
                      related=[f"{series} (all notes)", "Action tracker"])
            docs.append(doc)
            attr = (g + m) % 3
            when = f"the {series} on {date}"
            if attr == 0:
                q = (f"At {when}, who took the action to {shared}?" + JUST_NAME,
                     name_answers(owners[shared]))
            elif attr == 1:
                q = (f"At {when}, how many euros of budget were approved?" + JUST_NUMBER,
                     number_answers(budget))
            else:
                q = (f"At {when}, in which week was the next milestone due?" + JUST_NUMBER,
                     number_answers(week))
            qs.append((shard, "meeting", q[0], q[1], doc, [series, date]))
    return docs, qs


# ---------------------------------------------------------------------------------------------
# Filler: files that answer nothing. Some mention the entities of the questions without the
# asked facts (release notes, directories, calendars); numbers in them stay below 11.

WORDS = ("review deploy checklist weekly backlog sprint handover budget quarterly roadmap "
         "customer feedback pipeline staging release audit vendor contract laptop badge office "
         "parking kitchen coffee garden tomatoes basil compost watering hedge ladder paint "
         "curtains bookshelf novel chapter author holiday ferry luggage passport sunscreen "
         "hiking trail picnic lantern tent kettle blanket schedule reminder invoice receipt "
         "printer toner cable monitor keyboard headset meeting agenda minutes template wiki "
         "search index archive folder draft proposal summary incident outage latency alert "
         "dashboard metric threshold rollback hotfix migration certificate password vault").split()
SENTENCES = [
    "We agreed to {w} the {w} before the next {w}.",
    "Remember to bring the {w} and the {w} on Saturday.",
    "The {w} was moved to the shared folder, next to the {w}.",
    "Nobody remembers who last updated the {w}, so please check the {w} first.",
    "If the {w} fails again, open a ticket and attach the {w}.",
    "The new {w} looks fine, but the {w} still needs a second pair of eyes.",
    "Keep the {w} short; long {w} pages are never read.",
    "The {w} goes in the cupboard under the stairs, the {w} in the garage.",
    "A reminder: the {w} is due at the end of the month, together with the {w}.",
    "Thanks to everyone who helped with the {w} and the {w} this week.",
    "Questions about the {w} go to the team channel, not to private messages.",
    "We tried a different {w} this time and the {w} went much better.",
]


def prose(rng, n):
    out = []
    for _ in range(n):
        s = rng.choice(SENTENCES)
        while "{w}" in s:
            s = s.replace("{w}", rng.choice(WORDS), 1)
        out.append(s)
    return " ".join(out)


TAGS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath", "inlet", "juniper",
        "kestrel", "larch"]


def filler(rng, shard, i, entities):
    """The i-th filler file of `shard`. `entities` holds names from every kind, for mentions."""
    kind = i % 12
    fmt = ["md", "txt", "html"][(i // 12 + i) % 3]
    # A tag without digits: numbers in filler could collide with answers.
    n = f"{TAGS[i % len(TAGS)]}-{TAGS[i // len(TAGS)]}"
    if kind == 0:
        codes = rng.sample(entities["product"], 6)
        blocks = [("p", "Changes to the lab hardware firmware in this release.")]
        blocks += [("h2", "Fixed"), ("ul", [f"{c}: {rng.choice(['watchdog reset after a brown-out', 'wrong LED colour in standby', 'slow start after an update', 'log rotation', 'a typo in the status page'])}" for c in codes[:3]])]
        blocks += [("h2", "Known issues"), ("ul", [f"{c}: {prose(rng, 1)}" for c in codes[3:]])]
        return Doc(shard, f"hardware/releases/release-notes-{n}", f"Firmware release notes {shard.upper()}-{n}", blocks, fmt, site="Hardware inventory")
    if kind == 1:
        ts = rng.sample(entities["team"], 6)
        blocks = [("p", "Where to reach each team. For leads, rooms and head counts see each team's own page."),
                  ("table", ["Team", "Chat channel"], [[t, "#" + slug(t)] for t in ts])]
        return Doc(shard, f"wiki/directory/teams-{n}", f"Team directory (part {n})", blocks, fmt, site="Team wiki")
    if kind == 2:
        ps = rng.sample(entities["family"], 4)
        events = ["picnic at the lake", "board game night", "garden clean-up", "choir concert", "bike trip"]
        blocks = [("p", "Family calendar. Add events with the family's group chat bot."),
                  ("ul", [f"{p}: {rng.choice(events)}, {rng.choice(['next Saturday', 'Sunday afternoon', 'the first weekend of the month', 'some evening next week'])}" for p in ps]),
                  ("p", prose(rng, 3))]
        return Doc(shard, f"family/calendar/events-{n}", f"Family calendar notes {n}", blocks, fmt, site="Family wiki")
    if kind == 3:
        ms = rng.sample(entities["manual"], 3)
        blocks = [("p", "Common support questions across our devices."),
                  ("h2", "The device does not turn on"),
                  ("p", f"Applies to the {ms[0]} and similar models: hold the power button for five seconds, then plug it in again."),
                  ("h2", "Resetting to factory settings"),
                  ("p", f"On the {ms[1]} and the {ms[2]}, press the two front buttons together for ten seconds. The factory values are listed in each manual."),
                  ("p", prose(rng, 2))]
        return Doc(shard, f"manuals/support/faq-{n}", f"Device support FAQ {n}", blocks, fmt, site="Manuals")
    if kind == 4:
        rs = rng.sample(entities["recipe"], 5)
        days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
        blocks = [("p", "This week's meal plan; quantities are in each recipe."),
                  ("table", ["Day", "Dish"], [[d, r] for d, r in zip(days, rs)]),
                  ("h2", "Shopping"), ("ul", ["flour", "eggs", "butter", "seasonal fruit", "oat milk"])]
        return Doc(shard, f"recipes/plans/meal-plan-{n}", f"Meal plan {n}", blocks, fmt, site="Family recipes")
    if kind == 5:
        s = rng.choice(SERIES)
        blocks = [("p", f"Agenda for the upcoming {s}. Add items below the line."),
                  ("ul", [prose(rng, 1) for _ in range(4)]),
                  ("p", "Actions and decisions are recorded in the notes after the meeting, not here.")]
        return Doc(shard, f"notes/agendas/{slug(s)}-agenda-{n}", f"{s}: agenda draft {n}", blocks, fmt, site="Meeting notes")
    # Plain filler without any entity.
    topics = [("handbook", "Engineering handbook", 9), ("garden", "Garden journal", 4),
              ("travel", "Packing list for the coast", 3), ("books", "Book club notes", 4),
              ("office", "Office FAQ", 5), ("style", "Writing style guide", 6)]
    key, title, sections = topics[kind - 6]
    blocks = []
    for s in range(sections):
        blocks.append(("h2", f"{rng.choice(WORDS).capitalize()} and {rng.choice(WORDS)}"))
        blocks.append(("p", prose(rng, rng.randrange(3, 8))))
        if s % 2:
            blocks.append(("ul", [prose(rng, 1) for _ in range(3)]))
    sub = {"handbook": "wiki/handbook", "garden": "family/garden", "travel": "family/travel",
           "books": "misc/books", "office": "wiki/office", "style": "wiki/style"}[key]
    return Doc(shard, f"{sub}/{key}-{n}", f"{title} ({n})", blocks, fmt,
               site={"wiki": "Team wiki", "family": "Family wiki", "misc": "Notes"}[sub.split("/")[0]])


# ---------------------------------------------------------------------------------------------


def build():
    """Every document and every question, deterministically."""
    rng = random.Random(SEED)
    pools = Pools(rng)
    docs, raw = [], []
    for builder in [products, teams, manuals, recipes, family, meetings]:
        d, q = builder(rng, pools)
        docs += d
        raw += q
    entities = {k: [d.title.split(":")[0].split(" (")[0] for d, kd in
                    ((q[4], q[1]) for q in raw) if kd == k] for k in KINDS}
    for shard in SHARDS:
        for i in range(FILLER_PER_SHARD):
            docs.append(filler(rng, shard, i, entities))
    paths = [d.rel() for d in docs]
    if len(set(paths)) != len(paths):
        raise SystemExit("two documents share a path")
    questions = []
    for shard in SHARDS:
        mine = [q for q in raw if q[0] == shard]
        for n, (_, kind, prompt, answers, doc, key) in enumerate(mine, 1):
            questions.append({"id": f"docqa-{shard}-{n:03}", "kind": kind, "prompt": prompt,
                              "answers": answers, "source": doc.rel(), "_key": key})
    check(docs, questions)
    for q in questions:
        del q["_key"]
    # Shards interleaved (a-001, b-001, c-001, a-002, ..), so `nova eval --limit` samples every
    # shard as well as every kind.
    questions.sort(key=lambda q: (q["id"][len("docqa-x-"):], q["id"]))
    return docs, questions


def terms(text):
    """Runs of letters or of digits, lower-cased (how the grader splits an answer), of the text
    with styles, scripts and tags dropped (the CSS numbers of every page are no answer)."""
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]*>", " ", text)
    return re.findall(r"[a-z]+|[0-9]+", html.unescape(text).lower().replace(",", ""))


def contains(hay, needle):
    """Whether the term list `needle` occurs as a run in the term list `hay`."""
    return bool(needle) and f" {' '.join(needle)} " in f" {' '.join(hay)} "


def check(docs, questions):
    """Every question is answered by exactly one file: its source names the entity and states
    an accepted answer; no other file names the entity together with an accepted answer; and
    the question itself states none (a model repeating it would score)."""
    texts = {d.rel(): terms(d.text()) for d in docs}
    for q in questions:
        if any(contains(terms(q["prompt"]), terms(a)) for a in q["answers"]):
            raise SystemExit(f"{q['id']}: the prompt states an accepted answer")
        keys = [terms(k) for k in q["_key"]]
        ans = [terms(a) for a in q["answers"]]
        hits = [p for p, t in texts.items()
                if all(contains(t, k) for k in keys) and any(contains(t, a) for a in ans)]
        if hits != [q["source"]]:
            raise SystemExit(f"{q['id']}: answered by {hits}, expected only {q['source']}")


def write_corpus(out):
    docs, _ = build()
    os.makedirs(out, exist_ok=True)
    marker = os.path.join(out, MARKER)
    shards = [os.path.join(out, f"shard-{s}") for s in SHARDS]
    if any(os.path.exists(s) for s in shards) and not os.path.exists(marker):
        raise SystemExit(f"{out} has shard directories this generator did not write; "
                         f"refusing to replace them")
    for s in shards:
        if os.path.exists(s):
            shutil.rmtree(s)
    with open(marker, "w", encoding="utf-8", newline="\n") as f:
        f.write("written by evals/docqa/gen_docqa.py corpus\n")
    total = 0
    for d in docs:
        p = os.path.join(out, d.rel())
        os.makedirs(os.path.dirname(p), exist_ok=True)
        data = d.text().encode("utf-8")
        with open(p, "wb") as f:
            f.write(data)
        total += len(data)
    per = {s: sum(1 for d in docs if d.shard == s) for s in SHARDS}
    print(f"{len(docs)} files, {total} bytes: " + ", ".join(f"shard-{s} {n}" for s, n in per.items()),
          file=sys.stderr)


def write_questions(out):
    _, questions = build()
    for q in questions:
        out.write(json.dumps(q, ensure_ascii=False) + "\n")


def write_bulk(out, n):
    """`n` plain-text files of filler prose with made-up codes (about 4 KiB each, 1-8 KiB),
    100 per directory."""
    rng = random.Random(BULK_SEED)
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        d = os.path.join(out, f"d{i // 100:03}")
        os.makedirs(d, exist_ok=True)
        parts = [f"Note {i}", ""]
        for _ in range(rng.randrange(3, 11)):
            code = f"{rng.choice(PRODUCT_PREFIX)}-{rng.randrange(1000, 9999)}"
            parts += [f"{rng.choice(WORDS).capitalize()} {code}", "",
                      prose(rng, rng.randrange(4, 13)), ""]
        with open(os.path.join(d, f"note-{i:05}.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(parts))


def main(argv):
    usage = "usage: gen_docqa.py corpus OUT_DIR | questions | bulk OUT_DIR N"
    if len(argv) == 2 and argv[0] == "corpus":
        write_corpus(argv[1])
    elif len(argv) == 1 and argv[0] == "questions":
        write_questions(sys.stdout)
    elif len(argv) == 3 and argv[0] == "bulk" and argv[2].isdigit():
        write_bulk(argv[1], int(argv[2]))
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
