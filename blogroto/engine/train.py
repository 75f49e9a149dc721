"""Train a filter: a Johnson transformation network learns one artwork's colours and textures.

Perceptual losses from VGG16 (blogroto.engine.losses), Adam
with a cosine learning-rate schedule, progressive resolution (cheap low-resolution steps first).

Distillation (`teacher`): instead of learning from the artwork, a slim network learns to reproduce
what a trained (usually full-size) filter makes of each photo: pixel, VGG-feature and Gram-matrix
differences to the teacher's output (`losses.distillation_losses`). The slim network applies ~3.4x
faster; the teacher sets the look.

Safe to interrupt: the run lives in a work folder `.<slug>.training/` beside the output, with a
checkpoint every few minutes and on Ctrl-C/SIGTERM. The data order depends only on (seed, step),
so `--resume` continues exactly where a run stopped. The filter folder itself is assembled in a
hidden `.partial` folder and renamed into place at the very end, so a half-written filter never
looks complete.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import platform
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from blogroto import __version__
from blogroto.engine import checkpoint, steps
from blogroto.engine.calibration import measure_bfloat16_psnr, precision_record
from blogroto.engine.content import ContentPool, load_style_image
from blogroto.engine.filter_folder import (
    EXAMPLE_SIDE,
    contact_sheet,
    load_filter_as,
    loss_plot,
    save_artwork,
    save_examples,
    save_jpeg,
    swap_into_place,
)
from blogroto.engine.precision import cpu_name, training_policy
from blogroto.engine.recipe import (
    DEFAULT_WEIGHTS,
    DISTILL_LOSSES,
    DISTILL_WEIGHTS,
    STABILITY_NOISE,
    STYLE_LOSSES,
    TrainConfig,
)
from blogroto.engine.runtime import (
    backend_label,
    compile_function,
    enable_determinism,
    gpu_names,
    import_keras,
    set_random_seed,
    tensorflow_if_backend,
    to_numpy,
)
from blogroto.errors import BlogrotoError
from blogroto.filters import (
    DEFAULT_FILES,
    SLUG_RE,
    Filter,
    NetworkSpec,
    load_filter,
    resolve_filter,
    write_metadata,
)
from blogroto.fsutil import atomic_write_text

# ---------------------------------------------------------------- device / precision


def describe_device() -> str:
    gpus = gpu_names()
    if gpus:
        return f"{len(gpus)} x GPU ({', '.join(sorted(set(gpus)))})"
    model = cpu_name() or platform.processor() or platform.machine()
    # "CPU: model, N cores": the model often ends in its own parentheses (cpu_name's family and model)
    return f"CPU: {model}, {os.cpu_count()} cores"


# ---------------------------------------------------------------- training


@dataclass
class _Session:
    """What one training run holds while it trains (Trainer._session builds it)."""

    pool: ContentPool
    net: Any
    optimizer: Any
    checkpoint_path: Path
    history_path: Path
    history: dict
    replicas: int
    step: int = 0
    elapsed_before: float = 0.0
    train_step: Any = None
    stylize_preview: Any = None

    def checkpoint(self) -> None:
        # history first: if killed in between, resume trims it back to the checkpoint's step
        atomic_write_text(self.history_path, json.dumps(self.history))
        checkpoint.save(self.checkpoint_path, self.net, self.optimizer, self.step)


class Trainer:
    def __init__(self, config: TrainConfig, log=print):
        self.cfg = config
        self.log = log
        if not SLUG_RE.match(config.name):
            raise BlogrotoError(f"filter name {config.name!r} must be lower-case letters, digits and dashes")
        self.p = config.resolved()
        self.out_dir = Path(config.out_dir)
        self.teacher: Filter | None = None
        if config.teacher is not None:
            self.teacher = resolve_filter(config.teacher, [self.out_dir], site_dirs=config.site_filter_dirs)
            # the student paints with the teacher's brush: its artwork scale is the teacher's
            self.p["style_size"] = self.teacher.training.get("style_size")
            self.p["teacher_fingerprint"] = self.teacher.fingerprint  # --resume refuses a retrained teacher
        elif config.preset == "distill":
            raise BlogrotoError("the distill preset needs a teacher filter (--teacher NAME)")
        # the defaults, then the preset's own (standard: the saturation term's), then the ones given
        base = DISTILL_WEIGHTS if self.teacher else {**DEFAULT_WEIGHTS, **self.p.get("weights", {})}
        self.loss_weights = {**base, **(config.loss_weights or {})}
        self.loss_keys = DISTILL_LOSSES if self.teacher else STYLE_LOSSES
        # sigma of the noise each batch carries for the stability term; 0: the term is off, no noise channels
        self.noise = STABILITY_NOISE if self.loss_weights.get("stability", 0.0) > 0 else 0.0
        self.artwork = Path(config.artwork) if config.artwork else self.teacher and self.teacher.file("artwork")
        if self.artwork is None:
            raise BlogrotoError("no artwork given" + (f" and teacher {self.teacher.slug} has none" if self.teacher else ""))
        self.final_dir = self.out_dir / config.name
        self.work_dir = self.out_dir / f".{config.name}.training"
        self.config_path = self.work_dir / "run.json"

    # -- setup

    def preview_photo(self) -> Path:
        if self.cfg.preview_photo:
            return Path(self.cfg.preview_photo)
        from blogroto import datasets

        return datasets.preview_photo()

    def _prepare_work_dir(self) -> None:
        run_record = {"config": _jsonable(asdict(self.cfg)), "resolved": self.p, "loss_weights": self.loss_weights}
        if self.work_dir.exists():
            if not self.cfg.resume:
                raise BlogrotoError(
                    "an unfinished training run exists here; continue it with --resume, or delete the folder to start over",
                    self.work_dir,
                )
            previous = _read_run_file(self.config_path) if self.config_path.exists() else None
            if previous and (previous.get("resolved") != self.p
                             or previous.get("loss_weights", self.loss_weights) != self.loss_weights):
                raise BlogrotoError("--resume with different training settings than the interrupted run", self.config_path)
        elif self.cfg.resume:
            self.log(f"nothing to resume in {self.work_dir}; starting a new run")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "previews").mkdir(exist_ok=True)
        atomic_write_text(self.config_path, json.dumps(run_record, indent=2, sort_keys=True))

    def run(self):
        """Train (or continue) the run, then assemble the filter folder; None when stopped early."""
        cfg = self.cfg
        if not self.artwork.is_file():
            raise BlogrotoError("artwork not found", self.artwork)
        self._prepare_work_dir()
        enable_determinism()
        set_random_seed(cfg.seed)

        from blogroto.engine.network import save_weights
        from blogroto.engine.vgg import locate_weights

        vgg_weights = locate_weights(cfg.vgg_weights, log=self.log)
        policy = training_policy(cfg.precision)
        strategy = steps.distribution_strategy()
        pool = self._content_pool()
        net, losses = self._network_and_losses(vgg_weights, policy, strategy)
        session = self._session(net, losses, policy, strategy, pool)
        step = self._loop(session)
        if step < self.p["steps"]:
            return None
        return self._assemble(net, session.history, policy, vgg_weights.source, pool.names, session.stylize_preview,
                              save_weights)

    @functools.cached_property
    def style_image(self) -> np.ndarray:
        """The artwork at its brush size (1,H,W,3), decoded once for the palette references and the style target."""
        return load_style_image(self.artwork, self.p["style_size"])

    def _content_pool(self) -> ContentPool:
        cfg, p = self.cfg, self.p
        content_paths = ContentPool.find(list(cfg.content_dirs))
        if cfg.builtin_content:
            from blogroto import datasets

            content_paths += datasets.content_images()
        # a distilled student also sees the photos larger than the crop (zoom), so keep them larger
        pool = ContentPool(content_paths, p["size"], log=self.log, keep_short_side=1024 if p["zoom"] > 1 else None)
        if self.teacher is None and self.loss_weights.get("colour", 0.0) > 0:
            from blogroto.engine.losses import PaletteTransfer

            transfer = PaletteTransfer(self.style_image[0], seed=cfg.seed)
            with ThreadPoolExecutor(os.cpu_count()) as workers:  # numpy's sorts run outside the GIL
                pool.references = list(workers.map(transfer, pool.images))
        return pool

    def _network_and_losses(self, vgg_weights, policy: str, strategy):
        """The network to train and `losses(x, step)`: (total, then the parts named by loss_keys).
        The loss network and the artwork's target exist before the network, as they always have
        (the order keeps a run's random initialisation what it was)."""
        ops = import_keras().ops
        from blogroto.engine.losses import (
            DISTILL_LAYERS,
            StyleTarget,
            distillation_losses,
            perceptual_losses,
            saturation_loss,
            stability_loss,
        )
        from blogroto.engine.network import TransformNet, load_network
        from blogroto.engine.vgg import LOSS_LAYERS, LossNetwork

        p, w = self.p, self.loss_weights
        compute = "float32" if policy == "float32" else policy.split("_")[1]
        net = None  # built below; the closures read it when they are traced
        if self.teacher is not None:
            lossnet = LossNetwork(vgg_weights, DISTILL_LAYERS, compute_dtype=compute)
            spec = self.teacher.network
            teacher_net = load_network(self.teacher.file("weights"), spec.width, spec.blocks, dtype_policy=policy,
                                       norm=spec.norm, arch=spec.arch)

            def losses(x, step):
                target = ops.stop_gradient(teacher_net(x))
                return distillation_losses(lossnet, net(x), target, w)
        else:
            lossnet = LossNetwork(vgg_weights, LOSS_LAYERS, compute_dtype=compute)
            target = StyleTarget(lossnet, self.style_image, seed=self.cfg.seed)

            with_reference = w.get("colour", 0.0) > 0

            def losses(x, step):
                # with the colour term, each crop comes with the same crop of its photo in the
                # artwork's palette as three more channels (ContentPool.references); with the
                # stability term, three channels of noise come last (ContentPool.batch)
                photo = x[..., :3]
                reference = x[..., 3:6] if with_reference else None
                logits = net.run(photo, logits=True)[0]
                styled = net.to_image(logits)
                total, *parts = perceptual_losses(lossnet, photo, styled, target, w, step, reference)
                saturation = saturation_loss(logits, p["saturation_limit"])
                total = total + w.get("saturation", 0.0) * saturation
                stability = (stability_loss(net, photo, x[..., -3:], styled, self.noise) if self.noise
                             else ops.zeros((), "float32"))
                return (total + w.get("stability", 0.0) * stability, *parts, saturation, stability)

        with steps.scope(strategy):
            net = TransformNet(p["width"], p["blocks"], dtype_policy=policy, norm=p["norm"]).ensure_built()
        return net, losses

    def _session(self, net, losses, policy: str, strategy, pool: ContentPool) -> _Session:
        """The optimizer, checkpoint and compiled step functions of a run, restored from the last
        checkpoint when there is one."""
        keras = import_keras()
        p = self.p
        with steps.scope(strategy):
            schedule = keras.optimizers.schedules.CosineDecay(p["lr"], p["steps"], alpha=0.1)
            optimizer = keras.optimizers.Adam(schedule)
            if policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(net.trainable_variables)
        session = _Session(pool=pool, net=net, optimizer=optimizer, checkpoint_path=self.work_dir / checkpoint.FILE,
                           history_path=self.work_dir / "history.json",
                           history={key: [] for key in ("step", "seconds") + self.loss_keys},
                           replicas=steps.replicas(strategy))
        if (self.work_dir / "ckpt").is_dir() and not session.checkpoint_path.exists():
            raise BlogrotoError("this run was checkpointed by an older blogroto (a TensorFlow checkpoint) and cannot "
                                "be resumed; delete the folder to start over", self.work_dir)
        if session.checkpoint_path.exists():
            session.step = checkpoint.restore(session.checkpoint_path, net, optimizer)
            if session.history_path.exists():
                history = _read_run_file(session.history_path)
                if (not all(isinstance(v, list) for v in history.values()) or not {"step", "seconds"} <= history.keys()
                        or not all(isinstance(x, (int, float)) for x in history["step"] + history["seconds"])):
                    raise BlogrotoError("the run's loss history is damaged; delete the folder to start over",
                                        session.history_path)
                history = {k: v[: _count_upto(history["step"], session.step)] for k, v in history.items()}
                for key in self.loss_keys:  # a run begun by an older blogroto that logged fewer losses
                    history.setdefault(key, [])
                session.history = history
                session.elapsed_before = history["seconds"][-1] if history["seconds"] else 0.0
            self.log(f"resumed {self.cfg.name} at step {session.step}")
        session.train_step = steps.make_train_step(net, losses, optimizer, policy == "mixed_float16", strategy)
        session.stylize_preview = _compiled_stylize(net)
        return session

    def _loop(self, session: _Session) -> int:
        """Train from the session's step to the end (or --stop-after, or a signal); checkpoint
        every few minutes and at the end. Returns the step reached."""
        cfg, p, w = self.cfg, self.p, self.loss_weights
        total_steps = p["steps"]
        low_until = int(total_steps * p["progressive"])
        start = session.step
        stop_at = total_steps if cfg.stop_after is None else min(total_steps, start + cfg.stop_after)
        preview_src = np.asarray(Image.open(self.preview_photo()).convert("RGB"), np.float32) / 255.0
        preview_src = preview_src[: preview_src.shape[0] // 4 * 4, : preview_src.shape[1] // 4 * 4][None]
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, initial=start, desc=f"training {cfg.name}", unit="step", dynamic_ncols=True)
        interrupted = {"flag": False}

        def on_signal(signum, frame):
            interrupted["flag"] = True

        old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        t0 = last_ckpt = time.monotonic()
        ema = None
        history = session.history
        try:
            step = start
            while step < stop_at and not interrupted["flag"]:
                size = p["size"] // 2 // 4 * 4 if step < low_until else p["size"]
                x = session.pool.batch(cfg.seed, step, p["batch"] * session.replicas, size, zoom=p["zoom"],
                                       noise=self.noise)
                values = dict(zip(self.loss_keys, session.train_step(x, step)))
                total = values["total"]
                if not math.isfinite(total):
                    raise BlogrotoError(f"training diverged at step {step} (loss is {total}); try a lower --lr")
                step += 1
                session.step = step
                seconds = session.elapsed_before + time.monotonic() - t0
                for key, value in {"step": step, "seconds": seconds, **values}.items():
                    history[key].append(value)
                ema = total if ema is None else 0.9 * ema + 0.1 * total
                if bar is not None:
                    bar.update(1)
                    # the terms in the total, weighted (a term with no weight, e.g. tone, is not trained on)
                    parts = {k: f"{v * w[k]:.3g}" for k, v in values.items() if w.get(k)}
                    bar.set_postfix(loss=f"{ema:.3g}", **parts, px=size)
                if step % p["preview_every"] == 0 or step == total_steps:
                    y = session.stylize_preview(preview_src)[0]
                    save_jpeg(self.work_dir / "previews" / f"step-{step:06d}.jpg", y)
                if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                    session.checkpoint()
                    last_ckpt = time.monotonic()
        finally:
            if bar is not None:
                bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        session.checkpoint()
        if step < total_steps:
            why = "interrupted" if interrupted["flag"] else "stopped"
            self.log(f"{why} at step {step}/{total_steps}; checkpoint saved. Continue with --resume.")
            if interrupted["flag"]:
                raise KeyboardInterrupt
        return step

    # -- output

    def _assemble(self, net, history, policy, vgg_source, content_names, stylize_fn, save_weights):
        from blogroto.imaging.decode import load_image
        from blogroto.imaging.resize import resize_long_side

        cfg, p = self.cfg, self.p
        partial = self.out_dir / f".{cfg.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        save_weights(net, partial / DEFAULT_FILES["weights"])

        save_artwork(partial, self.artwork)

        def stylize(path, long_side):
            img = resize_long_side(load_image(path), long_side)
            h, w = img.rgb.shape[:2]
            x = np.pad(img.rgb, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")[None]
            return img.rgb, stylize_fn(x)[0][:h, :w]

        save_examples(partial, *stylize(self.preview_photo(), EXAMPLE_SIDE))
        loss_plot(history, partial / DEFAULT_FILES["loss_plot"], cfg.name)
        contact_sheet(sorted((self.work_dir / "previews").glob("step-*.jpg")), partial / DEFAULT_FILES["contact_sheet"])

        tail = max(1, min(50, len(history["total"]) // 10))
        final = {k: float(np.mean(history[k][-tail:])) for k in self.loss_keys}
        teacher = self.teacher
        # a distilled filter credits the same work as its teacher, unless told otherwise
        credits = [teacher.meta.get("source") or {}] if teacher else []
        source = {k: v for credit in credits + [cfg.source] for k, v in credit.items() if v not in (None, "")}
        source.setdefault("title", self.artwork.stem)
        description = cfg.description or (
            f"{teacher.display_name}, reproduced by a slim network (width {p['width']}, {p['blocks']} blocks) that "
            "applies faster." if teacher else None)
        meta = {
            "format": 1,
            "name": cfg.name,
            "display_name": cfg.display_name or cfg.name.replace("-", " ").title(),
            "description": description or f"Colours and textures learned from {source['title']}.",
            "source": source,
            "network": NetworkSpec(p["width"], p["blocks"], p["norm"]).as_dict(),
            "training": {
                "preset": cfg.preset,
                "steps": p["steps"],
                "resolution": p["size"],
                "progressive_low_resolution_fraction": p["progressive"],
                "batch_size": p["batch"],
                "style_size": p["style_size"],
                "learning_rate": p["lr"],
                "loss_weights": dict(self.loss_weights),
                "content_set": content_names,
                "seconds": round(history["seconds"][-1], 1) if history["seconds"] else 0.0,
                "device": describe_device(),
                "backend": backend_label(),
                "precision": policy,
                "final_losses": {k: float(f"{v:.6g}") for k, v in final.items()},
                "vgg_weights": vgg_source,
                "seed": cfg.seed,
                "blogroto_version": __version__,
                "date": datetime.date.today().isoformat(),
            },
            "files": dict(DEFAULT_FILES),
        }
        if teacher is None:  # the saturation term is an artwork-training loss; a student has none
            meta["training"]["saturation_limit"] = p["saturation_limit"]
        else:
            t = teacher.training
            meta["training"]["crop_zoom"] = p["zoom"]
            meta["training"]["teacher"] = {
                "name": teacher.slug, "display_name": teacher.display_name, "network": teacher.network.as_dict(),
                "fingerprint": teacher.fingerprint, "preset": t.get("preset"), "steps": t.get("steps"),
                "seconds": t.get("seconds"),
            }
        write_metadata(partial, meta)
        flt = load_filter_as(partial, cfg.name)  # validate before it becomes visible
        # Whether `auto` may apply this filter in bfloat16 on CPUs that have it (blogroto.engine.precision)
        meta["precision"] = precision_record(measure_bfloat16_psnr(flt))
        write_metadata(partial, meta)
        swap_into_place(partial, self.final_dir)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        return load_filter(self.final_dir)


def _compiled_stylize(net):
    """The network on any batch of images, compiled once (numpy in, numpy out)."""
    ops = import_keras().ops
    tf = tensorflow_if_backend()
    tf_signature = None if tf is None else [tf.TensorSpec([None, None, None, 3], tf.float32)]
    compiled = compile_function(lambda x: net(ops.convert_to_tensor(x)), tf_signature)
    return lambda x: to_numpy(compiled(np.asarray(x, np.float32)))


def _read_run_file(path: Path) -> dict:
    """A JSON record of the work folder, refused in words when it is not one (a disk filled mid-write, a hand edit)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BlogrotoError(f"unreadable ({exc}); delete the folder to start over", path) from exc
    if not isinstance(data, dict):
        raise BlogrotoError("not a run record; delete the folder to start over", path)
    return data


def _count_upto(steps: list[int], step: int) -> int:
    return sum(1 for s in steps if s <= step)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def train(config: TrainConfig, log=print):
    return Trainer(config, log=log).run()
