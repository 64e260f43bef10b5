"""Networks: the DCGAN and conditional GAN pairs, the diagnosis classifiers, the feature net, the U-Net and
PatchGAN of segmentation, layer tables."""
from .dcgan import SUPPORTED_SIZES, Discriminator, Generator, dcgan_layout, init_dcgan_weights, make_dcgan
from .classifier import CLASSIFIERS, CompactCNN, make_classifier, resnet18_small
from .conditional import ConditionalGenerator, ProjectionDiscriminator, make_conditional_gan
from .feature_net import FeatureNet
from .segmentation import (MaskedPatchDiscriminator, PatchDiscriminator, SoftLabelPatchDiscriminator, UNet, make_patch_discriminator,
                           make_segmentation_nets, make_unet, patch_layers_for, patch_receptive_field)
from .summary import count_parameters, format_layer_table, layer_table
from .ddpm import DDPMSchedule, NoisePredictor, make_noise_predictor, timestep_embedding

__all__ = ["SUPPORTED_SIZES", "Discriminator", "Generator", "dcgan_layout", "init_dcgan_weights", "make_dcgan",
           "CLASSIFIERS", "CompactCNN", "make_classifier", "resnet18_small", "ConditionalGenerator",
           "ProjectionDiscriminator", "make_conditional_gan", "FeatureNet", "count_parameters", "format_layer_table",
           "layer_table", "MaskedPatchDiscriminator", "SoftLabelPatchDiscriminator", "patch_layers_for", "patch_receptive_field", "PatchDiscriminator", "UNet", "make_patch_discriminator", "make_segmentation_nets",
           "make_unet", "DDPMSchedule", "NoisePredictor", "make_noise_predictor", "timestep_embedding"]
