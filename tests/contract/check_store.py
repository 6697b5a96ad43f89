"""After the fuzzing: the store the admin API left behind is whole.

Runs against the server scripts/contract-tests.sh started (MDM_URL, MDM_ADMIN_KEY):
the key-value battery (`POST /api/v1/diagnostics/kv`, mdmctl's `diagnostics kv`) must
pass, and everything the lists name must read back: every page of every list (items and
`next`, no item twice), every listed item on its own route (200, the same id), and the
counts the server keeps agree with what is listed (a token's profiles). Any 5xx, any
unreadable record, any list that does not end is a failure. Prints what it read.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ["MDM_URL"].rstrip("/")
KEY = os.environ["MDM_ADMIN_KEY"]
PAGE = 25
# Pages one list may take before it counts as endless.
MAX_PAGES = 10_000

failures = []
reads = 0


def call(method, path, query=None):
    """(status, JSON body or None)."""
    global reads
    url = BASE + path + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {KEY}"})
    reads += 1
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if status >= 500:
        failures.append(f"{method} {path} {query or ''}: {status} {raw[:300]!r}")
    return status, body


def seg(v):
    return urllib.parse.quote(str(v), safe="")


def pages(path, query=None):
    """Every item of a list, following `next`; checks the page shape and repeats."""
    items, seen, cursor = [], set(), None
    for _ in range(MAX_PAGES):
        q = dict(query or {}, limit=PAGE)
        if cursor is not None:
            q["cursor"] = cursor
        status, body = call("GET", path, q)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
            failures.append(f"GET {path} {q}: {status} {body}")
            return items
        for item in body["items"]:
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                failures.append(f"GET {path}: {key[:200]} listed twice")
            seen.add(key)
            items.append(item)
        nxt = body.get("next")
        if nxt is None:
            return items
        if not isinstance(nxt, str) or nxt == cursor:
            failures.append(f"GET {path} {q}: bad next {nxt!r}")
            return items
        cursor = nxt
    failures.append(f"GET {path}: more than {MAX_PAGES} pages")
    return items


def reads_back(path, field, want):
    status, body = call("GET", path)
    if status != 200 or not isinstance(body, dict) or body.get(field) != want:
        failures.append(f"GET {path}: {status} {json.dumps(body)[:300]} (want {field}={want!r})")
    return body


def read_back_each(list_path, key, item_path):
    """Every item of a list, each read back on its own route (`item_path(item)`)."""
    items = pages(list_path)
    for item in items:
        reads_back(item_path(item), key, item.get(key))
    return items


def main():
    status, battery = call("POST", "/api/v1/diagnostics/kv")
    if status != 200 or not battery or battery.get("passed") is not True:
        failures.append(f"key-value battery: {status} {battery}")

    counts = {}
    tokens = read_back_each("/api/v1/tokens", "id", lambda t: f"/api/v1/tokens/{seg(t.get('id'))}")
    counts["tokens"] = len(tokens)
    for t in tokens:
        tid = t.get("id")
        base = f"/api/v1/tokens/{seg(tid)}"
        call("GET", base + "/sync")
        call("GET", base + "/public-key")
        call("GET", base + "/default-profile")
        call("GET", base + "/assignment-rules")
        profiles = read_back_each(base + "/profiles", "id", lambda p: f"{base}/profiles/{seg(p.get('id'))}")
        if t.get("profile_count") != len(profiles):
            failures.append(f"token {tid}: profile_count {t.get('profile_count')} but {len(profiles)} listed")
        devices = read_back_each(
            base + "/devices", "serial_number", lambda d: f"{base}/devices/{seg(d.get('serial_number'))}"
        )
        counts["dep devices"] = counts.get("dep devices", 0) + len(devices)

    users = read_back_each("/api/v1/users", "username", lambda u: f"/api/v1/users/{seg(u.get('username'))}")
    counts["users"] = len(users)
    groups = read_back_each("/api/v1/groups", "id", lambda g: f"/api/v1/groups/{seg(g.get('id'))}")
    counts["groups"] = len(groups)

    devices = read_back_each("/api/v1/devices", "device_id", lambda d: f"/api/v1/devices/{seg(d.get('device_id'))}")
    counts["devices"] = len(devices)
    for d in devices:
        base = f"/api/v1/devices/{seg(d.get('device_id'))}"
        call("GET", base + "/push")
        read_back_each(
            base + "/commands", "command_uuid", lambda c: f"{base}/commands/{seg(c.get('command_uuid'))}"
        )
        pages(base + "/logs")
    call("GET", "/api/v1/push/certificate")
    call("GET", "/api/v1/health")

    print(f"store check: {reads} reads; " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if failures:
        print(f"store check: {len(failures)} problems", file=sys.stderr)
        for f in failures[:50]:
            print("  " + f, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
