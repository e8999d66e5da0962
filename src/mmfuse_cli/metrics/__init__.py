"""Objective image-fusion metrics, each following a named reference toolbox (see docs/METRICS.md).

One function per metric: gray float arrays in [0, 1] (the mmfuse convention) in, a float out; internally the
0..255 scale of the toolboxes. Default convention: CDD (CDDFuse's ``Evaluator.py``); ``tang``, ``vifb`` variants
where they differ and are cheap; the ``Q_*`` metrics follow Liu et al.'s toolbox.

=========  ====================  =========  ==================================  ======================
name       module                better     range                               follows
=========  ====================  =========  ==================================  ======================
EN         no_reference          higher     [0, 8] bits                         CDD (= TANG, VIFB)
SD         no_reference          higher     [0, 127.5]                          CDD (= TANG, VIFB)
SF         no_reference          higher     [0, 360.6]                          CDD / TANG / VIFB
AG         no_reference          higher     [0, 255]                            CDD / TANG / VIFB
MI         information           higher     [0, 11.09] nats (cdd)               CDD / TANG / VIFB
SCD        pixel                 higher     [-2, 2]                             CDD (= TANG)
VIF        vif                   higher     [0, ~2+] (sum of two)               CDD (= TANG)
Qabf       gradient              higher     [0, 1)                              CDD (= TANG, VIFB)
Nabf       gradient              lower      [0, 1]                              TANG (correct / as published)
SSIM       structural            higher     [-2, 2] (cdd: sum)                  CDD / TANG / VIFB
MS_SSIM    structural            higher     [-1, 1]                             TANG (MEF-MS-SSIM)
CC         pixel                 higher     [-1, 1]                             CDD (= TANG)
PSNR       pixel                 higher     dB                                  CDD / TANG / VIFB
MSE        pixel                 lower      [0, 65025] (cdd)                    CDD / TANG / VIFB
FMI_pixel  information           higher     [0, 1]                              TANG (edge features!)
Q_MI       information           higher     [0, 2]                              LIU
Q_NCIE     information           higher     [~0.8, 1]                           LIU
Q_G        gradient              higher     [0, 1]                              LIU
Q_P        phase                 higher     [0, 1]                              LIU
Q_CB       perceptual            higher     [0, 1]                              LIU (= VIFB)
Q_Y        structural            higher     [-1, 1]                             LIU
Q_S        structural            higher     [-1, 1]                             LIU
=========  ====================  =========  ==================================  ======================
"""

from mmfuse_cli.metrics._base import CONVENTIONS, quantize8
from mmfuse_cli.metrics.gradient import matlab_sobel_edges, nabf, q_g, qabf
from mmfuse_cli.metrics.information import fmi, fmi_pixel, mi, q_mi, q_ncie
from mmfuse_cli.metrics.no_reference import ag, en, sd, sf
from mmfuse_cli.metrics.perceptual import q_cb
from mmfuse_cli.metrics.phase import phase_congruency, q_p
from mmfuse_cli.metrics.pixel import cc, mse, psnr, psnr_fused_reference, psnr_reference, scd
from mmfuse_cli.metrics.registry import (
    CLEAN,
    DEFAULT,
    HIGHER_IS_BETTER,
    LIU_SET,
    NO_REFERENCE,
    REGISTRY,
    Metric,
    compute_metrics,
    no_reference_metrics,
    resolve_names,
)
from mmfuse_cli.metrics.structural import ms_ssim, q_s, q_y, ssim, ssim_fused_reference, ssim_reference
from mmfuse_cli.metrics.vif import vif, vif_single

__all__ = [
    "CLEAN",
    "CONVENTIONS",
    "DEFAULT",
    "HIGHER_IS_BETTER",
    "LIU_SET",
    "NO_REFERENCE",
    "REGISTRY",
    "Metric",
    "ag",
    "cc",
    "compute_metrics",
    "en",
    "fmi",
    "fmi_pixel",
    "matlab_sobel_edges",
    "mi",
    "ms_ssim",
    "mse",
    "nabf",
    "no_reference_metrics",
    "phase_congruency",
    "psnr",
    "psnr_fused_reference",
    "psnr_reference",
    "q_cb",
    "q_g",
    "q_mi",
    "q_ncie",
    "q_p",
    "q_s",
    "q_y",
    "qabf",
    "quantize8",
    "resolve_names",
    "scd",
    "sd",
    "sf",
    "ssim",
    "ssim_fused_reference",
    "ssim_reference",
    "vif",
    "vif_single",
]
