"""The training loop, top to bottom: runtime, data, model, optimiser, resume, loop, validation,
checkpoints. One code path for CPU, one GPU and torchrun multi-GPU; rank 0 alone logs,
validates and writes.

Run it with ``gaitlab train --config configs/….yaml [--resume]``, or on several GPUs with
``torchrun --nproc-per-node N -m training.train --config …``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models.registry import create_model
from training.augment import augment_sequences
from training.checkpoint import load_checkpoint, restore_rng_states, save_checkpoint
from training.config import TrainConfig
from training.data.cache import SilhouetteCache
from training.data.sampling import PKSampler, frame_windows
from training.data.subjects import parse_subjects
from training.embedding import embed_cache
from training.evaluation.protocol import evaluate
from training.losses import WeightedLosses
from training.run_log import RunLog
from training.runtime import Runtime, setup_runtime, teardown_runtime

LATEST = "latest.pt"


def _generator(seed: int, iteration: int, rank: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, iteration, rank, 7]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def validate(
    model: torch.nn.Module,
    cache: SilhouetteCache,
    config: TrainConfig,
    device: torch.device,
    max_frames: int | None = None,
) -> dict[str, float]:
    """The standard protocol on the validation subjects: headline rank-1 per probe set
    (``max_frames`` caps each sequence, for quick intermediate points)."""
    feats = embed_cache(model, cache, device, config.eval.batch_size, max_frames, progress=False)
    result = evaluate(feats, cache.subjects, cache.conditions, cache.views, config.eval.metric)
    return {name: float(value) for name, value in result.mean.items()}


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train as ``config`` says; returns the path of the last checkpoint.

    ``on_step(iteration)`` is called after every training step (progress of a campaign).
    """
    runtime = setup_runtime(config.run)
    try:
        last = _train(config, runtime, resume, progress, on_step)
    except BaseException:
        teardown_runtime(runtime, wait_for_others=False)  # they may be gone: do not wait
        raise
    teardown_runtime(runtime)
    return last


def _train(
    config: TrainConfig,
    runtime: Runtime,
    resume: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> Path:
    run, data = config.run, config.data
    out_dir = Path(run.out_dir)
    checkpoint_path = out_dir / LATEST
    torch.manual_seed(run.seed)
    show = progress and runtime.is_main

    # --- data: the training partition in memory; validation subjects on rank 0 only
    train_cache = SilhouetteCache.load(
        data.root, parse_subjects(data.train_subjects), min_frames=data.min_frames, progress=show
    )
    if len(train_cache) == 0:
        raise ValueError(f"no training sequences for {data.train_subjects} under {data.root}")
    val_cache = None
    if data.val_subjects and runtime.is_main:
        val_cache = SilhouetteCache.load(
            data.root, parse_subjects(data.val_subjects), progress=show
        )
    sampler = PKSampler(
        train_cache.subjects,
        config.sampler.subjects,
        config.sampler.sequences,
        seed=run.seed,
        rank=runtime.rank,
        world=runtime.world,
    )

    # --- model, optimiser, schedule
    model_options = config.model.net_options(sampler.num_classes)
    model = create_model(config.model.name, **model_options).to(runtime.device)
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.optimizer.lr,
        momentum=config.optimizer.momentum,
        weight_decay=config.optimizer.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, list(config.optimizer.milestones), config.optimizer.gamma
    )
    scaler = runtime.grad_scaler()
    criterion = WeightedLosses(config.losses)

    # --- resume
    iteration, elapsed = 0, 0.0
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, runtime.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        iteration, elapsed = state["iteration"], state["elapsed_s"]
        restore_rng_states(state["rng"])
        if show:
            print(f"resumed from {checkpoint_path} at iteration {iteration}")
    elif resume and show:
        print(f"no checkpoint at {checkpoint_path}; starting from scratch")

    trained: torch.nn.Module = model
    if runtime.distributed:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    if run.compile:  # the compiled wrapper shares the model's parameters; checkpoints stay plain
        trained = torch.compile(trained)
    log = None
    if runtime.is_main:
        terms = tuple(term.name for term in config.losses)
        log = RunLog(out_dir, iteration, tuple(criterion.log_fields()), terms)

    def checkpoint() -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "iteration": iteration,
                "elapsed_s": elapsed,
                "config": config.model_dump(mode="json"),
                "model_name": config.model.name,
                "model_options": model_options,
                "subject_ids": sampler.subject_ids.tolist(),
            },
        )

    def validations_due(at: int) -> list[int | None]:
        """Frame caps of the validations due at iteration ``at`` (None: every frame).

        Intermediate points may cap frames; the final one uses every frame (the protocol),
        after a capped one too, so the curve ends on a point like the others."""
        finished = at == run.iterations
        if not data.val_subjects or at == 0 or not (at % run.val_every == 0 or finished):
            return []
        caps = [run.val_max_frames] if run.val_max_frames else []
        return [*caps, None] if finished else caps or [None]

    def validate_and_log(at: int, caps: list[int | None]) -> None:
        for max_frames in caps:
            headline = validate(model, val_cache, config, runtime.device, max_frames)
            log.validation(at, headline, max_frames)
            bar.write(
                f"iteration {at}: "
                + " ".join(f"{k} {v:.1f}" for k, v in headline.items())
                + f"  ({elapsed / 60:.1f} min training"
                + (f", first {max_frames} frames)" if max_frames else ", all frames)")
            )

    # --- the loop
    trained.train()
    bar = tqdm(
        total=run.iterations, initial=iteration, desc=config.name, unit="it", disable=not show
    )
    # the checkpoint is written before its iteration's validations: a run stopped during them
    # (the all-frames final one is the longest step of all) does them now
    missing = log.validations_missing(iteration, validations_due(iteration)) if log else []
    if missing and val_cache is not None:
        validate_and_log(iteration, missing)
    if iteration:
        runtime.barrier()  # the other ranks wait while rank 0 catches up
    running = None
    while iteration < run.iterations:
        started = time.perf_counter()
        indices, labels = sampler.batch(iteration)
        rng = np.random.default_rng([run.seed, iteration, runtime.rank, 1])
        clips = frame_windows(train_cache, indices, data.frames, data.ordered, rng)
        # uint8 crosses to the device (4x less than float); scaling and augmentation run there
        sils = torch.from_numpy(clips).to(runtime.device, non_blocking=True)
        sils = sils.float().div_(255)  # [n, s, 64, 44]
        sils = augment_sequences(sils, data.augment, _generator(run.seed, iteration, runtime.rank))
        targets = torch.from_numpy(labels).to(runtime.device)

        with runtime.autocast():
            outputs = trained(sils)
        loss, terms_logged = criterion(outputs, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}")

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        lr = scheduler.get_last_lr()[0]  # the rate this step trained at
        scheduler.step()
        iteration += 1
        step_seconds = time.perf_counter() - started
        elapsed += step_seconds

        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
        if log and (iteration % run.log_every == 0 or iteration == run.iterations):
            log.train(
                {
                    "iteration": iteration,
                    "loss": value,
                    **{name: term.item() for name, term in terms_logged.items()},
                    "lr": lr,
                    "frames_per_s": sils.shape[0] * sils.shape[1] * runtime.world / step_seconds,
                    "elapsed_s": elapsed,
                }
            )
        # The same decisions on every rank, so the others wait while rank 0 writes or validates.
        due_checkpoint = iteration % run.checkpoint_every == 0 or iteration == run.iterations
        due_validation = validations_due(iteration)
        if due_checkpoint and runtime.is_main:
            checkpoint()
        if due_validation and log and val_cache is not None:
            validate_and_log(iteration, due_validation)
        if due_checkpoint or due_validation:
            runtime.barrier()
        if on_step:
            on_step(iteration)
    bar.close()
    if log:
        log.plot()
        log.close()
    return checkpoint_path
