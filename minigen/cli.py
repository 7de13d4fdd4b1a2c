"""The ``minigen`` command line: ``minigen gradcheck`` checks every primitive's gradients."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from minigen import backend
from minigen.checks import CASES, run_case


def gradcheck_command(args) -> int:
    """Run the first- and second-order check of every catalogued primitive; 1 on any failure."""
    backend.array_module(args.device)  # a missing CuPy or GPU is reported before any work
    backend.manual_seed(args.seed)
    cases = [c for c in CASES if not args.only or any(word in c.name for word in args.only)]
    if not cases:
        names = ", ".join(c.name for c in CASES)
        print(f"no check matches {args.only}; the checks are: {names}", file=sys.stderr)
        return 2
    rows = []
    for case in tqdm(cases, desc="gradcheck", unit="primitive", file=sys.stderr, disable=args.quiet):
        first, second = run_case(case, args.device)
        rows.append((case.name, first, second))
    width = max(len(name) for name, _, _ in rows)
    columns = f"{'1st max abs':>11} {'1st max rel':>11}  {'2nd max abs':>11} {'2nd max rel':>11}"
    header = f"{'primitive':<{width}}  {columns}  ok"
    print(header)
    print("-" * len(header))
    failed = 0
    for name, first, second in rows:
        ok = first.passed and second.passed
        failed += not ok
        print(
            f"{name:<{width}}  {first.max_abs_error:>11.2e} {first.max_rel_error:>11.2e}  "
            f"{second.max_abs_error:>11.2e} {second.max_rel_error:>11.2e}  {'yes' if ok else 'NO'}"
        )
        if not ok:
            for report in (first, second):
                if not report.passed:
                    print("    " + report.table.replace("\n", "\n    "))
    print(
        f"\n{len(rows) - failed} of {len(rows)} checks passed on {args.device} "
        "(float64, central differences with eps=1e-6, atol=1e-5, rtol=1e-3)"
    )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigen", description="minigen: generative models from scratch")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "gradcheck",
        help="check every primitive's gradients against finite differences",
        description="Check the first and second derivatives of every primitive against central "
        "differences in float64, on random inputs, and print a table.",
    )
    check.add_argument("--device", default="cpu", choices=backend.DEVICES, help="where to run (default: cpu)")
    check.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default: 0)")
    check.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only the checks whose name contains NAME"
    )
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(run=gradcheck_command)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except backend.DeviceError as error:
        print(f"minigen: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
