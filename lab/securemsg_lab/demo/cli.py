"""Command line of the demo: options, backend choice, signals, cleanup."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from ..core import paths, process, registry
from ..wire.protocol import DEFAULT_KEY
from .procs import DemoError, Janitor
from .stage import open_stage
from .steps import STEPS, Demo, closing, reference_titles, run_steps
from .ui import Console


def parse_steps(text: str) -> list[int]:
    """ "5", "6,7", "1-3" or "all"."""
    if text == "all":
        return list(range(1, len(STEPS) + 1))
    chosen: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            span = range(int(first), int(last or first) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a step list: {text}") from None
        for number in span:
            if not 1 <= number <= len(STEPS):
                raise argparse.ArgumentTypeError(f"no step {number} (1..{len(STEPS)})")
            chosen.append(number)
    return sorted(set(chosen))


def add_choice(
    parser: argparse.ArgumentParser, option: str, choices: tuple[str, ...], text: str
) -> None:
    """An option choosing one of `choices`, or "auto" (the default) to let the demo pick."""
    parser.add_argument(option, choices=("auto", *choices), default="auto", help=text)


def build_parser() -> argparse.ArgumentParser:
    titles = reference_titles(registry.default())
    steps = "\n".join(f"  {n}. {step.title.format(**titles)}" for n, step in enumerate(STEPS, 1))
    parser = argparse.ArgumentParser(
        prog="securemsg-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"steps:\n{steps}",
        description="securemsg in front of a class: the seed's Demo Guide, the wire, "
        "the attack on XOR, and secure mode.",
    )
    add_choice(
        parser,
        "--backend",
        ("docker", "local"),
        "docker: the lab images; local: processes on 127.0.0.1; "
        "auto (default): docker when an engine answers",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("SECUREMSG_KEY") or DEFAULT_KEY.decode(),
        help="the xor key every program uses (default: $SECUREMSG_KEY or MY_SECRET_KEY)",
    )
    parser.add_argument("--no-pause", action="store_true", help="do not wait for Enter")
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="NAME",
        help="another registered implementation (docs/implementations.md) that joins "
        "step 3, both ways with C; repeatable",
    )
    parser.add_argument(
        "--step",
        type=parse_steps,
        default=None,
        metavar="N",
        help="run only these steps: 5, 6,7 or 1-3 (default: all)",
    )
    add_choice(
        parser,
        "--capture",
        ("tcpdump", "relay"),
        "how steps 6 and 8 record the wire: tcpdump (needs root/NET_RAW), a recording "
        "relay of the demo's own, or auto (default): tcpdump when it starts, else the relay",
    )
    parser.add_argument(
        "--save-pcap",
        type=Path,
        metavar="PATH",
        help="also write step 6's pcap here (Wireshark), and step 8's as PATH with -noise "
        "before its suffix (needs tcpdump capture)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    if problem := paths.outside_checkout():
        print(problem, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    if not args.key:
        print("securemsg-demo: the key must not be empty", file=sys.stderr)
        return 2
    if args.save_pcap and args.capture == "relay":
        print("securemsg-demo: --save-pcap needs tcpdump: the relay records frames, not packets",
              file=sys.stderr)
        return 2
    extra = tuple(dict.fromkeys(args.extra))
    unknown = [name for name in extra if name not in registry.default()
               or name in registry.default().reference_names()]
    if unknown:
        print(f"securemsg-demo: --with: not another registered implementation: "
              f"{', '.join(unknown)} (registered: {', '.join(registry.default().names())})",
              file=sys.stderr)
        return 2
    console = Console(pause=not args.no_pause)
    janitor = Janitor()
    process.interrupt_on(signal.SIGTERM, signal.SIGHUP)
    started = time.monotonic()
    status = 0
    try:
        stage = open_stage(args.backend, janitor, args.key, extra)
        stage.capture_method = args.capture
        console.title("securemsg: secure client-server communication, live")
        console.narrate(
            f"Backend: {stage.name} ({stage.description}); "
            f"key: {args.key!r} ({len(args.key.encode())} bytes)"
        )
        demo = Demo(console, stage, args.key, stage.repo, args.save_pcap, extra=extra)
        run_steps(demo, args.step or list(range(1, len(STEPS) + 1)))
        closing(demo)
    except KeyboardInterrupt:
        console.line()
        console.note("interrupted: cleaning up")
        status = 130
    except DemoError as exc:
        console.bad(str(exc))
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        failures = janitor.close()
        for failure in failures:
            console.bad(f"cleanup: {failure}")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    console.line(console.style("dim", f"Demo finished in {time.monotonic() - started:.1f} s"))
    return status
