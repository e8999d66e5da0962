"""Training (library behind ``mmfuse train``): self-supervised end-to-end training of the unrolled sampler.

Clean aligned pairs are cropped at random, each source of each sample is degraded on the fly with its own
random operator (noise sigma 0-0.10, blur std 0-2.5, scale 1/2/4 and their composites; the draws of
:mod:`mmfuse_cli.degradation.draws`), the T-step sampler runs, and the DRFusion paper's loss (docs/TRAINING.md, "Setup") is taken on its output:

* IVIF: ``S + 5 |f - max(x1c, x2c)| + 1 | |grad f| - max(|grad x1c|, |grad x2c|) |``
* MIF:  ``S + w_ssim [(1 - SSIM(f, x1c)) + (1 - SSIM(f, x2c))] + 5 |f - max(x1c, x2c)|`` (``w_ssim`` = 1, the authors')

with the source term ``S = 5 (|x1 - x1c| + |x2 - x2c|)`` (``src_loss="l1"``, the authors' weights; the default,
and the IVIF checkpoints' loss up to stage 5a) or ``S = 0.25 mean_i [log(|x1_i - x1c_i| + 1e-3) + log(|x2_i - x2c_i| + 1e-3)]``
per sample (``"log"``, which balances easy and hard draws; the MIF checkpoints of stages 3-5), or the same with the
per-sample RMSE in place of the L1 (``"logrmse"``: ``0.25 mean_i log(RMSE_i + 1e-3)``; for errors well above 1e-3 this
is -PSNR_i ln(10) / 20, i.e. it maximises the mean PSNR of the restored sources directly; the IVIF stage-5b and
MIF stage-6 and stage-7 checkpoints, see docs/TRAINING.md).

(``c`` = clean; Sobel gradients; L1 means.) Everything random is drawn from generators seeded by
``(seed, step)``, so a run is deterministic on CPU for a seed and resumes bit-exactly from its state file.
State (model + Adam moments + step) is saved as safetensors every ``checkpoint_every`` steps; nothing is
pickled. Source ``a`` is the IR / functional image (CT, PET, SPECT), ``b`` the visible image / MRI.

Modules (import from them directly; this package re-exports nothing):

* :mod:`~mmfuse_cli.training.config`: :class:`TrainConfig`, the default architecture, each task's data layout;
* :mod:`~mmfuse_cli.training.data`: training pairs, the validation hold-out, random crops, observations;
* :mod:`~mmfuse_cli.training.losses`: the losses above and PSNR;
* :mod:`~mmfuse_cli.training.state`: the resumable state file, starting from a trained checkpoint;
* :mod:`~mmfuse_cli.training.loop`: :func:`train`, the loop itself (learning rate, validation, export).
"""
