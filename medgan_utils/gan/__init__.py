"""GANs: losses, the one package copy of the training step, the trainer loop and its checkpoints."""
from .config import TrainConfig
from .losses import (LOSSES, d_loss_bce, d_loss_hinge, d_loss_lsgan, g_loss_hinge, g_loss_lsgan, g_loss_nonsaturating,
                     g_loss_saturating, get_losses, loss_names)
from .pix2pix import (PairTrainer, adversarial_segmentation_step, dice_bce_loss, pix2pix_step,
                      segmentation_step)
from .steps import bce_d_loss, bce_g_loss, cgan_step, count_step_flops, dcgan_step, make_step
from .trainer import METRIC_KEYS, DCGANTrainer, TrainingDiverged

__all__ = [
    "TrainConfig", "LOSSES", "d_loss_bce", "d_loss_hinge", "d_loss_lsgan", "g_loss_hinge", "g_loss_lsgan",
    "g_loss_nonsaturating", "g_loss_saturating", "get_losses", "loss_names",
    "bce_d_loss", "bce_g_loss", "cgan_step", "count_step_flops", "dcgan_step", "make_step", "METRIC_KEYS", "DCGANTrainer", "TrainingDiverged",
    "PairTrainer", "adversarial_segmentation_step", "dice_bce_loss", "pix2pix_step", "segmentation_step",
]
