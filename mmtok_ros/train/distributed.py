"""Training across processes and GPUs (torchrun): the plumbing ``train_model`` calls.

Under ``torchrun --nproc_per_node N`` every process runs the same ``mmtok train``; torchrun
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. Without
them (or with ``WORLD_SIZE=1``) nothing here does anything and training is the
single-process code path, unchanged.

What makes N processes train the same model as one process with the same ``--batch-size``:

- ``--batch-size`` is the GLOBAL batch. Every rank draws the same shuffled epoch order (same
  seed) and takes a contiguous, disjoint slice of each global batch (``shard_bounds``), so all
  ranks run the same number of steps and the LR schedule is the one-process schedule. A rank
  whose slice is empty (a last batch smaller than N) runs its step on one padding window
  that weighs nothing: loss scale 0, left out of the batch-norm statistics, so every
  collective is matched and the result is the one-process result.
- The task loss of a rank is its mean times ``n_local * N / n_global``; DDP averages gradients
  over the N ranks, which gives the gradient of the global-batch mean. The Eq. 19 penalty
  lambda (r_avg - gamma')^2 is the same on every rank and is added unscaled, so its gradient
  is averaged to itself. The keep ratios r_l are parameters like any other: DDP all-reduces
  their gradients with the rest.
- The tokenizers' batch norms use the global batch's statistics (``GlobalBatchNorm2d``,
  differentiable all-reduces of the per-channel sums), as one process would; PyTorch's own
  ``SyncBatchNorm`` refuses CPU tensors, so gloo could not use it. They are plain
  ``BatchNorm2d`` again when training ends: the model file is the one-process format.
- Modality dropout draws the global batch's mask from the shared generator and each rank
  keeps its slice, so the same frames are dropped as in one process.
"""
from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import UserInputError


@dataclass(frozen=True)
class Context:
    """This process's place in the job; ``world_size`` 1: a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, '')
    try:
        return int(value) if value else default
    except ValueError:
        raise UserInputError(f'{name}={value!r} is not an integer (set by torchrun)') from None


def launched_world_size() -> int:
    """``WORLD_SIZE`` as torchrun set it (1 when not launched by torchrun)."""
    return _env_int('WORLD_SIZE', 1)


def current() -> Context:
    """The context of an initialised process group, else the single-process one."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), _env_int('LOCAL_RANK', 0),
                   dist.get_backend())


def is_main() -> bool:
    """Rank 0, or a single process; before the group exists, torchrun's ``RANK`` decides."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int('RANK', 0) == 0


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join torchrun's process group (``env://``) if the job has several processes: ``nccl``
    on CUDA, ``gloo`` on CPU; each CUDA process uses GPU ``LOCAL_RANK``. Idempotent.
    Returns the context and the device this process trains on."""
    world = launched_world_size()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return Context(), device
    local_rank = _env_int('LOCAL_RANK', 0)
    if device.type == 'cuda':
        if local_rank >= torch.cuda.device_count():
            raise UserInputError(f'LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} '
                             'CUDA device(s) visible: --nproc_per_node must not exceed the GPUs')
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if not dist.is_available():
            raise UserInputError('WORLD_SIZE > 1 but this torch build has no torch.distributed')
        missing = [v for v in ('RANK', 'MASTER_ADDR', 'MASTER_PORT') if v not in os.environ]
        if missing:
            raise UserInputError(f'WORLD_SIZE={world} but {missing} unset: start the job with '
                             'torchrun (python -m torch.distributed.run)')
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        kwargs = {'device_id': device} if device.type == 'cuda' else {}
        dist.init_process_group(backend, init_method='env://', **kwargs)
        atexit.register(_shutdown)
    ctx = current()
    if ctx.backend == 'nccl' and device.type != 'cuda':
        raise UserInputError('the process group uses nccl but training runs on the CPU')
    return ctx, device


def _shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def main_first():
    """Run the block (building the dataset cache) in three turns: rank 0 alone, then the first
    process of every other node (a cache hit on a shared file system, else built once per
    node), then all others (cache hits). Every rank passes two barriers."""
    ctx = current()
    if not ctx.active:
        yield
        return
    turn = 0 if ctx.is_main else 1 if ctx.local_rank == 0 else 2
    for _ in range(turn):
        dist.barrier()
    yield
    for _ in range(turn, 2):
        dist.barrier()


# --- the split of each global batch -------------------------------------------------------

def shard_bounds(n_rows: int, ctx: Context) -> tuple[int, int]:
    """[lo, hi) of this rank's contiguous slice of a global batch of ``n_rows`` windows: sizes
    differ by at most one, earlier ranks take the extra ones, slices are disjoint and cover
    the batch (a rank gets an empty slice when ``n_rows < world_size``)."""
    base, extra = divmod(n_rows, ctx.world_size)
    lo = ctx.rank * base + min(ctx.rank, extra)
    return lo, lo + base + (1 if ctx.rank < extra else 0)


def shard_batch(data, rows: np.ndarray, ctx: Context, device: torch.device, model: nn.Module,
                drop=None) -> tuple[dict, torch.Tensor, float]:
    """This rank's (batch, labels, loss scale) of the global batch ``rows``. The scale
    ``n_local * N / n_global`` makes DDP's mean of the ranks' gradients the gradient of the
    global batch's mean loss. ``drop`` (modality dropout, batch -> batch) gets the global
    batch's ``present`` mask, as in one process, and this rank keeps its slice. An empty
    slice becomes one padding window (the batch's first) with scale 0 whose frames
    ``model``'s batch norms leave out of their statistics."""
    lo, hi = shard_bounds(len(rows), ctx)
    padding = hi == lo
    local = slice(0, 1) if padding else slice(lo, hi)
    for m in model.modules():
        if isinstance(m, GlobalBatchNorm2d):
            m.counts = not padding
    batch, labels = data.batch(rows[local], device)
    if drop is not None:
        present = torch.from_numpy(data.present[data.window_frames[rows]])   # (B_global, T, M)
        batch['present'] = drop({'present': present})['present'][local].to(device)
    return batch, labels, (hi - lo) * ctx.world_size / len(rows)


# --- model wrapping -------------------------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """all-reduce (sum) with autograd: the gradient of a sum over ranks is the sum over
    ranks of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the batch of all ranks together
    (the mean first, then the centred variance, each one all-reduce of per-channel sums).
    The all-reduces are differentiable, so the backward pass sums the statistics' gradients
    over the ranks as in one process. ``counts`` False: this rank's input is padding and adds
    nothing to the statistics. Outside a process group, or in eval mode, it is
    ``BatchNorm2d``."""

    counts: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c, dims = x.shape[1], (0, 2, 3)
        weight = 1.0 if self.counts else 0.0
        local = torch.cat([x.sum(dims) * weight, x.new_tensor([weight * x.numel() // c])])
        total = _SumOverRanks.apply(local)                                  # (C + 1,)
        n = total[c]
        mean = total[:c] / n                                                 # (C,)
        centred = x - mean[None, :, None, None]
        var = _SumOverRanks.apply((centred * centred).sum(dims) * weight) / n   # biased, (C,)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:   # as F.batch_norm: unbiased variance in the running one
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (n.detach() / (n.detach() - 1).clamp(min=1))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def _swap_batchnorm(module: nn.Module, to_cls: type) -> int:
    """Replace every BatchNorm2d / GlobalBatchNorm2d under ``module`` by ``to_cls`` holding
    the same parameter and buffer tensors (the optimiser and the state dict see no change)."""
    swapped = 0
    for name, child in module.named_children():
        if type(child) in (nn.BatchNorm2d, GlobalBatchNorm2d):
            if type(child) is not to_cls:
                new = to_cls(child.num_features, child.eps, child.momentum, child.affine,
                             child.track_running_stats)
                if child.affine:
                    new.weight, new.bias = child.weight, child.bias
                if child.track_running_stats:
                    new.running_mean, new.running_var = child.running_mean, child.running_var
                    new.num_batches_tracked = child.num_batches_tracked
                new.train(child.training)
                setattr(module, name, new)
                swapped += 1
        else:
            swapped += _swap_batchnorm(child, to_cls)
    return swapped


def wrap(model: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """The module to call in the training loop: ``model`` itself in a single process; else
    ``model`` with global-batch norms inside DistributedDataParallel. Every trainable
    parameter gets a gradient on every rank at every step (Eq. 18 runs both its passes inside
    the model's forward, and the Eq. 19 penalty reaches r_l through the same leaf), so
    ``find_unused_parameters`` stays off."""
    if not ctx.active:
        return model
    _swap_batchnorm(model, GlobalBatchNorm2d)
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == 'cuda' else None
    return DistributedDataParallel(model, device_ids=ids, output_device=None if ids is None
                                   else ids[0], find_unused_parameters=False)


def unwrap(model: nn.Module) -> nn.Module:
    """Plain ``BatchNorm2d`` again (the model file's format); returns ``model``."""
    _swap_batchnorm(model, nn.BatchNorm2d)
    return model


# --- values across ranks ----------------------------------------------------------------------

def mean_over_ranks(value: float, ctx: Context) -> float:
    """The mean of a float over the ranks (float64 on the wire); ``value`` in one process."""
    if not ctx.active:
        return value
    device = torch.device('cuda', torch.cuda.current_device()) if ctx.backend == 'nccl' else 'cpu'
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def from_main(compute, ctx: Context):
    """``compute()`` on rank 0, its (picklable) result broadcast to every rank; the other ranks
    do not run it (for instance the decision threshold's inference pass)."""
    if not ctx.active:
        return compute()
    box = [compute() if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
