"""``python encode.py``: train a classifier network on a labelled dataset and write its
penultimate-layer features as new datasets, one per width."""

from __future__ import annotations

import argparse
import logging

from annbench.apps.encode import MODELS
from annbench.apps.encoders.base import GRU_HIDDEN, EncoderSettings
from annbench.cli.common import Parser, guarded, non_negative_int, positive_float, positive_int
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.logs import setup_logging

log = logging.getLogger("annbench.apps.encode")

DISTANCES = ("euclidean", "angular", "ip")


def widths(text: str) -> list[int]:
    """``"16,32,64"`` → ``[16, 32, 64]``: positive integers, no repeats."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers; "
                                         f"valid: e.g. 16,32,64") from None
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: valid widths are distinct integers >= 1, e.g. 16,32,64")
    return values


def parser(prog: str = "encode.py") -> Parser:
    d = EncoderSettings("mlp", 1)
    p = Parser(prog=prog, description=__doc__, parents=[shared("data-dir", "source-dir", "verbose", "quiet")])
    p.add_argument("--from", dest="source", required=True, help="labelled dataset: registered name or .hdf5 path")
    p.add_argument("--model", choices=tuple(MODELS), default="mlp",
                   help="mlp (scikit-learn), cnn or gru (PyTorch, the torch extra; gru reads the keys: strings "
                        "such as surnames); default mlp")
    p.add_argument("--dim", type=widths, required=True, help="penultimate width(s), comma-separated: 16,32,64,128")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"training epochs (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--distance", choices=DISTANCES, default="euclidean",
                   help="distance of the encoded dataset (default euclidean)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help=f"width of the hidden layer before the penultimate one (default {d.hidden}); for gru the "
                        f"channels of its convolution (default {GRU_HIDDEN})")
    p.add_argument("--conv-width", type=non_negative_int, default=d.conv_width,
                   help=f"gru only: width of the causal 1-D convolution before the GRU, 0 = none "
                        f"(default {d.conv_width})")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--learning-rate", type=positive_float, default=d.learning_rate, help=f"default {d.learning_rate:g}")
    p.add_argument("--threads", type=positive_int, default=d.threads, help=f"training threads (default {d.threads})")
    p.add_argument("--force", action="store_true", help="replace encoded datasets that exist")
    p.add_argument("--binary", action="store_true", help="also write each encoding's binary codes: every feature "
                   "thresholded at its training median, packed bits under hamming (<prefix>-<model>-<dim>-hamming)")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bar (-q draws none either)")
    return p


@guarded
def main(argv: list[str] | None = None, prog: str = "encode.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    from annbench.apps.encode import encode
    from annbench.datasets.registry import load

    data_dir = args.data_dir or paths.default_data_dir()
    source = load(args.source, data_dir, args.source_dir)
    for i, dim in enumerate(args.dim):
        hidden = args.hidden or (GRU_HIDDEN if args.model == "gru" else EncoderSettings.hidden)
        settings = EncoderSettings(args.model, dim, args.epochs, args.seed, hidden, args.batch_size,
                                   args.learning_rate, args.threads, args.conv_width)
        o = encode(source, settings, args.distance, data_dir, force=args.force,
                   progress=not (args.no_progress or args.quiet))
        if i == 0:
            print(f"{'dataset':<44} {'dim':>5} {'net_acc':>8} {'train_s':>8} {'encode_s':>8}  file")
        print(f"{o.name:<44} {dim:>5} {o.test_accuracy:>8.4f} {o.training_s:>8.2f} {o.encoding_s:>8.2f}  "
              f"{o.path}{' (reused)' if o.reused else ''}", flush=True)
        if args.binary:
            from annbench.apps.binary import binarize
            from annbench.datasets.format import load_dataset

            encoded = load_dataset(o.path, o.name)
            b = binarize(encoded, args.model, data_dir)
            print(f"{b.name:<44} {b.bits:>5} {'10-NN exact accuracy':>26}: float "
                  f"{float(encoded.attrs['knn_accuracy_exact_k10']):.4f}, binary {b.knn_accuracy:.4f}  {b.path}",
                  flush=True)
    return 0
