from torch.utils.flop_counter import FlopCounterMode

_, D28 = make_dcgan(28, 1, base=64, seed=SEED)
x = torch.zeros(1, 1, 28, 28)
predicted_flops, h = 0, 28
for m in D28.modules():
    if isinstance(m, torch.nn.Conv2d):
        k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
        h_out = (h + 2 * p - k) // s + 1
        predicted_flops += conv2d_flops(m.in_channels, m.out_channels, k, h_out, h_out)
        h = h_out
with FlopCounterMode(display=False) as counter:
    D28(x)
counted_flops = counter.get_total_flops()
print(f"closed form {predicted_flops:,} FLOPs; flop_counter {counted_flops:,}")
quiz_07_3 = "b"
