"""Networks: the DCGAN generator and discriminator, the feature net, and layer tables."""
from .dcgan import SUPPORTED_SIZES, Discriminator, Generator, dcgan_layout, init_dcgan_weights, make_dcgan
from .feature_net import FeatureNet
from .summary import count_parameters, format_layer_table, layer_table

__all__ = ["SUPPORTED_SIZES", "Discriminator", "Generator", "dcgan_layout", "init_dcgan_weights", "make_dcgan",
           "FeatureNet", "count_parameters", "format_layer_table", "layer_table"]
