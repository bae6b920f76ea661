#!/usr/bin/env python3
"""End-to-end load benchmark of mailgate-notify (issue 9), run by `make bench-e2e`.

On the test rig (Tansu broker, Postfix smtp-sink/smtp-source; `make rig`), in one run:

 1. max rate:  N events (scan verdicts, bounces, application events; 1 notification each) are
               published first, then the release binary drains them through its SMTP pool into
               smtp-sink. Notifications accepted/s, peak RSS (VmHWM).
 2. ceilings:  (a) ingest: a bare rdkafka consumer (mailgate-loadgen consume) reads the same N
               records doing nothing; (b) SMTP: `smtp-source -d` with the same number of sessions
               as the pool and the same message size (the mean of run 1's messages) into the same
               kind of sink. Ratios of run 1 to both.
               Steps 1 and 2 alternate for --rounds rounds (default 3), each on fresh topics, and
               the round with the median ratio is reported (every round is listed): on a shared
               machine the ceiling itself moves by 2x between minutes.
 3. half rate: a fresh instance, events published at half of run 1's rate while it runs;
               event-to-accepted latency p50/p99/max.
 4. scale-out: two instances in one group on the same load as run 1 (the second starts once
               the first has accepted its first notification); total rate and the rebalance
               pause (n/a when the first drained everything before the second joined).

Every figure is measured outside the service: acceptance times are the sink's dump files'
mtimes, event creation times are carried in each event's cluster id (`lg-<unix-us>-<seq>`, which
every template prints), so quantiles and max are exact (no histogram buckets) and duplicates
(at-least-once redelivery after a rebalance) are counted by sequence number. Throughput is
(messages - 1) / (last acceptance - first acceptance), the same formula for the service and for
smtp-source, so start-up and group-join time are excluded from both.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from email import message_from_bytes
from email import policy as email_policy

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVICE = os.path.join(ROOT, "target/release/mailgate-notify")
LOADGEN = os.path.join(ROOT, "target/release/mailgate-loadgen")
CLUSTER_RE = re.compile(rb"lg-(\d{16})-(\d+)")


def log(msg):
    print(f"[bench-e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with {proc.returncode} before listening")
            time.sleep(0.02)
    raise SystemExit(f"{what} did not listen on {port} within {timeout}s")


def tool(name):
    for d in ("/usr/sbin", "/usr/bin"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{name} not found: run `make rig`")


class Procs:
    """Every child we start, stopped (by its own pid) at the end, also on errors."""

    def __init__(self):
        self.procs = []

    def start(self, args, logfile, env=None):
        out = open(logfile, "ab")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class Sink:
    def __init__(self, procs, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.port = free_port()
        user = "root" if os.geteuid() == 0 else "nobody"
        self.proc = procs.start(
            [tool("smtp-sink"), "-u", user, "-d", f"{self.dir}/%M.", f"127.0.0.1:{self.port}", "256"],
            os.path.join(work, f"{name}.log"),
        )
        wait_port(self.port, self.proc, "smtp-sink")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def messages(self):
        """[(accepted_at_s, seq or None, created_us or None, message_bytes)] of every dump."""
        out = []
        for e in os.scandir(self.dir):
            st = e.stat()
            with open(e.path, "rb") as f:
                raw = f.read()
            body = strip_sink_lines(raw)
            m = CLUSTER_RE.search(raw.replace(b"=\r\n", b"").replace(b"=\n", b""))
            if m is None:
                # Base64 or folded: decode the MIME parts properly (slow path).
                msg = message_from_bytes(body, policy=email_policy.default)
                text = b" ".join(
                    (p.get_payload(decode=True) or b"") for p in msg.walk() if not p.is_multipart()
                )
                m = CLUSTER_RE.search(text + str(msg.get("Subject", "")).encode())
            seq, created = (int(m.group(2)), int(m.group(1))) if m else (None, None)
            out.append((st.st_mtime_ns / 1e9, seq, created, len(body)))
        out.sort()
        return out


def strip_sink_lines(raw):
    """The message as sent: smtp-sink puts X-Client-Addr/-Proto, X-Helo-, X-Mail-, X-Rcpt-Args first."""
    rest = raw
    while True:
        nl = rest.find(b"\n")
        line = rest[: nl + 1] if nl >= 0 else rest
        name = line.split(b":", 1)[0]
        if name not in (b"X-Client-Addr", b"X-Client-Proto", b"X-Helo-Args", b"X-Mail-Args", b"X-Rcpt-Args"):
            return rest
        rest = rest[len(line):]


def loadgen(brokers, prefix, *args):
    cmd = [LOADGEN, "--brokers", brokers, "--prefix", prefix, *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    line = r.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def service_config(path, brokers, prefix, group, smtp_port, metrics_port, sessions, extra):
    extra_lines = "\n".join(f'"{k}" = "{v}"' for k, v in (kv.split("=", 1) for kv in extra))
    with open(path, "w") as f:
        f.write(f"""
[kafka]
brokers = "{brokers}"
group_id = "{group}"
commit_interval = "1s"
shutdown_timeout = "15s"
[kafka.topics]
application = "{prefix}-app"
bounces = "{prefix}-bounces"
scan_verdicts = "{prefix}-verdicts"
dead_letter = "{prefix}-dlq"
state = "{prefix}-state"
[kafka.librdkafka]
"session.timeout.ms" = "6000"
"max.poll.interval.ms" = "8000"
"heartbeat.interval.ms" = "500"
{extra_lines}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
pool_size = {sessions}
[sender]
address = "notify@gateway.example"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[[application.recipients]]
addresses = ["admin@example.com"]
[[bounce.recipients]]
addresses = ["postmaster@example.com"]
[bounce.burst]
# Every bounce gets its own notice: the bench measures notifications, not the storm guard.
window = "1m"
max = 100000000
[rules]
general_list = ["security@example.com"]
[rules.default]
notify = ["general"]
""")


class Service:
    env_extra = {}

    def __init__(self, procs, work, name, brokers, prefix, group, sink, sessions, extra):
        self.metrics_port = free_port()
        cfg = os.path.join(work, f"{name}.toml")
        service_config(cfg, brokers, prefix, group, sink.port, self.metrics_port, sessions, extra)
        env = dict(os.environ, RUST_LOG="warn,librdkafka=error,rdkafka=error")
        env.update(Service.env_extra)
        self.proc = procs.start([SERVICE, "run", "--config", cfg], os.path.join(work, f"{name}.log"), env)
        self.started = time.time()
        # Gauges sampled by sent() while a drain is watched (set to {} to collect).
        self.samples = None
        wait_port(self.metrics_port, self.proc, f"service {name} (metrics)", timeout=30)

    def metrics_text(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    def histogram_le(self, le):
        """Fraction of event_to_accepted_seconds observations (all kinds) <= `le` seconds, from
        the service's own histogram: the cross-check of the external latency measure."""
        text = self.metrics_text() or ""
        below = count = 0.0
        for line in text.splitlines():
            if line.startswith("mailgate_notify_event_to_accepted_seconds_bucket{") and f'le="{le}"' in line:
                below += float(line.rsplit(" ", 1)[1])
            elif line.startswith("mailgate_notify_event_to_accepted_seconds_count"):
                count += float(line.rsplit(" ", 1)[1])
        return below / count if count else float("nan")

    def sent(self):
        text = self.metrics_text()
        if text is None:
            return None
        total = 0.0
        gauges = []
        for line in text.splitlines():
            if line.startswith("mailgate_notify_notifications_sent_total{"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith(("mailgate_notify_outbox_depth ", "mailgate_notify_records_in_flight ",
                                  "mailgate_notify_partitions_paused ")):
                gauges.append(line.rsplit(" ", 1))
        # Only while notifications are flowing: start-up and the group join are not the drain.
        if self.samples is not None and total > 0:
            for name, value in gauges:
                self.samples.setdefault(name, []).append(float(value))
        return int(total)

    def vm_hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def cpu_s(self):
        """User + system CPU seconds used so far (/proc/PID/stat utime + stime)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_by_thread(self):
        """CPU seconds per thread name so far (tokio workers summed), from /proc/PID/task."""
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"{task_dir}/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = re.sub(r"\d+$", "", name) if name.startswith("rdk:") else name
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0}

    def stop(self):
        """SIGTERM (drain and commit), then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_sent(services, target, stall_s=30, poll=0.05):
    """Waits until the services' accepted counts sum to `target`; gives up after `stall_s`
    without progress. Returns the sum reached."""
    last, last_change = -1, time.time()
    while True:
        counts = [s.sent() or 0 for s in services]
        total = sum(counts)
        if total >= target:
            return total
        if total != last:
            last, last_change = total, time.time()
        elif time.time() - last_change > stall_s:
            log(f"stalled at {total}/{target} for {stall_s}s")
            return total
        for s in services:
            if s.proc.poll() is not None:
                raise SystemExit(f"service exited with {s.proc.returncode}; see its log")
        time.sleep(poll)


def settle(sink, expected, timeout=10):
    """Waits until the sink has `expected` dumps and none was written in the last 300 ms."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = list(os.scandir(sink.dir))
        newest = max((e.stat().st_mtime for e in entries), default=0)
        if len(entries) >= expected and time.time() - newest > 0.3:
            return
        time.sleep(0.1)


def rate(times):
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def quantile(sorted_vals, q):
    """Nearest-rank quantile of exact values."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(-(-q * len(sorted_vals) // 1)) - 1))
    return sorted_vals[k]


def kind_of(seq, mix):
    """The event kind `mailgate-loadgen produce` gave sequence number `seq` (its Mix::kind_of)."""
    v, b, a = (int(x) for x in mix.split(":"))
    r = seq % (v + b + a)
    return "rule" if r < v else "bounce" if r < v + b else "application"


def analyse(msgs, seq_range, mix):
    lo, hi = seq_range
    ours = [m for m in msgs if m[1] is not None and lo <= m[1] < hi]
    seen, dup = set(), 0
    firsts = []
    for m in ours:
        if m[1] in seen:
            dup += 1
            continue
        seen.add(m[1])
        firsts.append(m)
    lat = sorted((t - c / 1e6) * 1000.0 for t, _, c, _ in firsts)
    # Stall episodes: maximal runs (in acceptance order) of notifications slower than 100 ms;
    # tells one long stall from a steady overload.
    episodes, cur = [], None
    for t, _, c, _ in firsts:
        if (t - c / 1e6) * 1000.0 > 100.0:
            cur = [c / 1e6, t, 1] if cur is None else [cur[0], t, cur[2] + 1]
        elif cur is not None:
            episodes.append(cur)
            cur = None
    if cur is not None:
        episodes.append(cur)
    longest = max(episodes, key=lambda e: e[1] - e[0], default=None)
    by_kind = {}
    for t, seq, c, _ in firsts:
        by_kind.setdefault(kind_of(seq, mix), []).append((t - c / 1e6) * 1000.0)
    return {
        "share_le_50ms": sum(1 for x in lat if x <= 50.0) / max(1, len(lat)),
        "slow_episodes": len(episodes),
        "slow_notifications": sum(e[2] for e in episodes),
        "longest_episode_s": (longest[1] - longest[0]) if longest else 0.0,
        "longest_episode_at_s": (longest[0] - firsts[0][0]) if longest else None,
        "lat_by_kind": {k: {"n": len(v), "p50_ms": quantile(sorted(v), 0.5), "p99_ms": quantile(sorted(v), 0.99)}
                        for k, v in sorted(by_kind.items())},
        "accepted": len(firsts),
        "duplicates": dup,
        "unrecognised": sum(1 for m in msgs if m[1] is None),
        "rate": rate([m[0] for m in ours]),
        "mean_bytes": sum(m[3] for m in ours) / max(1, len(ours)),
        "lat_p50_ms": quantile(lat, 0.50),
        "lat_p99_ms": quantile(lat, 0.99),
        "lat_max_ms": lat[-1] if lat else float("nan"),
        "first": ours[0][0] if ours else None,
        "last": ours[-1][0] if ours else None,
        "times": [m[0] for m in ours],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000, help="events per run (default 20000)")
    ap.add_argument("--sessions", type=int, default=4, help="SMTP pool size = smtp-source sessions (default 4)")
    ap.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    ap.add_argument("--mix", default="8:1:1", help="verdicts:bounces:application (default 8:1:1)")
    ap.add_argument("--latency-seconds", type=float, default=20, help="length of the half-rate run (default 20)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of (service drain, smtp-source) for the max rate and its ratio; the "
                         "median round is reported (default 3)")
    ap.add_argument("--no-scale-out", action="store_true", help="skip the two-instance run")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--librdkafka", action="append", metavar="KEY=VALUE",
                    help="consumer property for the service and the bare consumer alike (repeatable; "
                         "default fetch.wait.max.ms=5: Tansu answers a waiting fetch only at its "
                         "deadline, not when data arrives, which alone puts ~130 ms on p50)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, dumps)")
    ap.add_argument("--perf", metavar="FILE",
                    help="record a perf profile (perf record -g) of the max-rate drain into FILE")
    ap.add_argument("--service-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the service processes, e.g. "
                         "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 (repeatable)")
    args = ap.parse_args()
    Service.env_extra = dict(kv.split("=", 1) for kv in args.service_env)
    if args.librdkafka is None:
        args.librdkafka = ["fetch.wait.max.ms=5"]

    for p in (SERVICE, LOADGEN):
        if not os.path.exists(p):
            raise SystemExit(f"{p} missing: `cargo build --release --bins` (make bench-e2e does)")
    tansu = open(os.path.join(ROOT, ".cache/rig/tansu-bin")).read().strip()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="mailgate-bench-e2e-", dir=base)
    procs = Procs()
    res = {
        "count": args.count, "sessions": args.sessions, "partitions": args.partitions, "mix": args.mix,
        "cores": os.cpu_count(), "load_before": os.getloadavg(), "librdkafka": args.librdkafka, "service_env": args.service_env,
    }
    try:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "SCHEMA_REGISTRY")}
        env["RUST_LOG"] = "warn"
        broker = procs.start([tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                              "--storage-engine", "memory://tansu/"], os.path.join(work, "tansu.log"), env)
        wait_port(port, broker, "tansu")
        brokers = f"127.0.0.1:{port}"
        n = args.count

        # --- 1 + 2. max rate and its ceilings, in alternating rounds ------------------------
        # Each round drains a fresh backlog through the service, then runs smtp-source with
        # the same sessions and message size: the ratio is taken within a round, seconds
        # apart, and the median over the rounds is reported, because the capacity of this
        # shared machine moves by 2x from one minute to the next.
        sets = [a for kv in args.librdkafka for a in ("--set", kv)]
        rounds = []
        for k in range(args.rounds):
            prefix = f"r1-{k}"
            loadgen(brokers, prefix, "topics", "--partitions", args.partitions)
            pr = loadgen(brokers, prefix, "produce", "--count", n, "--mix", args.mix)
            log(f"round {k + 1}: produced {n} events at {pr['rate']:.0f}/s")
            # (a) ingest ceiling on the same records, before the service competes for the CPU.
            bare = loadgen(brokers, prefix, "consume", "--count", n, *sets)
            sink1 = Sink(procs, work, f"sink1-{k}")
            s1 = Service(procs, work, f"svc1-{k}", brokers, prefix, f"bench-{prefix}", sink1, args.sessions, args.librdkafka)
            # Where the backlog waits during the drain: the outbox (SMTP is the limit) or
            # upstream of it (ingest, routing, rendering).
            s1.samples = {}
            perf = None
            if args.perf and k == 0:
                # Attach once the first notification is out: `perf record -p` follows only the
                # threads that exist when it attaches (ingest, rdkafka and the pool start late).
                wait_sent([s1], 1)
                perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(s1.proc.pid),
                                         "-o", args.perf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.procs.append(perf)
            got = wait_sent([s1], n)
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
                log(f"profile of the drain: perf report -i {args.perf}")
            gauges = {name.split("_", 2)[2]: statistics.median(v) for name, v in s1.samples.items() if v}
            rss = (s1.vm_hwm_kib() or 0) / 1024
            cpu = s1.cpu_s()
            threads = s1.cpu_by_thread()
            s1.stop()
            settle(sink1, got)
            a1 = analyse(sink1.messages(), (0, n), args.mix)
            sink1.stop()
            # (b) SMTP ceiling: same sessions, same message size, right after.
            size = int(a1["mean_bytes"])
            sink2 = Sink(procs, work, f"sink2-{k}")
            t0 = time.time()
            subprocess.run([tool("smtp-source"), "-d", "-s", str(args.sessions), "-l", str(size), "-m", str(n),
                            "-f", "bench@gateway.example", "-t", "sink@example.com", f"127.0.0.1:{sink2.port}"],
                           check=True, stdout=subprocess.DEVNULL)
            src_wall = time.time() - t0
            settle(sink2, n)
            src_times = sorted(m[0] for m in sink2.messages())
            sink2.stop()
            ceiling = rate(src_times)
            rounds.append({"produce_rate": pr["rate"], "ingest_ceiling": bare["rate"], "a1": a1, "rss": rss,
                           "cpu_s": cpu, "message_bytes": size, "smtp_ceiling": ceiling,
                           "ratio": a1["rate"] / ceiling, "median_gauges_during_drain": gauges,
                           "cpu_s_by_thread": threads})
            log(f"round {k + 1}: service {a1['accepted']}/{n} accepted at {a1['rate']:.0f}/s (RSS peak {rss:.0f} MiB, "
                f"CPU {1000 * cpu / max(1, a1['accepted']):.2f} s/1000); smtp-source -d -s {args.sessions} -l {size}: "
                f"{ceiling:.0f}/s (wall {src_wall:.1f}s); ratio {a1['rate'] / ceiling:.3f}; ingest ceiling {bare['rate']:.0f}/s; "
                f"median during the drain: {gauges}; CPU s by thread: {threads}")
        by_ratio = sorted(rounds, key=lambda r: r["ratio"])
        med = by_ratio[len(by_ratio) // 2]
        a1 = med["a1"]
        bare = {"rate": statistics.median(r["ingest_ceiling"] for r in rounds)}
        pr = {"rate": statistics.median(r["produce_rate"] for r in rounds)}
        size = med["message_bytes"]
        smtp_ceiling = med["smtp_ceiling"]
        res["rss_peak_mib"] = max(r["rss"] for r in rounds)
        res["cpu_s"] = med["cpu_s"]
        res["rounds"] = [{k: v for k, v in r.items() if k != "a1"} | {"rate": r["a1"]["rate"]} for r in rounds]

        # --- 3. half rate, latency ----------------------------------------------------------
        half = a1["rate"] / 2
        m3 = max(100, int(half * args.latency_seconds))
        loadgen(brokers, "r3", "topics", "--partitions", args.partitions)
        sink3 = Sink(procs, work, "sink3")
        s3 = Service(procs, work, "svc3", brokers, "r3", "bench-r3", sink3, args.sessions, args.librdkafka)
        # Warm-up (sequence numbers above the measured range): the group has joined and every
        # pool connection is open once these are accepted.
        warm = 50
        loadgen(brokers, "r3", "produce", "--count", warm, "--first-seq", 10**9, "--mix", args.mix)
        wait_sent([s3], warm)
        loadgen(brokers, "r3", "produce", "--count", m3, "--rate", f"{half:.1f}", "--mix", args.mix)
        got3 = wait_sent([s3], warm + m3)
        res["rss_peak_half_mib"] = (s3.vm_hwm_kib() or 0) / 1024
        # Includes the warm-up's notifications; the exact figure below does not.
        res["histogram_le_50ms"] = s3.histogram_le("0.05")
        s3.stop()
        settle(sink3, got3)
        a3 = analyse(sink3.messages(), (0, m3), args.mix)
        sink3.stop()
        log(f"run 3: {m3} events at {half:.0f}/s: p50 {a3['lat_p50_ms']:.1f} ms, p99 {a3['lat_p99_ms']:.1f} ms, max {a3['lat_max_ms']:.1f} ms")

        # Latency floor of ingest alone: a bare consumer on fresh topics, same paced load.
        loadgen(brokers, "r3b", "topics", "--partitions", args.partitions)
        bare_cmd = [LOADGEN, "--brokers", brokers, "--prefix", "r3b", "consume",
                    "--count", str(warm + m3), "--warmup", str(warm), *sets]
        bare_proc = subprocess.Popen(bare_cmd, stdout=subprocess.PIPE, text=True)
        procs.procs.append(bare_proc)
        loadgen(brokers, "r3b", "produce", "--count", warm, "--first-seq", 10**9, "--mix", args.mix)
        if bare_proc.stdout.readline().strip() != "ready":
            raise SystemExit("bare consumer did not finish its warm-up")
        loadgen(brokers, "r3b", "produce", "--count", m3, "--rate", f"{half:.1f}", "--mix", args.mix)
        out, _ = bare_proc.communicate(timeout=120)
        bare_half = {k: float(v) for k, v in (kv.split("=") for kv in out.strip().splitlines()[-1].split())}
        log(f"ingest latency floor at {half:.0f}/s: p50 {bare_half['lat_p50_ms']:.1f} ms, p99 {bare_half['lat_p99_ms']:.1f} ms")

        # --- 4. scale-out -------------------------------------------------------------------
        a4 = None
        if not args.no_scale_out:
            loadgen(brokers, "r4", "topics", "--partitions", args.partitions)
            loadgen(brokers, "r4", "produce", "--count", n, "--mix", args.mix)
            sink4 = Sink(procs, work, "sink4")
            sa = Service(procs, work, "svc4a", brokers, "r4", "bench-r4", sink4, args.sessions, args.librdkafka)
            # B starts as soon as A is draining, so that the join lands mid-backlog.
            wait_sent([sa], 1)
            sb = Service(procs, work, "svc4b", brokers, "r4", "bench-r4", sink4, args.sessions, args.librdkafka)
            joined_at = sb.started
            b_first = None
            while True:
                counts = [sa.sent() or 0, sb.sent() or 0]
                if b_first is None and counts[1] > 0:
                    b_first = time.time()
                if sum(counts) >= n:
                    break
                for s in (sa, sb):
                    if s.proc.poll() is not None:
                        raise SystemExit("a scale-out instance exited; see its log")
                time.sleep(0.05)
            per = [sa.sent() or 0, sb.sent() or 0]
            sa.stop()
            sb.stop()
            settle(sink4, sum(per))
            a4 = analyse(sink4.messages(), (0, n), args.mix)
            sink4.stop()
            after = [t for t in a4["times"] if t >= joined_at]
            gaps = [(b - a, a) for a, b in zip(after, after[1:])]
            pause, pause_at = max(gaps, default=(float("nan"), joined_at))
            if per[1] == 0:
                # B never got work: A drained the backlog before the rebalance; no pause to show.
                pause = float("nan")
            a4.update({
                "per_instance": per,
                "rebalance_pause_ms": pause * 1000,
                "pause_starts_after_join_s": pause_at - joined_at,
                "b_first_accept_after_start_s": (b_first - joined_at) if b_first else None,
            })
            log(f"run 4: {a4['accepted']}/{n} at {a4['rate']:.0f}/s, per instance {per}, "
                f"pause {a4['rebalance_pause_ms']:.0f} ms, duplicates {a4['duplicates']}")

        res.update({
            "produce_rate": pr["rate"],
            "ingest_ceiling": bare["rate"],
            "smtp_ceiling": smtp_ceiling,
            "message_bytes": size,
            "max": {k: v for k, v in a1.items() if k != "times"},
            "half": {k: v for k, v in a3.items() if k != "times"} | {"rate_target": half, "events": m3},
            "bare_half": bare_half,
            "scale_out": {k: v for k, v in a4.items() if k != "times"} if a4 else None,
            "load_after": os.getloadavg(),
        })
        report(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        procs.stop_all()
        if args.keep:
            log(f"kept {work} (service logs and configs, sink dumps)")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(r):
    m, h, s = r["max"], r["half"], r["scale_out"]
    print(f"\nmailgate-notify end to end — {r['count']} events (mix {r['mix']}), pool/sessions {r['sessions']}, "
          f"{r['partitions']} partitions, librdkafka {r['librdkafka'] or 'defaults'}, service env {r['service_env'] or 'default'}, {r['cores']} cores, load {r['load_before'][0]:.2f} before / {r['load_after'][0]:.2f} after\n")
    rows = [
        (f"max-rate rounds: service/s vs smtp-source/s (ratio)",
         "; ".join(f"{x['rate']:.0f} vs {x['smtp_ceiling']:.0f} ({x['ratio']:.2f})" for x in r["rounds"])),
        ("notifications accepted/s (max rate, median round)", f"{m['rate']:.0f}"),
        ("  vs ingest ceiling (bare consumer, records/s)", f"{r['ingest_ceiling']:.0f}  ratio {m['rate'] / r['ingest_ceiling']:.3f}"),
        (f"  vs SMTP ceiling (smtp-source -d -s {r['sessions']} -l {r['message_bytes']})",
         f"{r['smtp_ceiling']:.0f}  ratio {m['rate'] / r['smtp_ceiling']:.3f}  (target >= 0.8)"),
        ("accepted / duplicates (max rate)", f"{m['accepted']} / {m['duplicates']}"),
        ("service CPU (user+sys) for the median round / per 1000 notifications",
         f"{r['cpu_s']:.1f} s / {1000 * r['cpu_s'] / max(1, m['accepted']):.2f} s"),
        ("peak RSS (VmHWM, max rate, highest round)", f"{r['rss_peak_mib']:.0f} MiB"),
        (f"event-to-accepted at {h['rate_target']:.0f} ev/s (half), p50", f"{h['lat_p50_ms']:.1f} ms"),
        ("  p99", f"{h['lat_p99_ms']:.1f} ms  (target <= 50)"),
        ("  max", f"{h['lat_max_ms']:.1f} ms"),
        ("  p50 / p99 by kind", "; ".join(f"{k} {v['p50_ms']:.0f} / {v['p99_ms']:.0f} ms" for k, v in h["lat_by_kind"].items())),
        ("  episodes > 100 ms: count / notifications / longest",
         f"{h['slow_episodes']} / {h['slow_notifications']} / {h['longest_episode_s']:.2f} s"),
        ("  share <= 50 ms: exact / service histogram (incl. warm-up)",
         f"{h['share_le_50ms']:.3f} / {r['histogram_le_50ms']:.3f}"),
        ("  achieved rate / accepted", f"{h['rate']:.0f}/s / {h['accepted']}"),
        ("  ingest floor: bare consumer, same rate, p50 / p99 / max",
         f"{r['bare_half']['lat_p50_ms']:.1f} / {r['bare_half']['lat_p99_ms']:.1f} / {r['bare_half']['lat_max_ms']:.1f} ms"),
        ("event-to-accepted at max rate (backlog: queueing), p50 / p99", f"{m['lat_p50_ms']:.0f} / {m['lat_p99_ms']:.0f} ms"),
    ]
    if s:
        rows += [
            ("scale-out: 2 instances, total accepted/s", f"{s['rate']:.0f}  ({s['rate'] / m['rate']:.2f} x one)"),
            ("  per instance / duplicates", f"{s['per_instance']} / {s['duplicates']}"),
            ("  rebalance pause (longest gap after 2nd start)", f"{s['rebalance_pause_ms']:.0f} ms"),
            ("  2nd instance: first accept after its start", f"{s['b_first_accept_after_start_s'] or float('nan'):.1f} s"),
        ]
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")


if __name__ == "__main__":
    main()
