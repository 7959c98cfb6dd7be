#!/usr/bin/env python3
"""Checks examples/types/fred.ts against a live database with fred installed.

  python3 .ci/fred-types-check.py <database> [types.ts]

Reads with psql (PGHOST/PGPORT/PGUSER from the environment):
  - the columns of fred.coaching_sessions: name, type, NOT NULL, and the values a CHECK allows;
  - the input arguments of public.fred_* functions, and which have defaults.
Then compares them with `FredSession` and the `Database` type's Functions:
  - every column is a field and every field a column (so an added or renamed column fails);
  - each field's TypeScript type suits the Postgres type (uuid/text/timestamptz: string or a union
    of string literals; integer/bigint/numeric: number; boolean: boolean; jsonb: not a primitive);
  - `| null` exactly when the column is nullable;
  - a column whose CHECK lists its values is typed as exactly that union;
  - every fred_* function has an entry whose Args are some overload's argument names, optional
    exactly when the SQL argument has a default.
Prints one line per check and 'N passed, N failed'; exits 1 on any failure.
"""
import json
import re
import subprocess
import sys

db = sys.argv[1]
ts_path = sys.argv[2] if len(sys.argv) > 2 else "examples/types/fred.ts"

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok      {what}")
    else:
        failed += 1
        print(f"FAILED  {what}" + (f": {detail}" if detail else ""))


def sql_json(query):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query],
                         check=True, capture_output=True, text=True).stdout.strip()
    return json.loads(out or "null") or []


columns = sql_json("""
select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                                  'notnull', a.attnotnull) order by a.attnum)
from pg_attribute a
where a.attrelid = 'fred.coaching_sessions'::regclass and a.attnum > 0 and not a.attisdropped
""")
checks = sql_json("""
select json_agg(pg_get_constraintdef(c.oid))
from pg_constraint c where c.conrelid = 'fred.coaching_sessions'::regclass and c.contype = 'c'
""")
functions = sql_json("""
select json_agg(json_build_object(
         'name', p.proname,
         'args', coalesce((select array_agg(n order by i)
                           from unnest(p.proargnames) with ordinality as u(n, i)
                           where p.proargmodes is null or p.proargmodes[i] in ('i', 'b', 'v')), '{}'),
         'nargs', p.pronargs, 'ndefaults', p.pronargdefaults))
from pg_proc p
where p.pronamespace = 'public'::regnamespace and p.proname like 'fred\\_%'
""")

# Allowed values from CHECKs of the form: ((col = ANY (ARRAY['a'::text, ...]))) or (col = 'a').
allowed = {}
for d in checks:
    m = re.match(r"CHECK \(+\(?(\w+) = ANY \(+ARRAY\[(.*?)\]", d)
    if m:
        allowed[m.group(1)] = set(re.findall(r"'((?:[^']|'')*)'::", m.group(2)))

src = open(ts_path, encoding="utf-8").read()
src_nc = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
src_nc = re.sub(r"//[^\n]*", "", src_nc)


def block_after(text, start):
    """The text inside the braces that open at or after `start`."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    raise ValueError("unbalanced braces")


def top_level(text, sep):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{[(<":
            depth += 1
        elif ch in "}])>":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def members(body):
    out = {}
    for part in top_level(body, ";"):
        m = re.match(r"(\w+)(\??)\s*:\s*(.*)$", part, re.S)
        if m:
            out[m.group(1)] = (m.group(2) == "?", " ".join(m.group(3).split()))
    return out


aliases = {m.group(1): " ".join(m.group(2).split())
           for m in re.finditer(r"export type (\w+)\s*=\s*(.*?);", src_nc, re.S)}


def union(t):
    return [p for p in (x.strip() for x in top_level(t, "|")) if p]


def resolve(parts, seen=()):
    out = []
    for p in parts:
        if p in aliases and p not in seen and not aliases[p].startswith("{"):
            out += resolve(union(aliases[p]), seen + (p,))
        else:
            out.append(p)
    return out


m = re.search(r"export interface FredSession\s*\{", src_nc)
check(m, "fred.ts: interface FredSession found")
fields = members(block_after(src_nc, m.start())) if m else {}
cols = {c["name"]: c for c in columns}
check(cols, "database: fred.coaching_sessions has columns", db)

missing = [c for c in cols if c not in fields]
extra = [f for f in fields if f not in cols]
check(not missing, f"FredSession has every column of fred.coaching_sessions ({len(cols)})",
      "missing: " + ", ".join(missing))
check(not extra, "FredSession has no field that is not a column", "not columns: " + ", ".join(extra))
check(list(fields) == [c for c in cols if c in fields], "FredSession lists the fields in column order",
      " ".join(fields))

STRING = ("uuid", "text", "character varying", "timestamp with time zone", "timestamp without time zone",
          "date", "time", "interval", "inet", "citext", "character", "bytea")
NUMBER = ("integer", "bigint", "smallint", "numeric", "real", "double precision")
for name, col in cols.items():
    if name not in fields:
        continue
    optional, ts = fields[name]
    parts = resolve(union(ts))
    nullable = "null" in parts
    base = [p for p in parts if p != "null"]
    pgtype = col["type"]
    check(not optional, f"{name}: not optional (PostgREST always returns every column)")
    check(nullable == (not col["notnull"]), f"{name}: '| null' matches {'NOT NULL' if col['notnull'] else 'nullable'}",
          ts)
    literals = [p for p in base if re.fullmatch(r"'[^']*'", p)]
    if pgtype.split("(")[0] in STRING:
        ok = base == ["string"] or (literals and len(literals) == len(base))
        check(ok, f"{name}: {pgtype} is a string", ts)
    elif pgtype.split("(")[0] in NUMBER:
        check(base == ["number"], f"{name}: {pgtype} is a number", ts)
    elif pgtype == "boolean":
        check(base == ["boolean"], f"{name}: boolean", ts)
    elif pgtype in ("jsonb", "json"):
        check(base and not set(base) & {"string", "number", "boolean"}, f"{name}: {pgtype} is JSON", ts)
    else:
        check(False, f"{name}: no TypeScript mapping for {pgtype}", "extend .ci/fred-types-check.py")
    if name in allowed:
        got = {p[1:-1] for p in literals}
        check(got == allowed[name] and len(literals) == len(base),
              f"{name}: the union is the CHECK's values ({len(allowed[name])})",
              f"database {sorted(allowed[name])} vs types {sorted(got)}")

# --- the RPCs' arguments -----------------------------------------------------------------------
fm = re.search(r"Functions:\s*\{", src_nc)
check(fm, "fred.ts: Database['public']['Functions'] found")
ts_funcs = {}
if fm:
    body = block_after(src_nc, fm.start())
    for part in top_level(body, ";"):
        mm = re.match(r"(\w+)\s*:\s*\{", part)
        if mm:
            inner = block_after(part, 0)
            am = re.search(r"Args\s*:\s*\{", inner)
            ts_funcs[mm.group(1)] = members(block_after(inner, am.start())) if am else {}
sql_funcs = {}
for f in functions:
    sql_funcs.setdefault(f["name"], []).append(f)
check(set(ts_funcs) == set(sql_funcs), "Database: Functions are exactly the public fred_* functions",
      f"database {sorted(sql_funcs)} vs types {sorted(ts_funcs)}")
for name, overloads in sorted(sql_funcs.items()):
    if name not in ts_funcs:
        continue
    args = ts_funcs[name]
    want = {a: opt for a, (opt, _) in args.items()}
    sigs = []
    for o in overloads:
        n, nd = o["nargs"], o["ndefaults"]
        sigs.append({a: i >= n - nd for i, a in enumerate(o["args"])})
    check(want in sigs, f"{name}: Args match a SQL signature (names; optional = has a default)",
          f"types {want} vs database {sigs}")
    widest = max(sigs, key=len)
    check(set(want) == set(widest), f"{name}: Args cover the widest overload's arguments",
          f"types {sorted(want)} vs database {sorted(widest)}")

print(f"fred-types: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
