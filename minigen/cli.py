"""The ``minigen`` command line.

minigen train MODEL [options]   train a model (vae, conv-vae, gan, dcgan, cvae, cgan, seed-gan, seed-vae:
                                the families in minigen.families), writing samples and a checkpoint
minigen sample DIR              draw a grid of samples from a trained run
minigen evaluate DIR            Frechet distance, coverage; VAEs: test ELBO, IWAE NLL
minigen gradcheck               check every primitive's gradients
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from tqdm import tqdm

from minigen import backend, data, families, training, viz
from minigen.checks import CASES, run_case
from minigen.generative import gan, vae


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


def train_command(args) -> int:
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(training.TrainConfig)}
    config = training.resolve(training.TrainConfig(**settings))
    _, records = training.train(config, resume=args.resume, progress=not args.quiet)
    out = Path(config.out)
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    print(f"trained {config.model} on {config.data} for {config.epochs} epochs")
    print(f"wrote {out}/: {', '.join(written)}")
    if records:
        last = records[-1]
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in last.items()))
    return 0


def sample_command(args) -> int:
    config, model, _ = training.load_run(args.run, args.device)
    family = families.get(config.model)
    backend.manual_seed(args.seed)
    samples, _ = family.sample(model, config, args.n)
    path = Path(args.output) if args.output else Path(args.run) / "samples-drawn.png"
    if samples.ndim == 2:
        viz.ring_scatter([("samples", samples)], path, modes=data.RING_MODES)
    else:
        viz.image_grid(samples, path, nrow=family.grid_columns(model, args.n))
    print(f"wrote {args.n} samples of {config.model} ({config.data}) to {path}")
    return 0


def evaluate_command(args) -> int:
    result = training.evaluate(args.run, k=args.k, limit=args.limit, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<24} {value:.4f}" if isinstance(value, float) else f"{key:<24} {value}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``minigen train: error: ...``) and exit 2,
    without the usage block: the message names the flag and the value."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, low=None, low_inclusive=False):
    """An argparse type: a finite ``kind`` above ``low`` (at least ``low`` if inclusive)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value < low if low_inclusive else value <= low):
            raise argparse.ArgumentTypeError(
                f"must be {'at least' if low_inclusive else 'above'} {low}, got {text}"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT, POSITIVE_FLOAT = _number(int, 0), _number(float, 0)
NATURAL, NON_NEGATIVE = _number(int, 0, low_inclusive=True), _number(float, 0, low_inclusive=True)


def _add_train(commands) -> None:
    models = "; ".join(f"{name}: {family.summary}" for name, family in families.FAMILIES.items())
    train = commands.add_parser(
        "train",
        help="train a generative model, writing samples, losses and a checkpoint",
        description="Train a model on a data set, showing a progress bar with the running losses. "
        "Writes OUT/config.json, metrics.jsonl, checkpoint.npz (every epoch), samples.png, "
        f"losses.png and the family's own pictures (VAEs: reconstructions.png). Models: {models}.",
    )
    train.add_argument("model", choices=training.MODELS, help="what to train")
    _add_run_options(train)
    _add_family_options(train)
    train.set_defaults(handler=train_command)


def _add_run_options(train) -> None:
    add = train.add_argument
    add("--data", default="digits", choices=data.KNOWN, help="data set (default: digits, offline)")
    add("--epochs", type=POSITIVE_INT, help="epochs (default: 60 digits, 100 vae digits, 10 MNIST, 768 ring)")
    add("--batch-size", type=POSITIVE_INT, help="examples per step (default: 128; 32 vae digits)")
    add(
        "--latent-dim", type=POSITIVE_INT, help="latent size (default: 20 VAE, 4 vae digits, 100 GAN, 8 ring)"
    )
    add(
        "--lr",
        type=POSITIVE_FLOAT,
        help="learning rate (default: 1e-3 VAE and ring GAN, 2e-4 image GAN; Adam, RMSprop for seed-*)",
    )
    add(
        "--lr-milestones", type=POSITIVE_INT, nargs="+", metavar="EPOCH",
        help="divide the learning rate by 10 at these epochs (ring default: at 1/2 and 4/5 of the run)",
    )  # fmt: skip
    add("--limit", type=POSITIVE_INT, help="train on the first N examples only")
    add("--device", choices=backend.DEVICES, help="cpu or cuda (default: MINIGEN_DEVICE or cpu)")
    add("--seed", type=NATURAL, default=0, help="random seed (default: 0)")
    add("--out", help="output directory (default: runs/MODEL-DATA)")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    add("--quiet", action="store_true", help="no progress bar")


def _add_family_options(train) -> None:
    """The options that only some families read (``families.base.OPTIONS``)."""
    add = train.add_argument_group(
        "family options (an error for a family that does not read them)"
    ).add_argument
    add("--beta", type=NON_NEGATIVE, help="VAEs: weight of the KL term, beta-VAE (default: 1)")
    add(
        "--likelihood", choices=vae.LIKELIHOODS,
        help=f"VAEs: p(x|z), Gaussian has std {vae.PIXEL_STD} (default: bernoulli; vae on digits: gaussian)",
    )  # fmt: skip
    add("--hidden-layers", type=POSITIVE_INT, help="vae: hidden layers each side (default: 1; 2 on digits)")
    add("--loss", choices=gan.LOSSES, help="GANs: the objective (default: non-saturating)")
    add("--gp-weight", type=NON_NEGATIVE, help="GANs: gradient-penalty weight (default: 10 for wasserstein)")
    add(
        "--r1-weight", type=NON_NEGATIVE,
        help="GANs: gamma of the R1 penalty (gamma/2) E||grad D(x_real)||^2 (default: 0, off)",
    )  # fmt: skip
    add(
        "--n-critic", type=POSITIVE_INT, help="GANs: critic steps per generator step (default: 5 wasserstein)"
    )
    add("--pack", type=POSITIVE_INT, help="gan: PacGAN, D judges packs of N samples (default: 4 on ring)")


def _add_sample_and_evaluate(commands) -> None:
    sample = commands.add_parser(
        "sample", help="draw samples from a trained run", description="Draw samples from a run's checkpoint "
        "(for a conditional model, one row per class)."
    )  # fmt: skip
    sample.add_argument("run", help="the run directory (the --out of minigen train)")
    sample.add_argument("--n", type=POSITIVE_INT, default=64, help="how many samples (default: 64)")
    sample.add_argument("--output", help="PNG path (default: RUN/samples-drawn.png)")
    sample.add_argument("--seed", type=NATURAL, default=0, help="random seed (default: 0)")
    sample.add_argument("--device", choices=backend.DEVICES, help="cpu or cuda")
    sample.set_defaults(handler=sample_command)
    evaluate = commands.add_parser(
        "evaluate",
        help="measure a trained run on the test set",
        description="Samples of any image model: Frechet distance and class coverage in the features "
        "of a classifier trained once on the same data set (cached in the data directory); for a "
        "conditional model, the share of samples the classifier puts in the asked-for class; on the "
        "ring, mode coverage. VAEs also: test negative ELBO and IWAE negative log-likelihood, in "
        "nats per image. Seeded from the run's seed, so the numbers repeat.",
    )
    evaluate.add_argument("run", help="the run directory (the --out of minigen train)")
    evaluate.add_argument("--k", type=POSITIVE_INT, default=1000, help="importance samples for IWAE")
    evaluate.add_argument("--limit", type=POSITIVE_INT, help="use the first N test examples only")
    evaluate.add_argument("--device", choices=backend.DEVICES, help="cpu or cuda")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=evaluate_command)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minigen", description="minigen: generative models from scratch")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_train(commands)
    _add_sample_and_evaluate(commands)
    check = commands.add_parser(
        "gradcheck",
        help="check every primitive's gradients against finite differences",
        description="Check the first and second derivatives of every primitive against central "
        "differences in float64, on random inputs, and print a table.",
    )
    check.add_argument("--device", default="cpu", choices=backend.DEVICES, help="where to run (default: cpu)")
    check.add_argument("--seed", type=NATURAL, default=0, help="seed for the random inputs (default: 0)")
    check.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only the checks whose name contains NAME"
    )
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(handler=gradcheck_command)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except backend.DeviceError as error:
        print(f"minigen: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, data.DataError) as error:
        print(f"minigen {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
