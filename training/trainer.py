"""The training loop, top to bottom: runtime, data, model, optimiser, resume, loop, validation,
checkpoints. One code path for CPU, one GPU and torchrun multi-GPU; rank 0 alone logs,
validates and writes.

Run it with ``gaitlab train --config configs/….yaml [--resume]``, or on several GPUs with
``torchrun --nproc-per-node N -m training.train --config …``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Training:
    """Everything a run changes as it trains, and what a checkpoint holds of it."""

    model: torch.nn.Module  # the net itself (its state is what checkpoints keep)
    trained: torch.nn.Module  # what the loop calls: the net, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: WeightedLosses
    model_options: dict
    subject_ids: list[str]  # class index → subject, as the sampler numbers them
    iteration: int = 0
    elapsed: float = 0.0  # seconds spent in training steps, over every sitting


def build_training(config: TrainConfig, runtime: Runtime, sampler: PKSampler) -> Training:
    """Net, optimiser, schedule, loss scaler and losses, on the run's device."""
    model_options = config.model.net_options(sampler.num_classes)
    model = create_model(config.model.name, **model_options).to(runtime.device)
    if config.run.channels_last:
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
    return Training(
        model=model,
        trained=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=runtime.grad_scaler(),
        criterion=WeightedLosses(config.losses),
        model_options=model_options,
        subject_ids=sampler.subject_ids.tolist(),
    )


def resume_training(training: Training, path: Path, device: torch.device) -> None:
    """Load a checkpoint written by :func:`save_training` into ``training``."""
    state = load_checkpoint(path, device)
    training.model.load_state_dict(state["model"])
    training.optimizer.load_state_dict(state["optimizer"])
    training.scheduler.load_state_dict(state["scheduler"])
    training.scaler.load_state_dict(state["scaler"])
    training.iteration, training.elapsed = state["iteration"], state["elapsed_s"]
    restore_rng_states(state["rng"])


def save_training(training: Training, config: TrainConfig, path: Path) -> None:
    """A checkpoint that alone rebuilds the net (its options and config) and resumes the run."""
    save_checkpoint(
        path,
        {
            "model": training.model.state_dict(),
            "optimizer": training.optimizer.state_dict(),
            "scheduler": training.scheduler.state_dict(),
            "scaler": training.scaler.state_dict(),
            "iteration": training.iteration,
            "elapsed_s": training.elapsed,
            "config": config.model_dump(mode="json"),
            "model_name": config.model.name,
            "model_options": training.model_options,
            "subject_ids": training.subject_ids,
        },
    )


def validations_due(config: TrainConfig, at: int) -> list[int | None]:
    """Frame caps of the validations due at iteration ``at`` (None: every frame).

    Intermediate points may cap frames; the final one uses every frame (the protocol), after a
    capped one too, so the curve ends on a point like the others."""
    run = config.run
    finished = at == run.iterations
    if not config.data.val_subjects or at == 0 or not (at % run.val_every == 0 or finished):
        return []
    caps = [run.val_max_frames] if run.val_max_frames else []
    return [*caps, None] if finished else caps or [None]


def validate_and_log(
    training: Training,
    val_cache: SilhouetteCache,
    config: TrainConfig,
    device: torch.device,
    log: RunLog,
    caps: list[int | None],
    write: Callable[[str], None],
) -> None:
    """Each validation of ``caps`` at the current iteration: logged, and a line to ``write``."""
    for max_frames in caps:
        headline = validate(training.model, val_cache, config, device, max_frames)
        log.validation(training.iteration, headline, max_frames)
        write(
            f"iteration {training.iteration}: "
            + " ".join(f"{k} {v:.1f}" for k, v in headline.items())
            + f"  ({training.elapsed / 60:.1f} min training"
            + (f", first {max_frames} frames)" if max_frames else ", all frames)")
        )


@dataclass
class Step:
    """What one training step did, for the log."""

    loss: float
    terms: dict[str, float]
    lr: float  # the rate the step trained at
    frames: int  # frames it saw, on this rank
    seconds: float


def train_step(
    training: Training,
    train_cache: SilhouetteCache,
    sampler: PKSampler,
    config: TrainConfig,
    runtime: Runtime,
) -> Step:
    """One P×K batch through the net, one optimiser step; ``training.iteration`` advances."""
    started = time.perf_counter()
    run, data, iteration = config.run, config.data, training.iteration
    indices, labels = sampler.batch(iteration)
    rng = np.random.default_rng([run.seed, iteration, runtime.rank, 1])
    clips = frame_windows(train_cache, indices, data.frames, data.ordered, rng)
    # uint8 crosses to the device (4x less than float); scaling and augmentation run there
    sils = torch.from_numpy(clips).to(runtime.device, non_blocking=True)
    sils = sils.float().div_(255)  # [n, s, 64, 44]
    sils = augment_sequences(sils, data.augment, _generator(run.seed, iteration, runtime.rank))
    targets = torch.from_numpy(labels).to(runtime.device)

    with runtime.autocast():
        outputs = training.trained(sils)
    loss, terms = training.criterion(outputs, targets)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}")

    training.optimizer.zero_grad(set_to_none=True)
    training.scaler.scale(loss).backward()
    training.scaler.step(training.optimizer)
    training.scaler.update()
    lr = training.scheduler.get_last_lr()[0]
    training.scheduler.step()
    seconds = time.perf_counter() - started
    training.iteration += 1
    training.elapsed += seconds
    return Step(
        loss.item(),
        {name: term.item() for name, term in terms.items()},
        lr,
        sils.shape[0] * sils.shape[1],
        seconds,
    )


def load_data(
    config: TrainConfig, runtime: Runtime, show: bool
) -> tuple[SilhouetteCache, SilhouetteCache | None, PKSampler]:
    """The training partition in memory, the validation subjects (rank 0 only; None without
    them) and this rank's P×K sampler."""
    data = config.data
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
        seed=config.run.seed,
        rank=runtime.rank,
        world=runtime.world,
    )
    return train_cache, val_cache, sampler


def _train(
    config: TrainConfig,
    runtime: Runtime,
    resume: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> Path:
    run = config.run
    out_dir = Path(run.out_dir)
    checkpoint_path = out_dir / LATEST
    torch.manual_seed(run.seed)
    show = progress and runtime.is_main

    train_cache, val_cache, sampler = load_data(config, runtime, show)

    # --- model, optimiser, schedule; resume
    training = build_training(config, runtime, sampler)
    if resume and checkpoint_path.exists():
        resume_training(training, checkpoint_path, runtime.device)
        if show:
            print(f"resumed from {checkpoint_path} at iteration {training.iteration}")
    elif resume and show:
        print(f"no checkpoint at {checkpoint_path}; starting from scratch")
    if runtime.distributed:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        training.trained = DistributedDataParallel(training.model, device_ids=device_ids)
    if run.compile:  # the compiled wrapper shares the model's parameters; checkpoints stay plain
        training.trained = torch.compile(training.trained)
    log = None
    if runtime.is_main:
        terms = tuple(term.name for term in config.losses)
        log = RunLog(out_dir, training.iteration, tuple(training.criterion.log_fields()), terms)

    # --- the loop
    training.trained.train()
    bar = tqdm(
        total=run.iterations,
        initial=training.iteration,
        desc=config.name,
        unit="it",
        disable=not show,
    )
    # the checkpoint is written before its iteration's validations: a run stopped during them
    # (the all-frames final one is the longest step of all) does them now
    if log and val_cache is not None:
        due = validations_due(config, training.iteration)
        if missing := log.validations_missing(training.iteration, due):
            validate_and_log(training, val_cache, config, runtime.device, log, missing, bar.write)
    if training.iteration:
        runtime.barrier()  # the other ranks wait while rank 0 catches up
    running = None
    while training.iteration < run.iterations:
        step = train_step(training, train_cache, sampler, config, runtime)
        iteration = training.iteration
        running = step.loss if running is None else 0.95 * running + 0.05 * step.loss
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
        if log and (iteration % run.log_every == 0 or iteration == run.iterations):
            log.train(
                {
                    "iteration": iteration,
                    "loss": step.loss,
                    **step.terms,
                    "lr": step.lr,
                    "frames_per_s": step.frames * runtime.world / step.seconds,
                    "elapsed_s": training.elapsed,
                }
            )
        # The same decisions on every rank, so the others wait while rank 0 writes or validates.
        due_checkpoint = iteration % run.checkpoint_every == 0 or iteration == run.iterations
        due_validation = validations_due(config, iteration)
        if due_checkpoint and runtime.is_main:
            save_training(training, config, checkpoint_path)
        if due_validation and log and val_cache is not None:
            validate_and_log(
                training, val_cache, config, runtime.device, log, due_validation, bar.write
            )
        if due_checkpoint or due_validation:
            runtime.barrier()
        if on_step:
            on_step(iteration)
    bar.close()
    if log:
        log.plot()
        log.close()
    return checkpoint_path
