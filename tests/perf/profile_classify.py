#!/usr/bin/env python3
"""Where a gateway's CPU went, from a `perf record --call-graph dwarf` of it.

    tests/perf/profile_classify.py PERF_DATA [--json]

Each sample is put in the first category one of its frames matches, from
the leaf up (so a kernel `sendmsg` under rustls counts as TLS, a sled write
under the commit thread as the store). The floor is what no exchange can
skip: the signature check, TLS with the socket I/O under it, and the store
(the durable write, and the state reads the rules need). Everything else is
named, so that a profile says what the request path still costs.
"""
import collections
import json
import re
import subprocess
import sys

# (category, in the floor?, pattern over a frame's symbol and DSO). The
# last two are weak: a sample is theirs only when no frame of it matches
# another (malloc under serde_json is JSON's; tokio's scheduler is below
# every task, so only a sample with nothing else above is the runtime's).
RULES = [
    ("signature check", True,
     r"envelope::(open|check|signed)|signatures?::|josekit::jws|ECDSA_|ecdsa|EVP_DigestVerify"
     r"|ring::ec::suite_b|p256_point|nistz256|ed25519|verify_batch|zip215|curve25519"),
    ("TLS", True, r"rustls|tokio_rustls|aes_hw|aesni|gcm_|ring::aead|chacha"),
    ("socket I/O (kernel TCP)", True,
     r"tokio::runtime::io::registration|tokio::net::tcp|mio::|tcp_sendmsg|tcp_recvmsg|sock_(read|write)"),
    ("store (durable write, state reads)", True,
     r"xgate_ledger::|sled::|journal|fdatasync|fsync|committer::BatchView"),
    ("checkpoint signature", False, r"note::sign|checkpoint::sign|SigningKey::sign"),
    ("HTTP", False, r"hyper::|hyper_util::|httparse|http::"),
    ("JSON", False, r"serde_json|strict_json"),
    ("request path (rules, policy, receipt)", False, r"xgate_server::|xgate::"),
    ("runtime (scheduling, timers, wakeups)", False, r"tokio::|futex|parking_lot|schedule|__switch_to|finish_task_switch"),
    ("allocator", False, r"\bmi_|_mi_|malloc|\bfree\b|cfree"),
]
COMPILED = [(n, floor, re.compile(p)) for n, floor, p in RULES]


def samples(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        lines = [l for l in block.strip().split("\n") if l.strip()]
        if lines:
            yield re.sub(r"[-\d]+$", "", lines[0].split()[0]), lines[1:]


WEAK = 2


def category(frames):
    for rules in (COMPILED[:-WEAK], COMPILED[-WEAK:]):
        for frame in frames:
            for name, _, rx in rules:
                if rx.search(frame):
                    return name
    return "other"


def main():
    path = sys.argv[1]
    total = 0
    cats = collections.Counter()
    threads = collections.Counter()
    for thread, frames in samples(path):
        total += 1
        threads[thread] += 1
        cats[category(frames)] += 1
    floor = {n for n, f, _ in RULES if f}
    share = {c: n / total for c, n in cats.items()} if total else {}
    report = {
        "samples": total,
        "floor_share": sum(v for c, v in share.items() if c in floor),
        "categories": dict(sorted(share.items(), key=lambda kv: -kv[1])),
        "threads": {t: n / total for t, n in threads.most_common()},
    }
    if "--json" in sys.argv:
        print(json.dumps(report))
        return
    print(f"{total} samples; the floor (signature, TLS, socket I/O, store): "
          f"{100 * report['floor_share']:.1f}%")
    for c, v in report["categories"].items():
        print(f"  {'floor ' if c in floor else '      '}{c:<40} {100 * v:5.1f}%")
    print("by thread:")
    for t, v in report["threads"].items():
        print(f"  {t:<24} {100 * v:5.1f}%")


if __name__ == "__main__":
    main()
