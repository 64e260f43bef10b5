"""GANs: losses, the one package copy of the training step, the trainer loop and its checkpoints."""
from .config import TrainConfig
from .losses import (LOSSES, d_loss_bce, d_loss_hinge, d_loss_lsgan, g_loss_hinge, g_loss_lsgan, g_loss_nonsaturating,
                     g_loss_saturating, get_losses, loss_names)
from .pix2pix import (PairTrainer, adversarial_segmentation_step, dice_bce_loss, enhancement_step, pix2pix_step,
                      segmentation_step)
from .private import PrivateGANResult, epsilon_spent, noise_for_epsilon, train_private_gan
from .steps import bce_d_loss, bce_g_loss, cgan_step, count_step_flops, dcgan_step, make_step
from .trainer import METRIC_KEYS, DCGANTrainer, TrainingDiverged
from .diffaugment import AdaptiveAugment, DIFFAUGMENT_POLICY, diff_augment, make_diff_augment
from .diffusion import ddpm_sample, ddpm_step
from .losses import d_loss_wgan
from .ema import ema_decay_at, make_generator_ema
from .regularisers import (PAPER_RECIPES, STABILITY_VARIANTS, check_variants, gradient_penalty, make_stable_step,
                           r1_penalty, variant_options, variant_recipe)

__all__ = [
    "TrainConfig", "LOSSES", "d_loss_bce", "d_loss_hinge", "d_loss_lsgan", "g_loss_hinge", "g_loss_lsgan",
    "g_loss_nonsaturating", "g_loss_saturating", "get_losses", "loss_names",
    "bce_d_loss", "bce_g_loss", "cgan_step", "count_step_flops", "dcgan_step", "make_step", "METRIC_KEYS", "DCGANTrainer", "TrainingDiverged",
    "PairTrainer", "adversarial_segmentation_step", "dice_bce_loss", "pix2pix_step", "segmentation_step",
    "enhancement_step", "PrivateGANResult", "epsilon_spent", "noise_for_epsilon", "train_private_gan",
    "AdaptiveAugment", "DIFFAUGMENT_POLICY", "diff_augment", "make_diff_augment", "ddpm_sample", "ddpm_step", "d_loss_wgan",
    "STABILITY_VARIANTS", "check_variants", "gradient_penalty", "make_stable_step", "r1_penalty", "variant_options",
    "PAPER_RECIPES", "variant_recipe", "ema_decay_at", "make_generator_ema",
]
