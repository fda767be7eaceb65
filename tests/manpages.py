#!/usr/bin/env python3
"""manpages.py - the manual pages document what the code has (TAP).

Fails when a key of the configuration key table (src/cfg.c) has no entry in
pushmail.conf(5), or when an option of the command-line tables (src/cli.c:
sendmail letters, -b modes, long options) is missing from pushmail(1): every
sendmail letter and -b mode must be a row of the sendmail option table, every
long option must be named in the page.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taplib as t  # noqa: E402

SRC = os.environ.get("TESTS_SRCDIR") or os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(SRC)


def read(*parts):
    with open(os.path.join(TOP, *parts), encoding="utf-8") as f:
        return f.read()


def plain(roff):
    """roff source -> text: font escapes dropped, \\- as -, quotes removed."""
    s = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\\(dq|\\e", "", roff)
    return s.replace("\\-", "-").replace('"', " ")


def table_block(src, start, end):
    i = src.find(start)
    j = src.find(end, i + 1)
    return src[i:j] if i >= 0 and j > i else ""


def config_keys(cfg_c):
    block = table_block(cfg_c, "static const struct keydef keys[", "};")
    return re.findall(r'\[K_\w+\]\s*=\s*\{\s*"([a-z_]+)"', block)


def cli_options(cli_c):
    letters = re.findall(r"\{ '(.)', ARG_\w+, A_\w+ \}",
                         table_block(cli_c, "static const struct letter letters[]", "};"))
    modes = re.findall(r'\{ "(\w+)", MODE_\w+ \}',
                       table_block(cli_c, "b_modes[] = {", "};"))
    longs = re.findall(r'\{ "([a-z-]+)", L_\w+',
                       table_block(cli_c, "static const struct long_opt long_opts[]", "};"))
    return letters, modes, longs


def documented_keys(man):
    """Keys named in a .TP entry's tag line of pushmail.conf(5)."""
    lines = man.splitlines()
    out = set()
    for i, line in enumerate(lines[:-1]):
        if line.startswith(".TP"):
            out.update(re.findall(r"[a-z_]+", plain(lines[i + 1])))
    return out


def table_options(man):
    """First cells of the rows of every tbl table in pushmail(1), split
    into the options they name ("-o x value" -> "-o")."""
    out = set()
    for block in re.findall(r"^\.TS\n(.*?)^\.TE", man, re.S | re.M):
        for row in block.splitlines():
            if "|" not in row:
                continue
            cell = plain(row.split("|", 1)[0])
            out.update(w for w in re.split(r"[\s,]+", cell) if w.startswith("-"))
    return out


def main():
    cfg_c, cli_c = read("src", "cfg.c"), read("src", "cli.c")
    conf5, man1 = read("man", "pushmail.conf.5"), read("man", "pushmail.1")

    keys = config_keys(cfg_c)
    t.ok(len(keys) > 20, "the key table of src/cfg.c was found (%d keys)" % len(keys))
    doc = documented_keys(conf5)
    for k in keys:
        t.ok(k in doc, "pushmail.conf(5) documents key %s" % k)

    letters, modes, longs = cli_options(cli_c)
    t.ok(len(letters) > 15 and modes and len(longs) > 10,
         "the option tables of src/cli.c were found (%d letters, %d -b modes, "
         "%d long options)" % (len(letters), len(modes), len(longs)))
    rows = table_options(man1)
    for c in letters:
        t.ok(any(w == "-" + c or (w.startswith("-" + c) and c in "bABoqVX") for w in rows),
             "pushmail(1) option table has a row for -%s" % c, "rows: %s" % sorted(rows))
    for m in modes:
        t.ok("-b" + m in rows, "pushmail(1) option table has a row for -b%s" % m)
    text = plain(man1)
    for name in longs:
        t.ok(re.search(r"--%s\b" % re.escape(name), text),
             "pushmail(1) documents --%s" % name)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
