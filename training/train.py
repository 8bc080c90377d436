"""``python -m training.train --config FILE [--resume]``: the entry point torchrun launches.

    torchrun --standalone --nproc-per-node 4 -m training.train \\
        --config configs/convlstm_fusion_cuda.yaml
"""

from __future__ import annotations

import argparse
import sys

from training.cli import add_train_arguments, run_train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
