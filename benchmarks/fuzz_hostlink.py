"""Fault-injection run of the host link: requests through a faulty line to the board model.

Each request is one image sent by the host runtime (HostLink, the shipped retry rules) over a
FaultyTransport (spikeforge.boards.faults) to the pure-Python board model (LinearBoard: its
logits come from the weights it has loaded), on a virtual clock. Per fault mix it prints the
requests accepted right, accepted wrong, refused with a clear (one-line) error, and hung (over
the request's deadline, (1 + retries) * (timeout + settle), plus one weight reload's worth when
the board lost its weights). Prints figures; asserts nothing.

    python benchmarks/fuzz_hostlink.py --requests N --faults mixed --rate 0.01 [--seed S]
    python benchmarks/fuzz_hostlink.py --requests N --faults flips,drops,bursts,babble,stalls,resets,all
    python benchmarks/fuzz_hostlink.py --pixels 3072 ...     (images larger than 1024 bytes)
    python benchmarks/fuzz_hostlink.py --gateware --requests N [--board icebreaker] [--baud 115200]

--gateware runs the same faults against the simulated board instead: the real gateware (the
shipped model's build for --board, UART host link included) under Verilator, driven through its
UART pins bit by bit in simulated time (spikeforge.boards.simulate, the Verilator build is cached).
The weights are loaded over a clean line first; the images are the digits test split in turn,
checked against the golden model. The line runs at --baud, by default the board's clock over 4,
the shortest bit the gateware's UART allows (6,000,000 baud on the iCEBreaker at 24 MHz, 12,500,000
on the ULX3S at its default 50 MHz), 2 and 4 times the boards' default 3 Mbaud: only the UART divisor of the
build differs. The host's times are given at 115200 baud (the reference rate, protocol version 3's
default) and scaled to the bit rate (spikeforge.boards.simulate.fuzz_link_times): of the
attempt timeout, 0.05 s (a request and its reply take about 12 ms at 115200 baud), the engine's
compute time stays and the rest is scaled; the settle time (1 ms) and the mean babble and stall
(--babble-seconds, --stall-seconds) are scaled, so that the same faults cost the same byte times.
--baud 115200 runs at the real bit rate (several times slower to simulate: docs/hostlink.md).
It prints where the simulation's time went (per phase of the pin transport: simulated and CPU
milliseconds per request).
"""

import argparse
import json
import sys
import time

from spikeforge.boards.faults import MIXES, fuzz


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000, help="requests per fault mix")
    parser.add_argument("--faults", default="mixed",
                        help=f"comma-separated fault mixes ({', '.join(MIXES)}; default mixed)")
    parser.add_argument("--rate", type=float, default=0.01, help="fault events per byte (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per attempt (default 1; with --gateware 0.05 at 115200 baud, scaled)")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=16, help="words per WEIGHTS frame (default 16)")
    parser.add_argument("--babble-seconds", type=float, default=0.3, help="mean length of a babble (default 0.3)")
    parser.add_argument("--stall-seconds", type=float, default=0.5, help="mean length of a stall (default 0.5)")
    parser.add_argument("--pixels", type=int, default=64, help="image size in bytes of the board model (default 64)")
    parser.add_argument("--gateware", action="store_true", help="against the simulated board (Verilator)")
    parser.add_argument("--board", default="icebreaker", help="board of --gateware (default icebreaker)")
    parser.add_argument("--baud", type=float, default=None,
                        help="bit rate of --gateware (default: the board's clock / 4; 115200: the real rate)")
    parser.add_argument("--json", action="store_true", help="one JSON line per mix")
    args = parser.parse_args()
    if args.gateware:
        return gateware(parser, args)
    if args.baud is not None:
        parser.error("--baud: only with --gateware (the board model's line is a virtual clock)")
    timeout = 1.0 if args.timeout is None else args.timeout
    mixes = args.faults.split(",")
    for m in mixes:
        if m not in MIXES:
            parser.error(f"--faults: {m!r} is unknown; allowed: {', '.join(MIXES)}")
    if not args.json:
        print(f"host link under faults: {args.requests} requests per mix, rate {args.rate:g} per byte, "
              f"seed {args.seed}, timeout {timeout:g} s, retries {args.retries}")
        print(f"{'mix':8} {'right':>9} {'wrong':>6} {'refused':>8} {'unclear':>8} {'hung':>5} {'reloads':>8} "
              f"{'line hours':>10} {'wall s':>7} {'req/s':>7}")
    for m in mixes:
        t0 = time.perf_counter()
        r = fuzz(args.requests, faults=m, rate=args.rate, seed=args.seed, timeout=timeout,
                 retries=args.retries, chunk=args.chunk, babble_seconds=args.babble_seconds,
                 stall_seconds=args.stall_seconds, pixels=args.pixels,
                 progress=lambda i, c, m=m: print(f"  {m}: {i} requests: {c}", file=sys.stderr, flush=True))
        wall = time.perf_counter() - t0
        r["wall_seconds"] = wall
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        print(f"{m:8} {r['right']:>9} {r['wrong']:>6} {r['refused']:>8} {r['refused_unclear']:>8} {r['hung']:>5} "
              f"{r['reloads']:>8} {r['seconds'] / 3600:>10.2f} {wall:>7.1f} {args.requests / wall:>7.0f}", flush=True)
        for kind, msg in r["examples"].items():
            print(f"    e.g. {kind}: {msg[:200]}")
        print(f"    faults injected: {r['injected']}")
        for w in r["wrong_details"]:
            print(f"    accepted wrong: request {w['request']} after {w['attempts']} attempts, faults in it "
                  f"{w['faults']}, {w['logits_differ']} of 10 logits differ "
                  f"({'the reply was damaged' if w['logits_differ'] <= 2 else 'computed from another image'})")


def gateware(parser, args):
    from spikeforge.boards.simulate import REAL_BAUD, fuzz_link_times, simulate_board
    from spikeforge.boards.top import plan_clock
    from spikeforge.boards.uart import MIN_DIVISOR
    from spikeforge.cli import default_model_path
    from spikeforge.data import load_digits_split
    from spikeforge.devices import get_target
    from spikeforge.modelfile import load_model

    if args.faults not in MIXES:
        parser.error(f"--faults: with --gateware one mix of {', '.join(MIXES)}")
    try:
        target = get_target(args.board)
    except ValueError as e:
        parser.error(f"--board: {e}")
    baud = plan_clock(target, None).mhz * 1e6 / MIN_DIVISOR if args.baud is None else args.baud
    model = load_model(default_model_path())
    images, labels = load_digits_split("test")
    images, labels = images[:50], labels[:50]
    try:
        at_real = {} if args.timeout is None else {"timeout": args.timeout}
        times = fuzz_link_times(model, target.name, images, baud, stall=args.stall_seconds,
                                babble=args.babble_seconds, **at_real)
    except ValueError as e:
        parser.error(f"--baud/--timeout: {e}")
    t0 = time.perf_counter()
    r = simulate_board(model, target.name, images, labels, baud=baud, timeout=times["timeout"],
                       settle=times["settle"], retries=args.retries,
                       fuzz={"requests": args.requests, "faults": args.faults, "rate": args.rate, "seed": args.seed,
                             "babble": times["babble"], "stall": times["stall"]},
                       progress=lambda done, total: print(f"  {done} requests", file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0
    r["times"] = times
    if args.json:
        print(json.dumps(r))
        return
    n = args.requests
    print(f"simulated {r['board']} board (Verilator, {r['clock_mhz']:g} MHz, UART divisor {r['uart_divisor']}: "
          f"{r['bit_rate']:,.0f} baud, {REAL_BAUD / r['bit_rate']:.4g} x the real bit time) under faults: "
          f"{n} requests, {args.faults} at {args.rate:g} per byte, seed {args.seed}, retries {args.retries}")
    print(f"host times (simulated; 0.05 s timeout and 1 ms settle at {REAL_BAUD} baud, line part scaled): "
          f"timeout {times['timeout'] * 1e3:.3f} ms (of it the engine's compute {times['compute'] * 1e3:.3f} ms), "
          f"settle {times['settle'] * 1e6:.1f} us, mean babble {times['babble'] * 1e3:.2f} ms, "
          f"stall {times['stall'] * 1e3:.2f} ms")
    print(f"right {r['right']}, wrong {r['wrong']}, refused {r['refused']} (unclear {r['refused_unclear']}), "
          f"hung {r['hung']}; {r['foreign_results']} intact RESULTs for another image or weight set rejected; "
          f"{r['reloads']} weight reloads; {r['attempts']} attempts, {r['timeouts']} timed out")
    print(f"faults injected: {r['injected']}")
    for kind, msg in r["examples"].items():
        print(f"    e.g. {kind}: {msg[:200]}")
    cycles = r["simulated_seconds"] * r["clock_mhz"] * 1e6
    print(f"{r['simulated_seconds']:.2f} s simulated ({cycles / n:,.0f} clock cycles per request), "
          f"{wall:.0f} s wall (build {r['build_seconds']:.0f} s), {n / max(r['sim_seconds'], 1e-9):.2f} requests/s "
          f"of simulation; the requests alone: {r['fuzz_wall_seconds']:.0f} s wall, {r['fuzz_cpu_seconds']:.0f} s CPU "
          f"({n / max(r['fuzz_wall_seconds'], 1e-9):.2f} requests/s, {cycles / max(r['fuzz_cpu_seconds'], 1e-9):,.0f} "
          f"cycles per CPU second)")
    print(f"  {'phase':8} {'calls/req':>9} {'sim ms/req':>10} {'CPU ms/req':>10}")
    phases = r["phases"]
    for name, (calls, sim, _wall, cpu) in phases.items():
        print(f"  {name:8} {calls / n:>9.1f} {sim * 1e3 / n:>10.3f} {cpu * 1e3 / n:>10.1f}")
    rest = r["fuzz_cpu_seconds"] - sum(p[3] for p in phases.values())
    print(f"  {'host':8} {'':>9} {'':>10} {rest * 1e3 / n:>10.1f}   (the host runtime and fault injection in Python)")


if __name__ == "__main__":
    main()
