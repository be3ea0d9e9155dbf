"""Packs: train M models of one family and architecture in one process and one step
(docs/packs.md). Members differ only in their seed and scalar loss weights (beta, gamma, lambda).

```
PACK/
  pack.json             the members' folder names, in pack order (written once)
  pack_checkpoint.pt    the whole pack's training state (stacked weights, Adam states, step,
                        which members are retired), written atomically every checkpoint_every steps
  .lock                 held while the pack trains
  seed0/ seed1/ ...     one ordinary run folder per member (config.yaml, summary.json, tb/, and at
                        the end model.pt and a single-run checkpoint.pt)
```

Reuses the single loop's pieces (``pipelines.train.engine`` / ``loop``): the same model init per
seed, the same optimiser settings, the same device-side statistics, the same CUDA-graph capture
of the whole step, and counter-based random numbers keyed by each member's seed and the step,
so member m computes what its seed computes alone (up to fp32 summation order).

A member whose losses turn non-finite is masked out of the summed loss on the device in the
step that produced them; the host learns of it at the next read of the statistics (every
``log_every`` steps) and retires it: its summary says failed at step k with the term, its folder
keeps its last good checkpoint, and the other members go on unchanged.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dis_eval.atomic import atomic_write_json
from dis_eval.config.train import TrainConfig
from dis_eval.errors import UserError
from dis_eval.models.checkpoint import (
    atomic_torch_save,
    global_rng_state,
    load_checkpoint,
    set_global_rng_state,
)
from dis_eval.rng import DRAW_BATCH, Draws
from dis_eval.run_dir import RunDir
from pipelines.train.engine import (
    RunningStats,
    StepGraph,
    init_model,
    make_optimizers,
    use_cuda_graph,
)
from pipelines.train.loop import (
    CHECKPOINT_VERSION,
    RECON_IMAGES,
    TrainingDiverged,
    _summary_fields,
    _summary_writer,
    training_data,
    training_device,
)

PACK_FILE = "pack.json"
PACK_CHECKPOINT_FILE = "pack_checkpoint.pt"
PACK_VERSION = 1
# The config keys members of one pack may differ in (everything else is the pack's).
MEMBER_KEYS: tuple[str, ...] = ("seed", "beta", "gamma", "lambda_tc")
# Loss weights that may be given as a list (``beta=1,2,4``), with their folder-name prefixes.
WEIGHT_KEYS: dict[str, str] = {"beta": "beta", "gamma": "gamma", "lambda_tc": "lambda"}
_WEIGHT_SPELLINGS = {"beta": "beta", "gamma": "gamma", "lambda": "lambda_tc", "lambda_tc": "lambda_tc"}
_MEMBER_PATH = re.compile(r"^(\.\./\.\./)?(?!\.\.?$)[^/\\]+$")
# Derived config keys that follow from the member keys.
_DERIVED_MEMBER_KEYS = ("tc_weight",)


# ---- which members ------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """``0-3`` -> [0, 1, 2, 3]; ``0,2,5`` and ``0-3,7`` too. Distinct, in the given order."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if dash else [int(part)]
        except ValueError:
            raise UserError(f"--seeds takes seeds like 0-3 or 0,2,5; got {text!r}") from None
        if dash and int(hi) < int(lo):
            raise UserError(f"--seeds range {part} is empty (write low-high)")
        seeds += list(rng)
    if any(s < 0 for s in seeds):
        raise UserError(f"seeds must be >= 0, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} names a seed twice")
    return seeds


def split_weight_lists(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[float]]]:
    """``key=value`` overrides -> (the single-valued ones, {weight key: values} of the
    list-valued loss weights, e.g. ``beta=1,2,4,8``)."""
    plain: list[str] = []
    lists: dict[str, list[float]] = {}
    for item in overrides:
        key, eq, value = item.partition("=")
        key = key.strip()
        if eq and key in _WEIGHT_SPELLINGS and "," in value:
            name = _WEIGHT_SPELLINGS[key]
            try:
                values = [float(v) for v in value.strip("[]").split(",") if v.strip()]
            except ValueError:
                raise UserError(f"{key} takes numbers, e.g. {key}=1,2,4; got {value!r}") from None
            if len(set(values)) != len(values):
                raise UserError(f"{key}={value} names a value twice")
            lists[name] = values
        else:
            plain.append(item)
    return plain, lists


def expand_members(base: TrainConfig, seeds: Sequence[int] | None, weights: dict[str, list[float]]
                   ) -> list[TrainConfig]:
    """The pack's members: every combination of the listed loss weights crossed with the seeds
    (weights outer, seeds inner); each validated as a single run's config."""
    seeds = list(seeds) if seeds else [base.seed]
    names = list(weights)
    members = []
    for combo in itertools.product(*(weights[n] for n in names)):
        for seed in seeds:
            members.append(base.replace(seed=int(seed), **dict(zip(names, combo, strict=True))))
    return members


def varied_keys(configs: Sequence[TrainConfig]) -> list[str]:
    """The loss-weight keys whose values differ between members (they name the folders)."""
    return [k for k in WEIGHT_KEYS if len({getattr(c, k) for c in configs}) > 1]


def member_name(cfg: TrainConfig, varied: Sequence[str]) -> str:
    """A member's folder name: ``seed0``, or ``beta2-seed0`` when beta varies in the pack."""
    parts = [f"{WEIGHT_KEYS[k]}{getattr(cfg, k):g}" for k in varied]
    return "-".join([*parts, f"seed{cfg.seed}"])


def pack_key(cfg: TrainConfig) -> str:
    """What members of one pack share: the config without the member keys (JSON, sorted)."""
    d = cfg.to_dict()
    for k in (*MEMBER_KEYS, *_DERIVED_MEMBER_KEYS):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


def check_packable(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise UserError("a pack needs at least one member")
    first = pack_key(configs[0])
    for c in configs[1:]:
        if pack_key(c) != first:
            a, b = json.loads(first), json.loads(pack_key(c))
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise UserError(f"members of a pack may differ only in {', '.join(MEMBER_KEYS)}; these differ: "
                            f"{', '.join(diff)}")
    names = [member_name(c, varied_keys(configs)) for c in configs]
    if len(set(names)) != len(names):
        raise UserError("two members of the pack are the same run (same seed and loss weights)")


# ---- the pack folder -------------------------------------------------------------------------------

class PackDir:
    """A pack folder: the one place that names its files."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = self.path / PACK_FILE
        self.checkpoint = self.path / PACK_CHECKPOINT_FILE
        self.root = RunDir(self.path)  # for the folder's lock and temporary files

    def is_pack(self) -> bool:
        return self.manifest.is_file()

    def member_names(self) -> list[str]:
        """The members' folders relative to the pack folder: a name (``seed0``: inside it), or
        ``../../name`` (a sweep's pack: its members are the sweep's run folders)."""
        from dis_eval.run_dir import read_json_object

        raw = read_json_object(self.manifest)
        names = raw.get("members") if raw else None
        if not (isinstance(names, list) and names and all(isinstance(n, str) and _MEMBER_PATH.match(n)
                                                          for n in names)):
            raise UserError(f"{self.manifest} is damaged (no list of member folders)")
        return names

    def members(self) -> list[RunDir]:
        return [RunDir(self.path / n) for n in self.member_names()]

    def write_manifest(self, names: list[str]) -> None:
        atomic_write_json(self.manifest, {"version": PACK_VERSION, "members": names})


def is_pack(path: str | os.PathLike) -> bool:
    return PackDir(path).is_pack()


# ---- the step ---------------------------------------------------------------------------------------

@dataclass
class PackTraining:
    """Everything a pack's step touches (``engine.Training`` for M members)."""

    configs: list[TrainConfig]
    model: Any  # dis_eval.models.ensemble.PackModel
    disc: Any  # PackDiscriminator or None
    objective: Any  # PackObjective
    opts: list[torch.optim.Optimizer]
    data: Any
    draws: Draws
    stats: RunningStats
    active: torch.Tensor  # (M,) bool on the device: members still training
    member_rng: list[dict[str, Any]]  # each member's global generator states after its init
    train_step: Callable[[], None]
    run_step: Callable[[], None]


def make_pack_step(objective: Any, opts: list[torch.optim.Optimizer], data: Any, draws: Draws,
                   stats: RunningStats, active: torch.Tensor, batch: int) -> Callable[[], None]:
    """One step of every member, all on the device, no syncs: draw each member's rows, forward
    the pack, mask out members with non-finite losses (``active``), one backward, one update."""
    n_rows, members = len(data), int(active.shape[0])

    def pack_step() -> None:
        positions = draws.randint(DRAW_BATCH, n_rows, (members, batch))
        x = data.images(positions.flatten())
        x = x.view(members, batch, *x.shape[1:])
        out = objective(x, draws)
        active.logical_and_(torch.isfinite(out.terms).all(dim=1))
        for o in opts:
            o.zero_grad(set_to_none=True)
        objective.backward(out, active)
        for o in opts:
            o.step()
        stats.update(out.terms, out.rate_per_dim)

    return pack_step


def build_pack_training(configs: Sequence[TrainConfig], data: Any, device: torch.device,
                        ckpt: dict | None = None) -> PackTraining:
    """Each member initialised exactly as ``engine.build_training`` initialises its seed, stacked
    into one pack on ``device``; optimisers over the stacked parameters; ``ckpt`` restored."""
    from dis_eval.models.ensemble import PackDiscriminator, PackModel, PackObjective, stack_modules

    configs = list(configs)
    check_packable(configs)
    cfg, m = configs[0], len(configs)
    if cfg.compile:
        raise UserError("compile=true is not supported for packs yet; train the pack with compile=false")
    singles, discs, member_rng = [], [], []
    for c in configs:
        model, disc = init_model(c)
        singles.append(model)
        discs.append(disc)
        member_rng.append(global_rng_state())
    pack = PackModel(cfg.model_spec, m)
    stack_modules(pack, singles)
    pack.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    pack.to(device)
    pdisc = None
    if discs[0] is not None:
        pdisc = PackDiscriminator(m, cfg.latents)
        stack_modules(pdisc, discs)
        pdisc.to(device)
    graph = use_cuda_graph(cfg, device)
    opts = make_optimizers(cfg, pack, pdisc, device, graph)
    active = torch.ones(m, dtype=torch.bool, device=device)
    if ckpt is not None:
        pack.load_state_dict(ckpt["model"])
        opts[0].load_state_dict(ckpt["optimizer"])
        if pdisc is not None:
            pdisc.load_state_dict(ckpt["discriminator"])
            opts[1].load_state_dict(ckpt["disc_optimizer"])
        active.copy_(ckpt["active"])
        set_global_rng_state(ckpt["rng"]["global"])
    betas = torch.tensor([c.beta for c in configs], dtype=torch.float32, device=device)
    tc_weights = torch.tensor([c.tc_weight for c in configs], dtype=torch.float32, device=device)
    objective = PackObjective(pack, betas, tc_weights, pdisc)
    stats = RunningStats(len(objective.term_names), cfg.latents, device, members=m)
    stats.step.fill_(ckpt["step"] if ckpt is not None else 0)
    draws = Draws.for_seeds([c.seed for c in configs], stats.step)
    step = make_pack_step(objective, opts, data, draws, stats, active, cfg.batch_size)
    run = StepGraph(step, device) if graph else step
    return PackTraining(configs, pack, pdisc, objective, opts, data, draws, stats, active, member_rng, step, run)


# ---- member states ----------------------------------------------------------------------------------

def _member_optimizer_state(state: dict[str, Any], m: int) -> dict[str, Any]:
    """Member m's slice of a stacked Adam's state_dict: an ordinary Adam state_dict."""
    per_param = {i: {k: (v[m].clone() if isinstance(v, torch.Tensor) and v.ndim > 0 else v)
                     for k, v in s.items()} for i, s in state["state"].items()}
    return {"state": per_param, "param_groups": state["param_groups"]}


def member_checkpoint(pack_ckpt: dict[str, Any], m: int) -> dict[str, Any]:
    """Member m of a pack checkpoint as a single run's checkpoint.pt (resumable alone)."""
    from dis_eval.models.ensemble import member_state_dict

    out = {"version": CHECKPOINT_VERSION, "step": pack_ckpt["step"], "wall_s": pack_ckpt["wall_s"],
           "config": pack_ckpt["configs"][m], "model": member_state_dict(pack_ckpt["model"], m),
           "optimizer": _member_optimizer_state(pack_ckpt["optimizer"], m),
           "rng": {"global": pack_ckpt["member_rng"][m]}, "last": pack_ckpt["last"][m]}
    if "discriminator" in pack_ckpt:
        out["discriminator"] = member_state_dict(pack_ckpt["discriminator"], m)
        out["disc_optimizer"] = _member_optimizer_state(pack_ckpt["disc_optimizer"], m)
    return out


# ---- the loop ---------------------------------------------------------------------------------------

def train_pack(configs: Sequence[TrainConfig] | None, pack_dir: str | os.PathLike, resume: bool = False,
               progress: bool = True, data: Any = None, member_dirs: Sequence[str] | None = None) -> Path:
    """Train ``configs`` as one pack into ``pack_dir`` (or continue it: ``resume=True``, configs
    None); returns the pack folder. ``member_dirs``: the members' folders relative to the pack
    folder (default: named by :func:`member_name`, inside it). The pack's and every member's
    locks are held throughout."""
    pdir = PackDir(pack_dir)
    with ExitStack() as stack:
        stack.enter_context(pdir.root.lock("train"))
        cfgs, names, ckpt = _prepare_pack(configs, pdir, resume, member_dirs)
        members = [RunDir(pdir.path / n) for n in names]
        for run in members:
            stack.enter_context(run.lock("train"))  # also creates the member's folder
        return _train_pack(cfgs, pdir, members, names, ckpt, resume, progress, data)


def _prepare_pack(configs: Sequence[TrainConfig] | None, pdir: PackDir, resume: bool,
                  member_dirs: Sequence[str] | None = None) -> tuple[list[TrainConfig], list[str], dict | None]:
    if resume:
        if not pdir.is_pack():
            raise UserError(f"cannot resume {pdir.path} as a pack: no {PACK_FILE} there")
        if configs is not None:
            raise UserError("resume a pack without configs: its members' config.yaml files are used")
        members = pdir.members()
        cfgs = [run.read_config() for run in members]
        check_packable(cfgs)
        pdir.root.remove_temporaries()
        for run in members:
            run.remove_temporaries()
        ckpt = load_checkpoint(pdir.checkpoint) if pdir.checkpoint.exists() else None
        if ckpt is not None and ckpt.get("version") != PACK_VERSION:
            raise UserError(f"{pdir.checkpoint} has pack checkpoint version {ckpt.get('version')}, "
                            f"expected {PACK_VERSION}")
        return cfgs, pdir.member_names(), ckpt
    if configs is None:
        raise UserError("train_pack needs the members' configs (or resume=True)")
    cfgs = list(configs)
    check_packable(cfgs)
    if pdir.is_pack() or RunDir(pdir.path).is_run():
        raise UserError(f"{pdir.path} already holds a run or pack; continue it with --resume {pdir.path} "
                        "or choose another --run-dir")
    names = list(member_dirs) if member_dirs is not None else [member_name(c, varied_keys(cfgs)) for c in cfgs]
    if len(names) != len(cfgs) or not all(_MEMBER_PATH.match(n) for n in names):
        raise UserError("one member folder per config, each a name or ../../name")
    for n in names:
        if RunDir(pdir.path / n).is_run():
            raise UserError(f"{pdir.path / n} already holds a run; choose another --run-dir")
    pdir.path.mkdir(parents=True, exist_ok=True)
    return cfgs, names, None


class _PackLog:
    """Per-member logs: TensorBoard writers, the summary.json values, retirements."""

    def __init__(self, t: PackTraining, members: list[RunDir], start: int, device: torch.device,
                 ckpt: dict | None, pack_path: Path) -> None:
        self.t, self.members = t, members
        self.writers = [_summary_writer(run.tb, purge_step=start + 1) for run in members]
        self.last: list[dict[str, Any]] = [dict(x) for x in ckpt["last"]] if ckpt else [{} for _ in members]
        self.retired: dict[int, dict[str, Any]] = {int(k): v for k, v in ckpt["retired"].items()} if ckpt else {}
        self.summaries = []
        for cfg in t.configs:
            self.summaries.append({"status": "running", "step": start, "steps": cfg.steps, "model": cfg.model,
                                   "family": cfg.family, "device": str(device), "step_unit": "batch",
                                   "cuda_graph": use_cuda_graph(cfg, device), "pack": str(pack_path),
                                   "pack_size": len(members)})

    def flush(self, step: int, sps: float, pdir: PackDir) -> None:
        """Read the device-side sums (one sync); retire members that turned non-finite."""
        means, rates, bad, count = self.t.stats.read_members_and_reset()
        if count == 0:
            return
        names = self.t.objective.term_names
        for m in range(len(self.members)):
            if m in self.retired:
                continue
            bad_at = {n: s for n, s in zip(names, bad[m], strict=True) if s >= 0}
            if bad_at:
                self._retire(m, bad_at, step, pdir)
                continue
            terms = dict(zip(names, means[m], strict=True))
            w = self.writers[m]
            for name, v in terms.items():
                w.add_scalar(f"train/{name}", v, step)
            for j, v in enumerate(rates[m]):
                w.add_scalar(f"rate_per_dim/{j}", v, step)
            w.add_scalar("perf/steps_per_s", sps, step)
            self.last[m].update(terms=terms, rates=rates[m], sps=sps)
        if len(self.retired) == len(self.members):
            raise TrainingDiverged(f"every member of the pack {pdir.path} diverged; see each member's summary.json")

    def _retire(self, m: int, bad_at: dict[str, int], step: int, pdir: PackDir) -> None:
        first = min(bad_at.values())
        terms = sorted((n for n, s in bad_at.items() if s == first), key=lambda n: n == "loss")
        run = self.members[m]
        good = 0
        if pdir.checkpoint.exists():  # written before this member went bad: its last good state
            pack_ckpt = load_checkpoint(pdir.checkpoint)
            atomic_torch_save(member_checkpoint(pack_ckpt, m), run.checkpoint)
            good = int(pack_ckpt["step"])
        msg = (f"non-finite {' and '.join(terms)} at step {first}: this member was retired from its pack "
               f"(the others went on); the last good checkpoint (step {good}) is kept in {run.path}. "
               "Lower lr or check the data")
        self.retired[m] = {"step": first, "terms": terms, "error": msg}
        self.summaries[m].update(status="failed", step=first, error=msg, failed_terms=terms)
        run.write_summary(self.summaries[m])

    def close(self) -> None:
        for w in self.writers:
            w.close()


def _train_pack(cfgs: list[TrainConfig], pdir: PackDir, members: list[RunDir], names: list[str],
                ckpt: dict | None, resume: bool, progress: bool, data: Any) -> Path:
    cfg = cfgs[0]
    device = training_device(cfg)
    cfg_dicts = []
    for c in cfgs:
        d = c.to_dict()
        d["device_used"] = str(device)
        cfg_dicts.append(d)
    if not resume:
        for run, d in zip(members, cfg_dicts, strict=True):
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(d)
        pdir.write_manifest(names)  # last: the pack exists once this is there
    data = training_data(cfg, device, data)
    t = build_pack_training(cfgs, data, device, ckpt)
    start = ckpt["step"] if ckpt is not None else 0
    wall_prev = float(ckpt.get("wall_s", 0.0)) if ckpt is not None else 0.0
    if ckpt is not None:
        t.member_rng = list(ckpt["member_rng"])
    log = _PackLog(t, members, start, device, ckpt, pdir.path)
    recon_pos = torch.linspace(0, len(data) - 1, RECON_IMAGES, device=device).long()
    from tqdm import tqdm

    pbar = tqdm(total=cfg.steps, initial=start, disable=not progress, unit="step", dynamic_ncols=True,
                desc=f"{cfg.model} x{len(cfgs)}")
    t0 = time.perf_counter()
    t_log, step_log = t0, start
    try:
        for step in range(start + 1, cfg.steps + 1):
            t.run_step()
            pbar.update(1)
            at_ckpt = step % cfg.checkpoint_every == 0 or step == cfg.steps
            if at_ckpt or step % cfg.log_every == 0:
                now = time.perf_counter()
                log.flush(step, (step - step_log) / max(now - t_log, 1e-9), pdir)
                t_log, step_log = now, step
            if at_ckpt:
                _log_pack_reconstructions(log, t, data, recon_pos, step)
                wall = wall_prev + time.perf_counter() - t0
                _save_pack_checkpoint(pdir, cfg_dicts, step, t, wall, log)
                for m, run in enumerate(members):
                    if m not in log.retired:
                        log.summaries[m].update(step=step, wall_s=wall, **_summary_fields(t.objective, log.last[m]))
                        run.write_summary(log.summaries[m])
    finally:
        pbar.close()
        log.close()

    final = load_checkpoint(pdir.checkpoint)  # the state at the last step (just saved)
    wall = wall_prev + time.perf_counter() - t0
    for m, run in enumerate(members):
        if m in log.retired:
            continue
        single = member_checkpoint(final, m)
        atomic_torch_save(single, run.checkpoint)
        atomic_torch_save({"config": cfg_dicts[m], "state_dict": single["model"], "step": cfg.steps}, run.model)
        log.summaries[m].update(status="done", step=cfg.steps, wall_s=wall,
                                **_summary_fields(t.objective, log.last[m]))
        run.write_summary(log.summaries[m])
    return pdir.path


def _save_pack_checkpoint(pdir: PackDir, cfg_dicts: list[dict], step: int, t: PackTraining, wall_s: float,
                          log: _PackLog) -> None:
    state = {
        "version": PACK_VERSION,
        "step": step,
        "wall_s": wall_s,
        "configs": cfg_dicts,
        "model": t.model.state_dict(),
        "optimizer": t.opts[0].state_dict(),
        "active": t.active.detach().cpu().clone(),
        "retired": {str(k): v for k, v in log.retired.items()},
        "rng": {"global": global_rng_state()},
        "member_rng": t.member_rng,
        "last": log.last,
    }
    if t.disc is not None:
        state["discriminator"] = t.disc.state_dict()
        state["disc_optimizer"] = t.opts[1].state_dict()
    atomic_torch_save(state, pdir.checkpoint)


@torch.no_grad()
def _log_pack_reconstructions(log: _PackLog, t: PackTraining, data: Any, positions: torch.Tensor,
                              step: int) -> None:
    """Each member's inputs over its reconstructions from the mean code (no randomness)."""
    x = data.images(positions)
    m = len(log.members)
    mean, _ = t.model.encode(x.unsqueeze(0).expand(m, *x.shape))
    recon = torch.sigmoid(t.model.decode(mean)).float().cpu()
    for i, w in enumerate(log.writers):
        if i not in log.retired:
            w.add_images("reconstruction", torch.cat([x.cpu(), recon[i]]), step)
