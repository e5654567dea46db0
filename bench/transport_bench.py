#!/usr/bin/python3
"""Cross-process request/response over tcp loopback, three transports side by side:

  * the mummi gateway (CAF actor -> gateway -> ZeroMQ -> gateway -> CAF actor and back),
  * a bare cppzmq echo pair: REQ -> ROUTER one at a time, DEALER -> ROUTER with 16 in flight
    (the floor),
  * RabbitMQ RPC as MuMMI does it (pika: request queue, reply_to queue, correlation id),
    against Debian's rabbitmq-server, started here on 127.0.0.1 and stopped afterwards.

Prints one table and the ratios the project's goals are stated in. Usage:

  bench/transport_bench.py [--build-dir build/release] [--small 5000] [--large 1000]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

QUEUE = "mummi_bench_rpc"


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[int(p * (len(v) - 1))]


# --- RabbitMQ -----------------------------------------------------------------------------


class Broker:
    """A private rabbitmq-server on 127.0.0.1 in a temporary directory."""

    def __init__(self, port=5679):
        self.port = port
        self.node = "mummibench@localhost"
        self.dir = tempfile.mkdtemp(prefix="mummi-rmq-")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        self.env = dict(os.environ,
                        RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(port),
                        RABBITMQ_DIST_PORT=str(port + 20000),
                        RABBITMQ_MNESIA_BASE=self.dir + "/mnesia",
                        RABBITMQ_LOG_BASE=self.dir + "/log",
                        RABBITMQ_PID_FILE=self.dir + "/pid",
                        ERL_EPMD_ADDRESS="127.0.0.1")

    def __enter__(self):
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(2)
        subprocess.run(["rabbitmqctl", "-n", self.node, "await_startup", "--timeout", "120"],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def rpc_server(port):
    """Echoes every request to its reply_to queue with the same correlation id."""
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare(queue=QUEUE)

    def on_request(ch, method, props, body):
        ch.basic_publish(exchange="", routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id),
                         body=body)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    ch.basic_qos(prefetch_count=64)
    ch.basic_consume(queue=QUEUE, on_message_callback=on_request)
    print("ready", flush=True)
    ch.start_consuming()


def rpc_client(port, size, n, window):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    reply_queue = ch.queue_declare(queue="", exclusive=True).method.queue
    pending = {}
    rtts = []
    state = {"done": 0, "bad": 0}

    def on_reply(ch, method, props, body):
        t0 = pending.pop(props.correlation_id, None)
        if t0 is None or len(body) != size:
            state["bad"] += 1
        else:
            rtts.append((time.perf_counter() - t0) * 1e6)
        state["done"] += 1

    ch.basic_consume(queue=reply_queue, on_message_callback=on_reply, auto_ack=True)
    payload = b"\x07" * size

    def send():
        cid = uuid.uuid4().hex
        pending[cid] = time.perf_counter()
        ch.basic_publish(exchange="", routing_key=QUEUE, body=payload,
                         properties=pika.BasicProperties(reply_to=reply_queue, correlation_id=cid))

    sent = 0
    start = time.perf_counter()
    while sent < min(window, n):
        send()
        sent += 1
    while state["done"] < n:
        before = state["done"]
        conn.process_data_events(time_limit=None)
        for _ in range(state["done"] - before):
            if sent < n:
                send()
                sent += 1
    secs = time.perf_counter() - start
    conn.close()
    if state["bad"]:
        raise RuntimeError(f"{state['bad']} RabbitMQ replies did not match their request")
    return rtts, n / secs


def rabbitmq_rows(port, small, large, large_bytes):
    server = subprocess.Popen([sys.executable, __file__, "--rpc-server", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        rows = []
        rpc_client(port, 64, 200, 1)  # warm up
        for test, size, n, window in (("latency 64 B", 64, small, 1),
                                      ("latency 92 KB", large_bytes, large, 1),
                                      ("16 in flight 64 B", 64, small, 16),
                                      ("16 in flight 92 KB", large_bytes, large, 16)):
            rtts, rate = rpc_client(port, size, n, window)
            rows.append({"transport": "RabbitMQ RPC", "test": test,
                         "p50_us": pct(rtts, 0.5) if window == 1 else 0,
                         "p99_us": pct(rtts, 0.99) if window == 1 else 0,
                         "per_s": rate, "count": n, "bytes": size})
        return rows
    finally:
        server.kill()
        server.wait()


# --- report --------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build/release")
    ap.add_argument("--small", type=int, default=5000)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--oneway", type=int, default=200000)
    ap.add_argument("--rpc-server", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rpc_server:
        rpc_server(args.rpc_server)
        return

    bench = os.path.join(args.build_dir, "bench", "transport_bench")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([bench, "--small", str(args.small), "--large", str(args.large),
                        "--oneway", str(args.oneway), "--json", out.name], check=True,
                       stdout=subprocess.DEVNULL)
        rows = json.load(open(out.name))
    large_bytes = next(r["bytes"] for r in rows
                       if r["transport"] == "bare cppzmq" and r["test"] == "latency 92 KB")
    with Broker() as broker:
        rows += rabbitmq_rows(broker.port, args.small, args.large, large_bytes)

    print(f"{'transport':<14} {'test':<20} {'p50 us':>8} {'p99 us':>8} {'per s':>10} "
          f"{'bytes':>7}")
    for r in rows:
        p50 = f"{r['p50_us']:.0f}" if r["p50_us"] else "-"
        p99 = f"{r['p99_us']:.0f}" if r["p99_us"] else "-"
        print(f"{r['transport']:<14} {r['test']:<20} {p50:>8} {p99:>8} {r['per_s']:>10.0f} "
              f"{r['bytes']:>7}")

    def get(transport, test, key):
        return next(r[key] for r in rows if r["transport"] == transport and r["test"] == test)

    print()
    print("ratios (goal)")
    for test in ("latency 64 B", "latency 92 KB"):
        gw = get("mummi gateway", test, "p50_us")
        z = get("bare cppzmq", test, "p50_us")
        rmq = get("RabbitMQ RPC", test, "p50_us")
        goal = 5 if "64" in test else 7
        print(f"  {test}: gateway / bare zmq p50 = {gw / z:.2f} (<= 1.5);"
              f" RabbitMQ / gateway p50 = {rmq / gw:.2f} (>= {goal})")
    print(f"  one-way 64 B: {get('mummi gateway', 'one-way 64 B', 'per_s'):.0f} msg/s (>= 100000)")


if __name__ == "__main__":
    main()
