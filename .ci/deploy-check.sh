#!/usr/bin/env bash
# Checks the deployment recipes without a container engine and without building anything:
#   Dockerfile + .dockerignore, deploy/healthcheck.sh, deploy/syncd.service,
#   deploy/docker-compose.yml + deploy/Caddyfile, deploy/fly.toml, deploy/render.yaml.
# What it proves: every path the recipes copy or mount exists (and is not excluded from the build
# context); the binary they name is the [[bin]] that `cargo build --release -p syncd` produces; the
# builder's toolchain is the workspace's; every variable they set is one syncd reads and one
# .env.example documents; the spool directory is the declared volume/disk/state directory
# everywhere; the ports agree; the health check script answers 0 only on HTTP 200; the unit passes
# `systemd-analyze verify` (where systemd-analyze exists). Not proven here: that the image builds
# and runs (no container engine), that Caddy accepts its file, and the platforms' own schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
# Prefer a Python with PyYAML; fall back to any python3 (then the compose check is a simple one).
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import tomllib' 2>/dev/null; then
    PY=$p
    "$p" -c 'import yaml' 2>/dev/null && break
  fi
done

# systemd-analyze verify: the unit with its binary swapped for a stub (no build needed); any
# warning counts as a failure, because verify itself exits 0 on unknown keys.
VERIFY_OUT=skip
if command -v systemd-analyze >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '#!/bin/sh\nexit 0\n' >"$tmp/syncd"
  chmod +x "$tmp/syncd"
  sed "s#/usr/local/bin/syncd#$tmp/syncd#g" deploy/syncd.service >"$tmp/syncd.service"
  if out=$(systemd-analyze verify "$tmp/syncd.service" 2>&1); then
    VERIFY_OUT=${out:-ok}
  else
    VERIFY_OUT="exit $?: $out"
  fi
fi
export VERIFY_OUT

exec "$PY" - <<'PY'
import fnmatch, glob, http.server, json, os, re, shlex, subprocess, sys, threading
try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None
try:
    import yaml
except ImportError:
    yaml = None

passed = failed = skipped = 0
def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok      {what}")
    else:
        failed += 1
        print(f"FAILED  {what}" + (f": {detail}" if detail else ""))
def skip(what, why):
    global skipped
    skipped += 1
    print(f"skipped {what}: {why}")

def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()

# --- what syncd is: package, binary, toolchain, variables ------------------------------------
def load_toml(p):
    if tomllib:
        with open(p, "rb") as f:
            return tomllib.load(f)
    return None

ws = load_toml("Cargo.toml")
if ws is not None:
    members = ws["workspace"]["members"]
    rust_version = ws["workspace"]["package"]["rust-version"]
else:
    members = re.findall(r'"([^"]+)"', re.search(r"members\s*=\s*\[([^\]]*)\]", read("Cargo.toml")).group(1))
    rust_version = re.search(r'rust-version\s*=\s*"([^"]+)"', read("Cargo.toml")).group(1)

packages = {}  # package name -> (dir, [bin names])
for m in members:
    text = read(os.path.join(m, "Cargo.toml"))
    if tomllib:
        man = tomllib.loads(text)
        name = man["package"]["name"]
        bins = [b["name"] for b in man.get("bin", [])]
        if not bins and os.path.exists(os.path.join(m, "src/main.rs")):
            bins = [name]
    else:
        name = re.search(r'\[package\][^\[]*?name\s*=\s*"([^"]+)"', text, re.S).group(1)
        bins = re.findall(r'\[\[bin\]\][^\[]*?name\s*=\s*"([^"]+)"', text, re.S) or [name]
    packages[name] = (m, bins)

env_example = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", read(".env.example"), re.M))
syncd_src = "".join(read(p) for p in glob.glob("syncd/src/**/*.rs", recursive=True))
def env_known(keys, where):
    keys = sorted(set(keys))
    missing_ex = [k for k in keys if k not in env_example]
    check(not missing_ex, f"{where}: variables are documented in .env.example ({len(keys)})",
          "not in .env.example: " + ", ".join(missing_ex))
    unread = [k for k in keys if f'"{k}"' not in syncd_src and k != "RUST_LOG"]
    check(not unread, f"{where}: variables are ones syncd reads", "not read by syncd/src: " + ", ".join(unread))

def port_of(listen):
    return int(listen.rsplit(":", 1)[1])

# --- Dockerfile --------------------------------------------------------------------------------
df_text = read("Dockerfile")
# Join continuation lines, drop comments.
lines, cur = [], ""
for raw in df_text.splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append(cur + s)
    cur = ""
instrs = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
def instr(name):
    return [a for i, a in instrs if i == name]

ignore = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.strip().startswith("#")]
def ignored(path):
    verdict = False
    for pat in ignore:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        cands = [p] if not p.startswith("**/") else [p, p[3:]]
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), c) for c in cands for i in range(1, len(parts) + 1))
        if p.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(seg, p[3:]) for seg in parts)
        if hit:
            verdict = not neg
    return verdict

copies = []
for a in instr("COPY"):
    toks = shlex.split(a)
    flags = [t for t in toks if t.startswith("--")]
    srcs = [t for t in toks if not t.startswith("--")][:-1]
    if any(f.startswith("--from=") for f in flags):
        continue
    copies += srcs
check(copies, "Dockerfile: COPY instructions found", "none")
for src in copies:
    check(os.path.exists(src), f"Dockerfile: COPY {src} exists")
    check(not ignored(src), f"Dockerfile: COPY {src} is in the build context (.dockerignore)")
# A workspace build needs every member's manifest in the context.
for m in members:
    have = any(m == c.rstrip("/") or f"{m}/Cargo.toml" == c or m.startswith(c.rstrip("/") + "/") for c in copies) \
        or "." in copies
    check(have, f"Dockerfile: workspace member {m} is copied (cargo reads every member's manifest)")
check(not ignored("Cargo.lock"), "Dockerfile: Cargo.lock reaches the build (--locked)")

builds = re.findall(r"cargo build ([^&;]*)", df_text)
check(len(builds) == 1, "Dockerfile: one cargo build", str(builds))
b = builds[0] if builds else ""
pkg = re.search(r"(?:-p|--package)\s+(\S+)", b)
pkg = pkg.group(1) if pkg else None
check("--release" in b and "--locked" in b, "Dockerfile: cargo build --release --locked", b)
check(pkg == "syncd", "Dockerfile: builds the package syncd", str(pkg))
bins = packages.get(pkg, (None, []))[1]
check(bins == ["syncd"], "Cargo: package syncd produces the binary syncd", str(bins))
built = re.findall(r"target/release/([A-Za-z0-9_-]+)", df_text)
check(built and all(x in bins for x in built), "Dockerfile: takes target/release/<bin> of that package", str(built))
from_rust = re.search(r"^FROM\s+rust:(\d+\.\d+)", df_text, re.M)
check(from_rust and from_rust.group(1) == ".".join(rust_version.split(".")[:2]),
      f"Dockerfile: builder is rust:{rust_version} (workspace rust-version)", from_rust.group(0) if from_rust else "no FROM rust:")
runtime_from = [a for a in instr("FROM")][-1]
check(runtime_from.startswith(("debian:", "gcr.io/distroless")) and "rust" not in runtime_from,
      "Dockerfile: small runtime stage", runtime_from)
check("ca-certificates" in df_text, "Dockerfile: runtime has CA certificates")

entry = instr("ENTRYPOINT")
entry_bin = json.loads(entry[-1])[0] if entry else ""
check(os.path.basename(entry_bin) in bins, "Dockerfile: ENTRYPOINT runs the syncd binary", entry_bin)
copied_to = [shlex.split(a)[-1] for a in instr("COPY") if "--from=" in a]
check(entry_bin in copied_to, "Dockerfile: ENTRYPOINT is where the binary is copied to", f"{entry_bin} not in {copied_to}")

env = {}
for a in instr("ENV"):
    for t in shlex.split(a):
        if "=" in t:
            k, v = t.split("=", 1)
            env[k] = v
check(env.get("SYNCD_LISTEN") == "0.0.0.0:8787", "Dockerfile: ENV SYNCD_LISTEN=0.0.0.0:8787", env.get("SYNCD_LISTEN"))
env_known(env, "Dockerfile ENV")
spool = env.get("SYNCD_SPOOL_DIR")
vols = [v for a in instr("VOLUME") for v in (json.loads(a) if a.strip().startswith("[") else a.split())]
check(spool and spool in vols, "Dockerfile: the spool directory is a declared VOLUME", f"{spool} vs {vols}")
check(instr("EXPOSE") and instr("EXPOSE")[-1].split()[0].split("/")[0] == str(port_of(env.get("SYNCD_LISTEN", ":0"))),
      "Dockerfile: EXPOSE matches SYNCD_LISTEN's port")
user = (instr("USER") or ["root"])[-1].split(":")[0]
check(user not in ("root", "0"), "Dockerfile: runs as a non-root user", user)
check(re.search(r"^STOPSIGNAL\s+SIGTERM\s*$", df_text, re.M), "Dockerfile: STOPSIGNAL SIGTERM")
hc = instr("HEALTHCHECK")
check(hc and "/healthz" in hc[-1], "Dockerfile: HEALTHCHECK on /healthz")
hc_tool = re.search(r'CMD\s+\["([^"]+)"', hc[-1]) if hc else None
hc_tool = hc_tool.group(1) if hc_tool else ""
check(hc_tool in copied_to or any(shlex.split(a)[-1] == hc_tool for a in instr("COPY")),
      "Dockerfile: the HEALTHCHECK's tool is put into the image", hc_tool)

# --- the health check script, against a local HTTP server ------------------------------------
subprocess.run(["bash", "-n", "deploy/healthcheck.sh"], check=True)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 503
        self.send_response(code)
        self.send_header("content-length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.handle_error = lambda *a: None  # the check hangs up after the status line
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
def hc_run(path, p):
    e = dict(os.environ, SYNCD_LISTEN=f"0.0.0.0:{p}")
    return subprocess.run(["bash", "deploy/healthcheck.sh", path], env=e, capture_output=True, timeout=10).returncode
check(hc_run("/healthz", port) == 0, "healthcheck.sh: 200 -> exit 0")
check(hc_run("/readyz", port) == 1, "healthcheck.sh: 503 -> exit 1")
srv.shutdown(); srv.server_close()
check(hc_run("/healthz", port) == 1, "healthcheck.sh: nothing listening -> exit 1")

# --- systemd unit ------------------------------------------------------------------------------
unit = read("deploy/syncd.service")
def directives(text):
    d = {}
    for l in text.splitlines():
        l = l.strip()
        if l and not l.startswith(("#", ";", "[")) and "=" in l:
            k, v = l.split("=", 1)
            d.setdefault(k.strip(), []).append(v.strip())
    return d
u = directives(unit)
execs = u.get("ExecStart", [])
check(len(execs) == 1 and os.path.basename(shlex.split(execs[0])[0]) in bins,
      "syncd.service: ExecStart runs the syncd binary", str(execs))
check(all(shlex.split(x)[0] == shlex.split(execs[0])[0] for x in u.get("ExecStartPre", [])),
      "syncd.service: ExecStartPre uses the same binary")
for k, want in [("ProtectSystem", "strict"), ("NoNewPrivileges", "yes")]:
    check(u.get(k, [None])[-1] == want, f"syncd.service: {k}={want}", str(u.get(k)))
for k in ("StateDirectory", "EnvironmentFile", "Restart"):
    check(k in u, f"syncd.service: {k}= set")
check(u.get("DynamicUser", ["no"])[-1] == "yes" or "User" in u, "syncd.service: DynamicUser= or a system user")
uenv = dict(x.split("=", 1) for v in u.get("Environment", []) for x in shlex.split(v))
env_known(uenv, "syncd.service Environment=")
state = "/var/lib/" + u.get("StateDirectory", [""])[-1].split()[0]
check(uenv.get("SYNCD_SPOOL_DIR", "").rstrip("/").startswith(state),
      "syncd.service: the spool is under the StateDirectory (the only writable path)", f"{uenv.get('SYNCD_SPOOL_DIR')} vs {state}")
v = os.environ.get("VERIFY_OUT", "skip")
if v == "skip":
    skip("syncd.service: systemd-analyze verify", "systemd-analyze is not installed")
else:
    check(v == "ok", "syncd.service: systemd-analyze verify (no warnings)", v)

# --- docker compose + Caddyfile -----------------------------------------------------------------
ctext = read("deploy/docker-compose.yml")
check("\t" not in ctext, "docker-compose.yml: no tabs")
if yaml is None:
    skip("docker-compose.yml: YAML parse", "PyYAML is not installed (simple checks only)")
    check(re.search(r"^services:\s*$", ctext, re.M) and re.search(r"^  syncd:\s*$", ctext, re.M),
          "docker-compose.yml: has services.syncd")
else:
    c = yaml.safe_load(ctext)
    s = c["services"]["syncd"]
    ctx = os.path.normpath(os.path.join("deploy", s["build"]["context"]))
    check(os.path.isfile(os.path.join(ctx, s["build"].get("dockerfile", "Dockerfile"))) and os.path.samefile(ctx, "."),
          "docker-compose.yml: syncd builds the repository's Dockerfile")
    check(os.path.basename(s.get("env_file", "")) == ".env" and os.path.exists(".env.example"),
          "docker-compose.yml: env_file is the .env made from .env.example")
    senv = s.get("environment", {})
    if isinstance(senv, list):
        senv = dict(x.split("=", 1) for x in senv)
    env_known(senv, "docker-compose.yml syncd.environment")
    cspool = senv.get("SYNCD_SPOOL_DIR", spool)
    mounts = [m.split(":") for m in s.get("volumes", [])]
    check(any(m[1] == cspool and m[0] in (c.get("volumes") or {}) for m in mounts),
          "docker-compose.yml: the spool is a named volume", str(mounts))
    check(s.get("stop_signal", "SIGTERM") == "SIGTERM", "docker-compose.yml: stop signal SIGTERM")
    check("/healthz" in " ".join(s.get("healthcheck", {}).get("test", [])) and
          s["healthcheck"]["test"][1] == hc_tool, "docker-compose.yml: health check on /healthz with the image's tool")
    cport = port_of(senv.get("SYNCD_LISTEN", env["SYNCD_LISTEN"]))
    proxy = [n for n, sv in c["services"].items() if n != "syncd"]
    check(proxy, "docker-compose.yml: a proxy service in front", str(proxy))
    for n in proxy:
        pv = c["services"][n]
        for m in pv.get("volumes", []):
            src = m.split(":")[0]
            if src.startswith((".", "/")):
                check(os.path.exists(os.path.join("deploy", src)), f"docker-compose.yml: {n} mounts {src}, which exists")
        check(any(str(p).split(":")[-1].split("/")[0] == "443" for p in pv.get("ports", [])),
              f"docker-compose.yml: {n} publishes 443")
    check(not s.get("ports"), "docker-compose.yml: syncd itself publishes no port (TLS only through the proxy)")
    caddy = read("deploy/Caddyfile")
    ups = re.findall(r"reverse_proxy\s+(\S+)", caddy)
    check(ups and all(x == f"syncd:{cport}" for x in ups), "Caddyfile: proxies to syncd's port", str(ups))
    check("/livekit/webhook" in caddy, "Caddyfile: routes /livekit/webhook")
    skip("Caddyfile: caddy validate", "no caddy binary here")

# --- Fly.io and Render ---------------------------------------------------------------------------
if tomllib:
    fly = load_toml("deploy/fly.toml")
    fenv = fly.get("env", {})
    env_known(fenv, "fly.toml [env]")
    check(any(m["destination"] == fenv.get("SYNCD_SPOOL_DIR") for m in fly.get("mounts", [])),
          "fly.toml: a volume is mounted at the spool directory")
    hs = fly.get("http_service", {})
    check(hs.get("internal_port") == port_of(fenv.get("SYNCD_LISTEN", ":0")), "fly.toml: internal_port is SYNCD_LISTEN's port")
    check(hs.get("force_https") is True, "fly.toml: force_https")
    check(any(ch.get("path") == "/healthz" for ch in hs.get("checks", [])), "fly.toml: health check on /healthz")
    check(fly.get("kill_signal") == "SIGTERM", "fly.toml: kill_signal SIGTERM")
else:
    skip("fly.toml", "no tomllib (Python < 3.11)")
if yaml is not None:
    r = yaml.safe_load(read("deploy/render.yaml"))["services"][0]
    renv = {e["key"]: e.get("value") for e in r["envVars"]}
    env_known(renv, "render.yaml envVars")
    check(r["disk"]["mountPath"] == renv.get("SYNCD_SPOOL_DIR"), "render.yaml: the disk is the spool directory")
    check(r.get("healthCheckPath") == "/healthz", "render.yaml: healthCheckPath /healthz")
    check(os.path.normpath(r["dockerfilePath"]) == "Dockerfile", "render.yaml: builds the repository's Dockerfile")
else:
    skip("render.yaml", "PyYAML is not installed")

skip("image build and run", "no container engine here")
print(f"deploy-check: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
