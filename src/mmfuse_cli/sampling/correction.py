"""The joint observation correction of DRFusion (docs/ARCHITECTURE.md): one projection step towards all three constraints at once.

``A1 x1 = y1``, ``A2 x2 = y2`` (the degradations) and ``m x1 + (1-m) x2 - f = 0`` (the learned fusion operator),
each row solved for its own unknown through the pseudo-inverse, damped per sample.
"""

from __future__ import annotations

import torch

from mmfuse_cli.degradation.grid import project_to_grid
from mmfuse_cli.sampling.observation import ObservationBatch


def joint_correction(
    z0: torch.Tensor,
    m: torch.Tensor,
    obs1: ObservationBatch,
    obs2: ObservationBatch,
    lam1: torch.Tensor,
    lam2: torch.Tensor,
    lam_fusion: torch.Tensor | None = None,
    on_grid: bool = False,
) -> torch.Tensor:
    """Project ``z0 = [x1, x2, f]`` towards the joint constraint set.

    ``x_i' = x_i - lam_i A_i+ r_i``; ``f' = f - (m lam1 A1+ r1 + (1-m) lam2 A2+ r2 - lam_f r3)`` with
    ``r3 = m x1 + (1-m) x2 - f``. The fusion row's ``lam_f`` defaults to the mean of the two damping factors per
    sample (exactly ``lam`` when both are equal); with ``lam_f = 1``: ``f' = m x1' + (1-m) x2'`` whatever
    ``lam1``, ``lam2``.

    With ``on_grid``, a source with a pixel grid (``Degradation.grid > 1``) is then projected onto it,
    ``x_i' <- P x_i'``, and the fusion row moves by that source's whole change ``x_i - x_i'``, so ``lam_f = 1``
    still gives ``f' = m x1' + (1-m) x2'``.

    Args:
        z0: ``(N, 3, H, W)``; m: ``(N, 1, H, W)`` in [0, 1]; lam1, lam2, lam_fusion: ``(N,)`` damping per sample.
    """
    x1, x2, f = z0[:, 0:1], z0[:, 1:2], z0[:, 2:3]
    p1 = obs1.pinv_residual(x1)
    p2 = obs2.pinv_residual(x2)
    r3 = m * x1 + (1 - m) * x2 - f
    l1 = lam1.view(-1, 1, 1, 1)
    l2 = lam2.view(-1, 1, 1, 1)
    lf = 0.5 * (l1 + l2) if lam_fusion is None else lam_fusion.view(-1, 1, 1, 1)
    x1n = x1 - l1 * p1
    x2n = x2 - l2 * p2
    moved1, moved2 = m * l1 * p1, (1 - m) * l2 * p2  # the fusion row's share of each source's change
    if on_grid and obs1.has_grid:
        x1n = obs1.project_grid(x1n)
        moved1 = m * (x1 - x1n)
    if on_grid and obs2.has_grid:
        x2n = obs2.project_grid(x2n)
        moved2 = (1 - m) * (x2 - x2n)
    fn = f - (moved1 + moved2 - lf * r3)
    return torch.cat([x1n, x2n, fn], dim=1)


def project_onto_grids(
    x1: torch.Tensor, x2: torch.Tensor, f: torch.Tensor, m: torch.Tensor, grid1: int, grid2: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both restored sources ``(N, 1, H, W)`` put on their pixel grids (``grid`` > 1: stored in ``grid x grid``
    blocks), and the fused image moved by the weighted change of each, as :func:`joint_correction` does with
    ``on_grid``: ``f' = f + m (P1 x1 - x1) + (1 - m) (P2 x2 - x2)``, so ``f = m x1 + (1-m) x2`` still holds after.
    For estimates that left the grids after sampling (tiles blended pixel by pixel)."""
    if grid1 <= 1 and grid2 <= 1:
        return x1, x2, f
    x1_grid, x2_grid = project_to_grid(x1, grid1), project_to_grid(x2, grid2)
    f = f + m * (x1_grid - x1) + (1 - m) * (x2_grid - x2)
    return x1_grid, x2_grid, f


__all__ = ["joint_correction", "project_onto_grids"]
